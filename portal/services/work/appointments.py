"""P-4: a customer's visits (the portal's appointments) and their calendar files."""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from flask_babel import gettext as _
from icalendar import Calendar, Event, vText
from sqlalchemy import Integer, bindparam, false, func, literal, select, true, union_all
from sqlalchemy.orm import contains_eager, joinedload, selectinload

from portal import clock
from portal.extensions import db
from portal.models import Customer, Job, Visit
from portal.models.types import UTCDateTime
from portal.pagination import page_number
from portal.services.errors import NotFound, found, row_id

OPEN = ("scheduled", "in_progress")  # a completed or cancelled visit is not upcoming


@dataclass
class Page:
    """What the pager macro reads of a paged list."""
    page: int
    pages: int


@dataclass
class Appointments:
    upcoming: list[Visit]
    past: list[Visit]
    past_page: Any = None  # the Page of `past`


def _visits(customer: Customer):
    return (select(Visit).join(Visit.job).where(Job.customer_id == customer.id)
            .options(contains_eager(Visit.job), selectinload(Visit.technician)))


def for_customer(customer: Customer, page=1, per_page: int = 20) -> Appointments:
    """The next visits (at most 50) and one page of past visits, newest first, in one SELECT (a past page beyond
    the last reads the count, then the last page)."""
    number = page_number(page)
    upcoming, past, count = _read(customer.id, clock.now(), number, per_page)
    if not past and number > 1:
        count = db.session.scalar(_past_count_stmt(_dialect()), {"customer_id": customer.id, "now": clock.now()}) or 0
        number = max(1, -(-count // per_page))
        upcoming, past, count = _read(customer.id, clock.now(), number, per_page)
    return Appointments(upcoming, past, Page(number, max(1, -(-count // per_page))))


def next_visit(customer: Customer) -> Visit | None:
    upcoming, _past, _count = _read(customer.id, clock.now(), 1, 0, upcoming=1)
    return upcoming[0] if upcoming else None


def _dialect() -> str:
    return db.session.get_bind().dialect.name


def _read(customer_id: int, now, number: int, per_page: int, upcoming: int = 50) -> tuple[list, list, int]:
    rows = db.session.execute(_page_stmt(_dialect()), {
        "customer_id": customer_id, "now": now, "upcoming": upcoming, "limit": per_page,
        "offset": (number - 1) * per_page}).all()
    soon = sorted((v for v, is_upcoming, _n in rows if is_upcoming), key=lambda v: (v.starts_at, v.id))
    past = sorted((v for v, is_upcoming, _n in rows if not is_upcoming), key=lambda v: (v.starts_at, v.id),
                  reverse=True)
    count = next((int(n) for _v, is_upcoming, n in rows if not is_upcoming), 0)
    return soon, past, count


def _customer_visits(dialect: str, *where):
    """(id, starts_at) of a customer's visits. PostgreSQL: each of the customer's jobs looks up its visits in
    `ix_visits_job_times` (a LATERAL subquery kept apart by OFFSET 0: the planner would otherwise walk every
    visit by date looking for the customer's); SQLite: the plain join."""
    customer = Job.customer_id == bindparam("customer_id", type_=Integer)
    if dialect != "postgresql":
        return select(Visit.id, Visit.starts_at).join(Job, Job.id == Visit.job_id).where(customer, *where), \
            Visit.id, Visit.starts_at
    own = (select(Visit.id, Visit.starts_at).where(Visit.job_id == Job.id, *where).offset(0)
           .lateral("own"))
    return select(own.c.id, own.c.starts_at).select_from(Job).join(own, true()).where(customer), \
        own.c.id, own.c.starts_at


def _upcoming(now):
    return (Visit.ends_at >= now, Visit.status.in_(OPEN))


def _past(now):
    return ((Visit.ends_at < now) | Visit.status.not_in(OPEN),)


@lru_cache(maxsize=2)
def _page_stmt(dialect: str):
    """The customer's next visits (`upcoming` of them) and one page of past visits (`limit`, `offset`) with how many
    past visits there are, joined to their jobs and technicians; built once per process."""
    now = bindparam("now", type_=UTCDateTime())
    soon, soon_id, soon_start = _customer_visits(dialect, *_upcoming(now))
    soon = (soon.add_columns(true().label("upcoming"), literal(0, Integer).label("n"))
            .order_by(soon_start, soon_id).limit(bindparam("upcoming", type_=Integer)).subquery("soon"))
    past, past_id, past_start = _customer_visits(dialect, *_past(now))
    past = (past.add_columns(false().label("upcoming"), func.count().over().label("n"))
            .order_by(past_start.desc(), past_id.desc()).limit(bindparam("limit", type_=Integer))
            .offset(bindparam("offset", type_=Integer)).subquery("past"))
    page = union_all(select(soon.c.id, soon.c.upcoming, soon.c.n), select(past.c.id, past.c.upcoming, past.c.n)) \
        .subquery("page")
    return (select(Visit, page.c.upcoming, page.c.n).join(page, page.c.id == Visit.id).join(Visit.job)
            .options(contains_eager(Visit.job), joinedload(Visit.technician)))


@lru_cache(maxsize=2)
def _past_count_stmt(dialect: str):
    past, _id, _start = _customer_visits(dialect, *_past(bindparam("now", type_=UTCDateTime())))
    return select(func.count()).select_from(past.subquery())


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
