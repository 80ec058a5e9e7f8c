"""C-2, C-5 … C-7, C-10: internal notes, the contact log, the next-contact task, reassignment, archive and delete.

Everything here is staff-only: none of it is ever rendered in the portal or a customer email.
"""
from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, bindparam, delete, exists, or_, select, update
from sqlalchemy.orm import joinedload, selectinload

from portal import clock
from portal.extensions import db
from portal.models import (
    ActivityEvent,
    Adjustment,
    Card,
    ChargeAttempt,
    ContactLog,
    ContactTask,
    Customer,
    CustomerNote,
    CustomerPlan,
    CustomerStatus,
    CustomFieldValue,
    Estimate,
    Invoice,
    Job,
    MessageRequest,
    Payment,
    PlanAddon,
    QueuedEmail,
    StaffUser,
)
from portal.models.customers import CONTACT_CHANNELS
from portal.services.errors import ServiceError, ValidationError
from portal.services.platform import activity

MAX_TEXT = 10_000


def _text(value: str | None, field: str, what: str, required: bool = True) -> str | None:
    value = (value or "").strip()
    if not value:
        if required:
            raise ValidationError(field, f"Write the {what}.")
        return None
    if len(value) > MAX_TEXT:
        raise ValidationError(field, f"Keep the {what} under {MAX_TEXT} characters.")
    return value


# --- C-5 internal notes ----------------------------------------------------------------------------------

def add_note(customer: Customer, staff: StaffUser, body: str | None) -> CustomerNote:
    note = CustomerNote(customer_id=customer.id, author_id=staff.id, body=_text(body, "body", "note"),
                        created_at=clock.now())
    db.session.add(note)
    activity.record(customer.id, "note", f"Internal note by {staff.name}: {note.body[:200]}", staff=staff)
    return note


_NOTES = (select(CustomerNote).where(CustomerNote.customer_id == bindparam("customer_id"))
          .options(joinedload(CustomerNote.author))
          .order_by(CustomerNote.created_at.desc(), CustomerNote.id.desc())
          .limit(bindparam("limit")))  # built once: the client card reads it on every load


def notes(customer: Customer, limit: int = 50) -> list[CustomerNote]:
    """Newest first: the first one is the pinned note."""
    return list(db.session.scalars(_NOTES, {"customer_id": customer.id, "limit": limit}))


# --- C-6 contact log -------------------------------------------------------------------------------------

def log_contact(customer: Customer, staff: StaffUser, *, channel: str | None, outcome: str | None,
                contacted_at: datetime | None) -> ContactLog:
    if channel not in CONTACT_CHANNELS:
        raise ValidationError("channel", "Choose how you contacted the customer.")
    when = contacted_at or clock.now()
    if when > clock.now() + timedelta(minutes=5):
        raise ValidationError("contacted_at", "A contact cannot be in the future; schedule a task instead.")
    entry = ContactLog(customer_id=customer.id, staff_id=staff.id, channel=channel,
                       outcome=_text(outcome, "outcome", "outcome", required=False), contacted_at=when,
                       created_at=clock.now())
    db.session.add(entry)
    activity.record(customer.id, "contact", f"{channel.title()} by {staff.name}"
                    + (f": {entry.outcome[:200]}" if entry.outcome else ""), staff=staff)
    return entry


_CONTACTS = (select(ContactLog).where(ContactLog.customer_id == bindparam("customer_id"))
             .options(joinedload(ContactLog.staff))
             .order_by(ContactLog.contacted_at.desc(), ContactLog.id.desc()).limit(bindparam("limit")))


def contact_log(customer: Customer, limit: int = 50) -> list[ContactLog]:
    return list(db.session.scalars(_CONTACTS, {"customer_id": customer.id, "limit": limit}))


# --- C-7 next-contact task -------------------------------------------------------------------------------

_OPEN_TASK = (select(ContactTask).where(ContactTask.customer_id == bindparam("customer_id"),
                                        ContactTask.done_at.is_(None))
              .options(selectinload(ContactTask.assignee)).order_by(ContactTask.due_at))


def open_task(customer: Customer) -> ContactTask | None:
    return db.session.scalars(_OPEN_TASK, {"customer_id": customer.id}).first()


def set_task(customer: Customer, staff: StaffUser, *, due_at: datetime | None, note: str | None,
             assignee_id: int | None = None) -> ContactTask:
    """The one next-contact task: a new one replaces the open one. Assigned to the customer's manager
    (or whoever sets it) unless someone is chosen."""
    if due_at is None:
        raise ValidationError("due_at", "Choose when to contact the customer.")
    if due_at < clock.now() - timedelta(minutes=1):
        raise ValidationError("due_at", "The task's date is in the past; choose a future date and time.")
    assignee = db.session.get(StaffUser, assignee_id) if assignee_id else None
    if assignee_id and (assignee is None or not assignee.is_active_account):
        raise ValidationError("assignee_id", "Choose an active staff member.")
    assignee_id = assignee.id if assignee else (customer.manager_id or staff.id)
    db.session.execute(update(ContactTask).where(ContactTask.customer_id == customer.id,
                                                 ContactTask.done_at.is_(None)).values(done_at=clock.now()))
    task = ContactTask(customer_id=customer.id, assignee_id=assignee_id, due_at=due_at,
                       note=_text(note, "note", "task note", required=False), created_at=clock.now())
    db.session.add(task)
    activity.record(customer.id, "contact",
                    f"Next contact set for {clock.to_local(due_at):%Y-%m-%d %H:%M} by {staff.name}"
                    + (f": {task.note[:150]}" if task.note else ""), staff=staff)
    return task


def complete_task(customer: Customer, staff: StaffUser, task_id: int) -> ContactTask:
    task = db.session.get(ContactTask, task_id)
    if task is None or task.customer_id != customer.id:
        raise ServiceError("That task is not on this customer.")
    if task.done_at is not None:
        raise ServiceError("That task is already done.")
    task.done_at = clock.now()
    activity.record(customer.id, "contact", f"Next-contact task done by {staff.name}", staff=staff)
    return task


def is_overdue(task: ContactTask | None) -> bool:
    return task is not None and task.done_at is None and task.due_at < clock.now()


# --- C-10 reassignment -----------------------------------------------------------------------------------

def reassign(customer: Customer, staff: StaffUser, manager_id: int | None) -> None:
    """A new manager takes the customer and their open tasks (they leave the old manager's dashboard)."""
    manager = db.session.get(StaffUser, manager_id) if manager_id else None
    if manager_id and (manager is None or not manager.is_active_account):
        raise ValidationError("manager_id", "Choose an active staff member.")
    old = customer.manager
    customer.manager_id = manager.id if manager else None
    db.session.execute(update(ContactTask).where(ContactTask.customer_id == customer.id,
                                                 ContactTask.done_at.is_(None))
                       .values(assignee_id=manager.id if manager else staff.id))
    activity.record(customer.id, "customer", f"Manager changed from {old.name if old else 'nobody'} to "
                    f"{manager.name if manager else 'nobody'} by {staff.name}", staff=staff)


# --- C-2 archive and hard delete -------------------------------------------------------------------------

def has_financial_records(customer: Customer) -> bool:
    return bool(db.session.scalar(select(financial_records_exist(customer.id))))  # one query


def financial_records_exist(customer_id: int | ColumnElement[int]):
    """True when the customer has money history (then they are archived, never deleted): a SQL expression."""
    return or_(exists().where(Payment.customer_id == customer_id),
               exists().where(Invoice.customer_id == customer_id, Invoice.status != "draft"),
               exists().where(ChargeAttempt.customer_id == customer_id),
               exists().where(Adjustment.customer_id == customer_id),
               exists().where(CustomerPlan.customer_id == customer_id, CustomerPlan.status != "draft"))


def archive(customer: Customer, staff: StaffUser) -> None:
    if customer.status == "archived":
        raise ServiceError("This customer is already archived.")
    customer.status = CustomerStatus.ARCHIVED
    customer.archived_at = clock.now()
    activity.record(customer.id, "customer", f"Archived by {staff.name}; all records are kept", staff=staff)


def restore(customer: Customer, staff: StaffUser) -> None:
    if customer.status != "archived":
        raise ServiceError("This customer is not archived.")
    customer.status = CustomerStatus.INACTIVE
    customer.archived_at = None
    activity.record(customer.id, "customer", f"Restored from the archive by {staff.name}", staff=staff)


def hard_delete(customer: Customer, staff: StaffUser) -> None:
    """Only a customer with no financial records (C-2); everything else of theirs goes with them."""
    if has_financial_records(customer):
        raise ServiceError("This customer has payments, invoices or plans, so they cannot be deleted. "
                           "Archive them instead: archived customers leave the lists and keep their history.")
    cid = customer.id
    for model in (Estimate, Invoice, Job, CustomerPlan):  # ORM deletes: their lines and visits go too
        for row in db.session.scalars(select(model).where(model.customer_id == cid)):
            db.session.delete(row)
    db.session.flush()
    for model in (ActivityEvent, MessageRequest, PlanAddon, Card, CustomerNote, ContactLog, ContactTask,
                  CustomFieldValue):
        db.session.execute(delete(model).where(model.customer_id == cid))
    db.session.execute(update(QueuedEmail).where(QueuedEmail.customer_id == cid).values(customer_id=None))
    db.session.delete(customer)
