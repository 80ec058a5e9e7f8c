"""What one domain tells the others (blinker signals, the way Flask's own signals work).

A sender calls `event.send(obj, **facts)` inside the business transaction; every receiver runs right there,
synchronously, and may add and flush rows — the caller still commits once. Receivers are connected in one
place, `portal.services.wiring.connect()`, which the app factory calls; so `payments` never imports `plans`,
`billing` or `work` to tell them that a charge settled.

| event | sender | facts | receivers |
|---|---|---|---|
| charge_succeeded | ChargeAttempt | payment | work.estimates (deposit paid), plans.billing |
| charge_failed | ChargeAttempt | explanation, invoice | plans.billing (dunning), billing.autopay |
| card_removed | Card | customer, replacement, actor | plans.billing (plans move to another card, D-8) |
| default_card_changed | Customer | old, new, actor | billing.autopay (D-8) |
| payment_disputed | Dispute | payment, closed | crm.messages (staff are emailed) |
"""
from __future__ import annotations

from blinker import Namespace

_events = Namespace()

charge_succeeded = _events.signal("charge-succeeded", doc="A card charge settled as succeeded (Payment recorded).")
charge_failed = _events.signal("charge-failed", doc="A card charge was declined or failed for good.")
card_removed = _events.signal("card-removed", doc="A card left the wallet; `replacement` is the card now used.")
default_card_changed = _events.signal("default-card-changed", doc="The customer's default card changed.")
payment_disputed = _events.signal("payment-disputed", doc="A cardholder disputed a card payment (closed: the bank "
                                                          "decided).")
