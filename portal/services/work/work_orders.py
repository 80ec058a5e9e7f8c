"""INV-1: jobs (work orders) with line items, their visits, and the status flow
scheduled → in progress → finished / cancelled."""
from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, timedelta
from typing import Literal, overload

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import selectinload

from portal import clock
from portal.extensions import db
from portal.models import Customer, Invoice, Job, JobLineItem, JobStatus, StaffUser, Visit, VisitStatus
from portal.models.invoices import invoice_jobs
from portal.services.errors import ServiceError, ValidationError, found
from portal.services.platform import activity, settings
from portal.services.work.line_items import Line

TRANSITIONS = {"scheduled": ("in_progress", "finished", "cancelled"), "in_progress": ("finished", "cancelled"),
               "finished": ("in_progress",), "cancelled": ("scheduled",)}
STATUS_WORDS = {"scheduled": "scheduled", "in_progress": "in progress", "finished": "finished",
                "cancelled": "cancelled"}


def _technician(technician_id: int | None) -> StaffUser | None:
    if not technician_id:
        return None
    tech = db.session.get(StaffUser, technician_id)
    if tech is None or not tech.is_active_account:
        raise ValidationError("technician_id", "Choose an active staff member.")
    return tech


@overload
def _clean(value: str | None, field: str, limit: int, required: Literal[True], what: str = "value") -> str: ...


@overload
def _clean(value: str | None, field: str, limit: int, required: bool = False, what: str = "value") -> str | None: ...


def _clean(value: str | None, field: str, limit: int, required: bool = False, what: str = "value") -> str | None:
    value = " ".join((value or "").split()) if field != "description" else (value or "").strip()
    if required and not value:
        raise ValidationError(field, f"Enter the {what}.")
    if len(value) > limit:
        raise ValidationError(field, f"Keep the {what} under {limit} characters.")
    return value or None


def _set_lines(job: Job, lines: list[Line]) -> None:
    job.line_items.clear()
    for i, line in enumerate(lines):
        job.line_items.append(JobLineItem(description=line.description, quantity=line.quantity,
                                          unit_price_cents=line.unit_price_cents, position=i))


def create_job(customer: Customer, staff: StaffUser, *, title: str | None, description: str | None = None,
               address: str | None = None, technician_id: int | None = None, lines: Sequence[Line] = ()) -> Job:
    if not customer.can_log_in and customer.status == "blacklisted":
        raise ServiceError("This customer is blacklisted: no new work.")
    title = _clean(title, "title", 200, required=True, what="job title")
    tech = _technician(technician_id)
    if address is None:
        addr = customer.address_of("service")
        address = addr.one_line() if addr else None
    job = Job(customer_id=customer.id, title=title, description=_clean(description, "description", 5000),
              address=_clean(address, "address", 400), technician_id=tech.id if tech else None, status="scheduled",
              number=settings.next_number("job", lambda n: db.session.scalar(select(Job.id).where(Job.number == n))),
              created_at=clock.now())
    _set_lines(job, list(lines))
    db.session.add(job)
    db.session.flush()
    activity.record(customer.id, "job", f"Job {job.number} “{title}” created by {staff.name}", staff=staff)
    return job


def update_job(job: Job, staff: StaffUser, *, title: str | None, description: str | None, address: str | None,
               technician_id: int | None, lines: list[Line]) -> None:
    if invoiced(job) and [(li.description, li.quantity, li.unit_price_cents) for li in job.line_items] != \
            [(li.description, li.quantity, li.unit_price_cents) for li in lines]:
        raise ServiceError("This job is already invoiced; change the invoice instead of the job's lines.")
    job.title = _clean(title, "title", 200, required=True, what="job title")
    job.description = _clean(description, "description", 5000)
    job.address = _clean(address, "address", 400)
    tech = _technician(technician_id)
    job.technician_id = tech.id if tech else None
    _set_lines(job, lines)
    activity.record(job.customer_id, "job", f"Job {job.number} edited by {staff.name}", staff=staff)


def set_status(job: Job, staff: StaffUser, status: str) -> None:
    if status not in TRANSITIONS.get(job.status, ()):
        raise ServiceError(f"A {STATUS_WORDS.get(job.status, job.status)} job cannot become "
                           f"{STATUS_WORDS.get(status, status)}.")
    if status in ("in_progress", "cancelled") and job.status == "finished" and invoiced(job):
        raise ServiceError("This job is already invoiced; void the invoice first.")
    job.status = JobStatus(status)
    job.finished_at = clock.now() if status == "finished" else None
    if status in ("cancelled", "finished"):
        # Visits still open close with the job: a finished job's past visits were done, its future ones won't
        # happen (the portal must not show them as upcoming).
        for visit in job.visits:
            if visit.status in ("scheduled", "in_progress"):
                done = status == "finished" and visit.starts_at <= clock.now()
                visit.status = VisitStatus.COMPLETED if done else VisitStatus.CANCELLED
    activity.record(job.customer_id, "job", f"Job {job.number} {STATUS_WORDS[status]} by {staff.name}", staff=staff)


def invoiced(job: Job) -> bool:
    """On an invoice that is not void."""
    return db.session.scalar(select(Invoice.id).join(invoice_jobs, invoice_jobs.c.invoice_id == Invoice.id)
                             .where(invoice_jobs.c.job_id == job.id, Invoice.status != "void").limit(1)) is not None


def add_visit(job: Job, staff: StaffUser, *, day: date | None, start: str | None, end: str | None,
              technician_id: int | None) -> Visit:
    """A visit on a day with a time window in the business's time zone."""
    if job.status in ("finished", "cancelled"):
        raise ServiceError(f"A {STATUS_WORDS[job.status]} job gets no new visits.")
    if day is None:
        raise ValidationError("day", "Choose the visit's date.")
    try:
        starts = datetime.combine(day, datetime.strptime((start or "").strip(), "%H:%M").time())
        ends = datetime.combine(day, datetime.strptime((end or "").strip(), "%H:%M").time())
    except ValueError:
        raise ValidationError("start", "Enter the time window as HH:MM, like 09:00 and 11:00.") from None
    if ends <= starts:
        raise ValidationError("end", "The window must end after it starts.")
    tz = clock.business_tz()
    starts_at, ends_at = clock.to_utc(starts.replace(tzinfo=tz)), clock.to_utc(ends.replace(tzinfo=tz))
    if day < clock.today():
        raise ValidationError("day", "That date is in the past.")
    tech = _technician(technician_id) or (db.session.get(StaffUser, job.technician_id) if job.technician_id else None)
    visit = Visit(job_id=job.id, starts_at=starts_at, ends_at=ends_at, technician_id=tech.id if tech else None,
                  status="scheduled", created_at=clock.now())
    db.session.add(visit)
    activity.record(job.customer_id, "job", f"Visit for job {job.number} scheduled {starts:%Y-%m-%d %H:%M}–"
                    f"{ends:%H:%M}" + (f" with {tech.name}" if tech else "") + f" by {staff.name}", staff=staff)
    return visit


def set_visit_status(visit: Visit, staff: StaffUser, status: str) -> None:
    allowed = {"scheduled": ("in_progress", "completed", "cancelled"), "in_progress": ("completed", "cancelled")}
    if status not in allowed.get(visit.status, ()):
        raise ServiceError(f"A {visit.status.replace('_', ' ')} visit cannot become {status.replace('_', ' ')}.")
    visit.status = VisitStatus(status)
    activity.record(visit.job.customer_id, "job", f"Visit of job {visit.job.number} "
                    f"({clock.to_local(visit.starts_at):%Y-%m-%d %H:%M}) {status.replace('_', ' ')} by {staff.name}",
                    staff=staff)


def visits_on(day: date, technician: StaffUser | None = None) -> list[Visit]:
    """The day's visits (business time zone), for one technician or everyone."""
    tz = clock.business_tz()
    start = clock.to_utc(datetime.combine(day, datetime.min.time()).replace(tzinfo=tz))
    q = (select(Visit).join(Job).where(Visit.starts_at >= start, Visit.starts_at < start + timedelta(days=1))
         .options(selectinload(Visit.job).selectinload(Job.customer), selectinload(Visit.technician))
         .order_by(Visit.starts_at))
    if technician is not None:
        q = q.where(Visit.technician_id == technician.id)
    return list(db.session.scalars(q))


def uninvoiced_finished(customer: Customer) -> list[Job]:
    """Finished jobs on no invoice (a void invoice does not count)."""
    billed = (select(invoice_jobs.c.job_id).join(Invoice, Invoice.id == invoice_jobs.c.invoice_id)
              .where(Invoice.status != "void"))
    return list(db.session.scalars(select(Job).where(Job.customer_id == customer.id, Job.status == "finished",
                                                     Job.id.not_in(billed))
                                   .options(selectinload(Job.line_items)).order_by(Job.finished_at, Job.id)))


def count_uninvoiced_finished(customer: Customer) -> int:
    """Finished jobs with lines on no (non-void) invoice: what "Invoice all unpaid work" would bill."""
    return db.session.scalar(uninvoiced_finished_count(customer.id)) or 0


def uninvoiced_finished_count(customer_id: int | ColumnElement[int]):
    """The SELECT behind count_uninvoiced_finished (a read model may use it as a scalar subquery)."""
    billed = (select(invoice_jobs.c.job_id).join(Invoice, Invoice.id == invoice_jobs.c.invoice_id)
              .where(Invoice.status != "void"))
    return select(func.count()).select_from(Job).where(
        Job.customer_id == customer_id, Job.status == "finished", Job.id.not_in(billed),
        select(JobLineItem.id).where(JobLineItem.job_id == Job.id).exists())


def load_job(job_id: int) -> Job:
    """A job with its visits (and their technicians) loaded, or NotFound."""
    return found(db.session.scalars(select(Job).where(Job.id == job_id)
                                    .options(selectinload(Job.visits).selectinload(Visit.technician))).first(),
                 "Job not found.")


def load_visit(visit_id: int) -> Visit:
    return found(db.session.get(Visit, visit_id), "Visit not found.")


def invoices_of(job: Job) -> list[Invoice]:
    """The invoices a job was billed on (the job page's list)."""
    return list(db.session.scalars(select(Invoice).join(Invoice.jobs).where(Job.id == job.id).order_by(Invoice.id)))
