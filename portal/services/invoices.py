"""INV-2, INV-7: sending an invoice to the customer (email with a magic link that opens it in the portal)."""
from __future__ import annotations

from portal import clock
from portal.extensions import db
from portal.models import Customer, Invoice, StaffUser
from portal.services import activity, mailer, magic_links
from portal.services.errors import ServiceError


def send(invoice: Invoice, actor: StaffUser | None) -> None:
    """Send or resend. A draft becomes open; a resend restarts the reminder schedule (INV-5). Commits."""
    customer = db.session.get(Customer, invoice.customer_id)
    if invoice.status == "void":
        raise ServiceError("A void invoice cannot be sent.")
    if not invoice.line_items or invoice.total_cents <= 0:
        raise ServiceError("Add at least one line with an amount before sending.")
    if not customer.primary_email:
        raise ServiceError("This customer has no email address.")
    if not customer.can_log_in:
        raise ServiceError("Archived or blacklisted customers cannot be sent invoices.")
    now = clock.now()
    resend = invoice.sent_at is not None
    if invoice.status == "draft":
        invoice.status = "open"
    invoice.sent_at = invoice.sent_at or now
    invoice.last_sent_at = now
    invoice.reminder_anchor_date = clock.today() if resend else invoice.due_date
    link = magic_links.portal_link(customer, f"/portal/invoices/{invoice.id}")
    mailer.queue_email("invoice_sent", customer.primary_email,
                       {"invoice": invoice, "link": link, "subject_args": {"number": invoice.number}},
                       customer=customer, actor=actor)
    activity.record(customer.id, "invoice", f"Invoice {invoice.number} {'resent' if resend else 'sent'}",
                    staff=actor, invoice_id=invoice.id)
    db.session.commit()
