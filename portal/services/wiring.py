"""Connects the domains to each other: event receivers and the scheduler's rules. Called once by the app factory.

This is the one module that imports every domain package; nothing imports it but `portal.create_app`.
"""
from __future__ import annotations

from portal import clock
from portal.services import events
from portal.services.billing import auto_invoicing, autopay, credit, documents, reminders
from portal.services.crm import messages
from portal.services.payments import charges, ledger, refunds
from portal.services.plans import billing as plan_billing
from portal.services.platform import mailer, scheduler, settings
from portal.services.work import estimates

_connected = False


def connect() -> None:
    global _connected
    if _connected:  # signals and rules are process-wide; several apps (tests) share them
        return
    _connected = True
    clock.use_time_zone(settings.timezone_name)

    events.charge_succeeded.connect(estimates.on_deposit_paid)
    events.charge_succeeded.connect(plan_billing.on_charge_succeeded)
    events.charge_succeeded.connect(plan_billing.on_pay_all_succeeded)
    events.charge_failed.connect(plan_billing.on_charge_failed)
    events.charge_failed.connect(autopay.on_failed)
    events.card_removed.connect(plan_billing.on_card_removed)
    events.default_card_changed.connect(autopay.on_default_card_changed)
    events.payment_disputed.connect(messages.on_payment_disputed)

    mailer.register_attachment("invoice_pdf", documents.INVOICE_PDF)

    # Order matters: settle what is unknown first; AutoPay before reminders (what AutoPay pays tonight gets
    # no reminder); email delivery last so every rule's emails leave in the same run.
    scheduler.register("charge_reconciler", charges.reconcile)
    scheduler.register("refund_reconciler", refunds.reconcile)
    scheduler.register("plans", plan_billing.run)
    scheduler.register("credit", credit.run)  # credit on account pays open invoices before AutoPay charges them
    scheduler.register("autopay", autopay.run)
    scheduler.register("auto_invoicing", auto_invoicing.run)
    scheduler.register("reminders", reminders.run)
    scheduler.register("ledger_day_sums", ledger.compact_day_sums)  # the transactions report's day sums, folded
    scheduler.register("emails", mailer.deliver_pending)
