"""P-6, P-4: messages from customers (and reschedule requests tied to a visit), the staff inbox, replies."""
from __future__ import annotations

from dataclasses import dataclass

from flask import current_app
from flask_babel import gettext as _
from sqlalchemy import func, select, update
from sqlalchemy.orm import selectinload

from portal import clock
from portal.extensions import db, execute_dml, get_existing
from portal.models import Customer, MessageRequest, MessageStatus, StaffUser, Visit
from portal.pagination import paginate
from portal.services.errors import ServiceError, ValidationError, found
from portal.services.platform import activity, magic_links, mailer, settings

MAX_BODY = 5000
MAX_NAME = 160
MAX_PHONE = 32
PAGE_SIZE = 25


def _clean(value: str | None) -> str:
    return (value or "").strip()


def validate(name: str | None, phone: str | None, body: str | None) -> tuple[str, str | None, str]:
    """Raises ValidationError(field, message) for the first problem; returns cleaned values."""
    name, phone, body = _clean(name), _clean(phone), _clean(body)
    if not name:
        raise ValidationError("name", _("Enter your name."))
    if len(name) > MAX_NAME:
        raise ValidationError("name", _("Keep the name under %(n)d characters.", n=MAX_NAME))
    if len(phone) > MAX_PHONE:
        raise ValidationError("phone", _("Keep the phone number under %(n)d characters.", n=MAX_PHONE))
    if phone and not any(ch.isdigit() for ch in phone):
        raise ValidationError("phone", _("Enter a phone number with digits, or leave it empty."))
    if not body:
        raise ValidationError("body", _("Write your message."))
    if len(body) > MAX_BODY:
        raise ValidationError("body", _("Keep the message under %(n)d characters.", n=MAX_BODY))
    return name, phone or None, body


def staff_recipients(customer: Customer) -> list[str]:
    """The customer's manager; else the business address; else every active admin."""
    manager = customer.manager
    if manager is not None and manager.is_active_account:
        return [manager.email]
    business = settings.get()
    if business.email:
        return [business.email]
    return list(db.session.scalars(select(StaffUser.email).where(StaffUser.role == "admin",
                                                                 StaffUser.is_active_account.is_(True))))


def email_staff(customer: Customer, template: str, context: dict, *, admin_path: str | None = None,
                subject_args: dict | None = None, log_activity: bool = True) -> None:
    """Queue a staff email (English) about `customer` to `staff_recipients`. The context gets the customer's
    `name`, and `link` (absolute) when `admin_path` names the staff page; `log_activity` also files the emails on
    the customer's feed. Caller commits."""
    ctx = {"name": customer.display_name, **context,
           "subject_args": {"name": customer.display_name, **(subject_args or {})}}
    if admin_path:
        ctx["link"] = current_app.config["BASE_URL"].rstrip("/") + admin_path
    for address in staff_recipients(customer):
        mailer.queue_email(template, address, ctx, language="en", customer=customer if log_activity else None,
                           log_activity=log_activity)


def on_payment_disputed(dispute, *, payment, closed: bool) -> None:
    """Issue 14 (`payment_disputed`): staff hear of a chargeback when it opens and when the bank decides."""
    customer = get_existing(Customer, dispute.customer_id)
    email_staff(customer, "payment_disputed_staff", {"dispute": dispute, "payment": payment, "closed": closed},
                admin_path=f"/admin/payments/{payment.id}",
                subject_args={"what": f"dispute {dispute.status.replace('_', ' ')}" if closed else "disputed"})


def send(customer: Customer, *, name: str | None, phone: str | None, body: str | None,
         visit: Visit | None = None) -> MessageRequest:
    """The customer writes to the business. Caller commits."""
    name, phone, body = validate(name, phone, body)
    if visit is not None and visit.job.customer_id != customer.id:
        raise ValidationError("body", _("That visit is not yours."))
    message = MessageRequest(customer_id=customer.id, visit_id=visit.id if visit else None,
                             kind="reschedule" if visit is not None else "message", name=name, phone=phone, body=body,
                             status="new", created_at=clock.now())
    db.session.add(message)
    db.session.flush()
    what = "Reschedule request" if visit is not None else "Message"
    activity.record(customer.id, "message", f"{what} from the portal: {body[:200]}", actor_kind="customer")
    email_staff(customer, "message_received", {"message": message, "visit": visit, "sender": customer},
                log_activity=False)
    return message


def sent_by(customer: Customer, page=1, per_page: int = 20):
    """The customer's messages, newest first, one page (a Pagination)."""
    return paginate(select(MessageRequest).where(MessageRequest.customer_id == customer.id)
                    .options(selectinload(MessageRequest.visit))
                    .order_by(MessageRequest.created_at.desc(), MessageRequest.id.desc()), page, per_page)


@dataclass
class Inbox:
    messages: list[MessageRequest]
    page: int
    pages: int
    counts: dict[str, int]


def inbox(status: str = "new", page: int = 1) -> Inbox:
    counts: dict[str, int] = dict(db.session.execute(select(MessageRequest.status, func.count())
                                                     .group_by(MessageRequest.status)).all())
    q = select(MessageRequest)
    if status in ("new", "handled"):
        q = q.where(MessageRequest.status == status)
    result = paginate(
        q.options(selectinload(MessageRequest.customer).selectinload(Customer.emails),
                  selectinload(MessageRequest.visit).selectinload(Visit.job),
                  selectinload(MessageRequest.handled_by), selectinload(MessageRequest.replied_by))
        .order_by(MessageRequest.created_at.desc(), MessageRequest.id.desc()), page, PAGE_SIZE)
    return Inbox(list(result.items), result.page, max(result.pages, 1),
                 {"new": counts.get("new", 0), "handled": counts.get("handled", 0)})


def mark_handled(message: MessageRequest, staff: StaffUser) -> bool:
    """Once: a second click (or a colleague at the same time) changes nothing. Caller commits."""
    result = execute_dml(update(MessageRequest).where(MessageRequest.id == message.id,
                                                             MessageRequest.status == "new")
                                .values(status="handled", handled_by_id=staff.id, handled_at=clock.now())
                                .execution_options(synchronize_session=False))
    if result.rowcount:
        activity.record(message.customer_id, "message", f"Message marked handled by {staff.name}", staff=staff)
    db.session.refresh(message)
    return bool(result.rowcount)


def reply(message: MessageRequest, staff: StaffUser, body: str | None) -> None:
    """Reply by email; the message counts as handled. Caller commits."""
    body = _clean(body)
    if not body:
        raise ValidationError("body", "Write the reply.")
    if len(body) > MAX_BODY:
        raise ValidationError("body", f"Keep the reply under {MAX_BODY} characters.")
    customer = message.customer
    if not customer.primary_email:
        raise ServiceError("This customer has no email address; call them instead.")
    link = magic_links.portal_link(customer, "/portal/messages") if customer.can_log_in else None
    mailer.queue_email("message_reply", customer.primary_email,
                       {"message": message, "reply": body, "staff_name": staff.name, "link": link},
                       customer=customer, actor=staff)
    now = clock.now()
    message.reply_body = body
    message.replied_at = now
    message.replied_by_id = staff.id
    if message.status == "new":
        message.status, message.handled_by_id, message.handled_at = MessageStatus.HANDLED, staff.id, now
    activity.record(customer.id, "message", f"Reply sent by {staff.name}: {body[:200]}", staff=staff)


def load(message_id: int) -> MessageRequest:
    """A message by id (staff inbox), or NotFound."""
    return found(db.session.get(MessageRequest, message_id), "Message not found.")
