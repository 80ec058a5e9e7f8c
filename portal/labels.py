"""Words for stored codes (statuses, frequencies, methods), translated for the portal and customer emails.

Templates use `value|label` so a status never reaches a customer as a raw code.
"""
from __future__ import annotations

from flask_babel import lazy_gettext as _l

LABELS = {
    # invoices (INV-2)
    "draft": _l("Draft"),
    "open": _l("Open"),
    "partially_paid": _l("Partially paid"),
    "paid": _l("Paid"),
    "void": _l("Void"),
    # estimates (P-5)
    "sent": _l("Awaiting your approval"),
    "approved": _l("Approved"),
    "declined": _l("Declined"),
    "converted": _l("Approved"),
    "expired": _l("Expired"),
    # visits and jobs (INV-1)
    "scheduled": _l("Scheduled"),
    "in_progress": _l("In progress"),
    "completed": _l("Completed"),
    "finished": _l("Finished"),
    "cancelled": _l("Cancelled"),
    # plans and plan payments (SP-2, SP-4)
    "pending": _l("Waiting for acceptance"),
    "active": _l("Active"),
    "failed": _l("Failed"),
    "overdue": _l("Overdue"),
    "refunded": _l("Refunded"),
    "partially_refunded": _l("Partially refunded"),
    "marked_paid": _l("Paid"),
    # frequencies (SP-1)
    "monthly": _l("Monthly"),
    "quarterly": _l("Quarterly"),
    "yearly": _l("Yearly"),
    # payment methods (PAY-1)
    "card": _l("Card"),
    "cash": _l("Cash"),
    "check": _l("Check"),
    "other": _l("Other"),
    # messages (P-6)
    "new": _l("Sent"),
    "handled": _l("Seen"),
    "answered": _l("Answered"),
    "message": _l("Message"),
    "reschedule": _l("Reschedule request"),
}


def label(code: str | None) -> str:
    if not code:
        return ""
    found = LABELS.get(code)
    return str(found) if found is not None else code.replace("_", " ").capitalize()
