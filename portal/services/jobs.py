"""Q-3: every scheduled rule, run by `flask jobs run`. Each rule is idempotent and safe to run concurrently."""
from __future__ import annotations

from datetime import datetime

from portal import clock
from portal.services import auto_invoicing, autopay, charges, mailer, plan_billing, refunds, reminders


def run_due(now: datetime | None = None) -> dict:
    """Run every rule due at `now` (default: the clock's now). Returns what each rule did."""
    with clock.frozen_at(now or clock.now()):
        results = {}
        # Rules added by later features go before delivery so their emails leave in the same run.
        results["charge_reconciler"] = charges.reconcile()
        results["refund_reconciler"] = refunds.reconcile()
        results["plans"] = plan_billing.run()
        results["autopay"] = autopay.run()  # before reminders: what AutoPay pays tonight gets none
        results["auto_invoicing"] = auto_invoicing.run()
        results["reminders"] = reminders.run()
        results["emails"] = mailer.deliver_pending()
        return results
