"""Words for stored codes (statuses, frequencies, methods), translated for the portal and customer emails.

A status is worded by its kind and value: a plan's "pending" is "Waiting for acceptance", a charge attempt's
"pending" is "Processing", a refund's "pending" is "Pending". A status loaded from the database is a member of
its column's StrEnum, so the kind comes with it:

    label(plan.status)                  # PlanStatus.PENDING   → "Waiting for acceptance"
    label(attempt.status)               # ChargeAttemptStatus.PENDING → "Processing"
    label("pending", "plan")            # a plain string: name its kind (a name of KINDS, or the enum class)
    label(plan.frequency)               # codes that mean one thing everywhere (frequencies, methods, message kinds)

Templates use the `label` filter: `{{ plan.status|label }}`, `{{ s|label("plan") }}`, so a status never reaches
a customer as a raw code.
"""
from __future__ import annotations

from enum import StrEnum

from flask_babel import lazy_gettext as _l

from portal.models.customers import CustomerStatus
from portal.models.estimates import EstimateStatus
from portal.models.invoices import InvoiceStatus
from portal.models.jobs import JobStatus, VisitStatus
from portal.models.mail import EmailStatus
from portal.models.messages import MessageStatus
from portal.models.payments import ChargeAttemptStatus, PaymentStatus, RefundStatus
from portal.models.plans import AddonStatus, PlanPaymentStatus, PlanStatus

# Per kind: the words for its values. A value missing here reads as the code made readable ("Receivable").
STATUS_LABELS: dict[type[StrEnum], dict[str, object]] = {
    # invoices (INV-2)
    InvoiceStatus: {
        InvoiceStatus.DRAFT: _l("Draft"),
        InvoiceStatus.OPEN: _l("Open"),
        InvoiceStatus.PARTIALLY_PAID: _l("Partially paid"),
        InvoiceStatus.PAID: _l("Paid"),
        InvoiceStatus.VOID: _l("Void"),
    },
    # estimates (P-5); "expired" is also shown for a sent estimate past its date
    EstimateStatus: {
        EstimateStatus.DRAFT: _l("Draft"),
        EstimateStatus.SENT: _l("Awaiting your approval"),
        EstimateStatus.APPROVED: _l("Approved"),
        EstimateStatus.DECLINED: _l("Declined"),
        EstimateStatus.CONVERTED: _l("Approved"),
        EstimateStatus.EXPIRED: _l("Expired"),
    },
    # jobs and visits (INV-1)
    JobStatus: {
        JobStatus.SCHEDULED: _l("Scheduled"),
        JobStatus.IN_PROGRESS: _l("In progress"),
        JobStatus.FINISHED: _l("Finished"),
        JobStatus.CANCELLED: _l("Cancelled"),
    },
    VisitStatus: {
        VisitStatus.SCHEDULED: _l("Scheduled"),
        VisitStatus.IN_PROGRESS: _l("In progress"),
        VisitStatus.COMPLETED: _l("Completed"),
        VisitStatus.CANCELLED: _l("Cancelled"),
    },
    # plans (SP-2)
    PlanStatus: {
        PlanStatus.DRAFT: _l("Draft"),
        PlanStatus.PENDING: _l("Waiting for acceptance"),
        PlanStatus.ACTIVE: _l("Active"),
        PlanStatus.CANCELLED: _l("Cancelled"),
        PlanStatus.EXPIRED: _l("Expired"),
    },
    # plan payments (SP-4)
    PlanPaymentStatus: {
        PlanPaymentStatus.SCHEDULED: _l("Scheduled"),
        PlanPaymentStatus.PAID: _l("Paid"),
        PlanPaymentStatus.FAILED: _l("Failed"),
        PlanPaymentStatus.OVERDUE: _l("Overdue"),
        PlanPaymentStatus.REFUNDED: _l("Refunded"),
        PlanPaymentStatus.PARTIALLY_REFUNDED: _l("Partially refunded"),
        PlanPaymentStatus.MARKED_PAID: _l("Paid"),
        PlanPaymentStatus.CANCELLED: _l("Cancelled"),
    },
    AddonStatus: {
        AddonStatus.ACTIVE: _l("Active"),
        AddonStatus.PAID: _l("Paid"),
    },
    # card charges (PAY-3): pending and unknown are both still being confirmed with Stripe
    ChargeAttemptStatus: {
        ChargeAttemptStatus.PENDING: _l("Processing"),
        ChargeAttemptStatus.SUCCEEDED: _l("Succeeded"),
        ChargeAttemptStatus.FAILED: _l("Failed"),
        ChargeAttemptStatus.UNKNOWN: _l("Processing"),
    },
    # payments and refunds (PAY-1, R-1 … R-6)
    PaymentStatus: {
        PaymentStatus.SUCCEEDED: _l("Succeeded"),
        PaymentStatus.PARTIALLY_REFUNDED: _l("Partially refunded"),
        PaymentStatus.REFUNDED: _l("Refunded"),
    },
    RefundStatus: {
        RefundStatus.PENDING: _l("Pending"),
        RefundStatus.SUCCEEDED: _l("Succeeded"),
        RefundStatus.FAILED: _l("Failed"),
    },
    # messages (P-6); "answered" is shown for a message with a reply
    MessageStatus: {
        MessageStatus.NEW: _l("Sent"),
        MessageStatus.HANDLED: _l("Seen"),
        "answered": _l("Answered"),
    },
    CustomerStatus: {
        CustomerStatus.ACTIVE: _l("Active"),
    },
    EmailStatus: {
        EmailStatus.SENT: _l("Sent"),
        EmailStatus.FAILED: _l("Failed"),
    },
}

# The names a caller holding a plain string gives as `kind`.
KINDS: dict[str, type[StrEnum]] = {
    "invoice": InvoiceStatus, "estimate": EstimateStatus, "job": JobStatus, "visit": VisitStatus,
    "plan": PlanStatus, "plan_payment": PlanPaymentStatus, "addon": AddonStatus,
    "charge_attempt": ChargeAttemptStatus, "payment": PaymentStatus, "refund": RefundStatus,
    "message": MessageStatus, "customer": CustomerStatus, "email": EmailStatus,
}

# Codes that are not statuses and mean the same wherever they appear.
WORDS = {
    # frequencies (SP-1)
    "monthly": _l("Monthly"),
    "quarterly": _l("Quarterly"),
    "yearly": _l("Yearly"),
    # payment methods (PAY-1)
    "card": _l("Card"),
    "cash": _l("Cash"),
    "check": _l("Check"),
    "other": _l("Other"),
    # message kinds (P-6)
    "message": _l("Message"),
    "reschedule": _l("Reschedule request"),
}


def label(value: str | None, kind: str | type[StrEnum] | None = None) -> str:
    """The words for `value`: a status member is worded by its own enum; a plain string by `kind` if given
    (a KINDS name or a status enum), else by WORDS. Unknown codes read as the code made readable."""
    if not value:
        return ""
    if isinstance(kind, str):
        if kind not in KINDS:
            raise ValueError(f"no status kind named {kind!r}")
        kind = KINDS[kind]
    elif kind is None and isinstance(value, StrEnum):
        kind = type(value)
    table = STATUS_LABELS.get(kind, {}) if kind is not None else WORDS
    found = table.get(value)
    return str(found) if found is not None else str(value).replace("_", " ").capitalize()
