"""P-4: a customer's visits (the portal's appointments) and their calendar files."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask_babel import gettext as _
from icalendar import Calendar, Event, vText
from sqlalchemy import select
from sqlalchemy.orm import contains_eager, selectinload

from portal import clock
from portal.extensions import db
from portal.models import Customer, Job, Visit
from portal.pagination import paginate
from portal.services.errors import NotFound, found, row_id

OPEN = ("scheduled", "in_progress")  # a completed or cancelled visit is not upcoming


@dataclass
class Appointments:
    upcoming: list[Visit]
    past: list[Visit]
    past_page: Any = None  # the Pagination of `past`


def _visits(customer: Customer):
    return (select(Visit).join(Visit.job).where(Job.customer_id == customer.id)
            .options(contains_eager(Visit.job), selectinload(Visit.technician)))


def for_customer(customer: Customer, page=1, per_page: int = 20) -> Appointments:
    """The next visits (at most 50) and one page of past visits, newest first."""
    now = clock.now()
    upcoming = db.session.scalars(_visits(customer).where(Visit.ends_at >= now, Visit.status.in_(OPEN))
                                  .order_by(Visit.starts_at).limit(50)).all()
    past = paginate(_visits(customer).where((Visit.ends_at < now) | Visit.status.not_in(OPEN))
                    .order_by(Visit.starts_at.desc(), Visit.id.desc()), page, per_page)
    return Appointments(list(upcoming), list(past.items), past)


def next_visit(customer: Customer) -> Visit | None:
    return db.session.scalars(_visits(customer).where(Visit.ends_at >= clock.now(), Visit.status.in_(OPEN))
                              .order_by(Visit.starts_at).limit(1)).first()


def visit_of(customer: Customer, visit_id) -> Visit:
    """One of the customer's visits, or NotFound (the one `visit_of`: ids from forms are checked here too)."""
    ident = row_id(visit_id)
    if ident is None:
        raise NotFound("Visit not found.")
    return found(db.session.scalars(_visits(customer).where(Visit.id == ident)).first(), "Visit not found.")


def address_of(visit: Visit) -> str:
    if visit.job.address:
        return visit.job.address
    addr = visit.job.customer.address_of("service") or visit.job.customer.address_of("billing")
    return addr.one_line() if addr else ""


def ics(visit: Visit, business_name: str, base_url: str) -> bytes:
    """One VEVENT that calendar apps import: times in UTC, a stable UID, the address as LOCATION."""
    cal = Calendar()
    cal.add("prodid", f"-//{business_name}//Customer portal//EN")
    cal.add("version", "2.0")
    cal.add("method", "PUBLISH")
    event = Event()
    host = base_url.split("://", 1)[-1].split("/", 1)[0] or "portal"
    event.add("uid", f"visit-{visit.id}@{host}")
    event.add("dtstamp", clock.now())
    event.add("dtstart", visit.starts_at)
    event.add("dtend", visit.ends_at)
    event.add("summary", f"{visit.job.title} — {business_name}")
    location = address_of(visit)
    if location:
        event["location"] = vText(location)
    lines = [_("Job %(n)s", n=visit.job.number)]
    if visit.technician is not None:
        lines.append(_("Technician: %(name)s", name=visit.technician.name))
    event.add("description", "\n".join(lines))
    event.add("status", "CANCELLED" if visit.status == "cancelled" else "CONFIRMED")
    event.add("url", f"{base_url.rstrip('/')}/portal/appointments")
    cal.add_component(event)
    return cal.to_ical()
