"""C-1, C-2, C-11: customer records and the customer list."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from sqlalchemy import bindparam, func, or_, select
from sqlalchemy.orm import joinedload, selectinload

from portal import clock
from portal.extensions import db
from portal.models import Address, Card, Customer, CustomerEmail, CustomerPhone, CustomerStatus, Invoice, StaffUser, Tag
from portal.models.customers import CATEGORIES, CUSTOMER_STATUSES
from portal.money import percent_to_input
from portal.pagination import paginate
from portal.services.errors import ValidationError, found
from portal.services.platform import activity


@dataclass
class CustomerInput:
    kind: str = "individual"
    first_name: str | None = None
    last_name: str | None = None
    company_name: str | None = None
    email: str | None = None
    phone: str | None = None
    service_line1: str | None = None
    service_line2: str | None = None
    service_city: str | None = None
    service_region: str | None = None
    service_postal_code: str | None = None
    preferred_language: str = "en"
    status: str = "lead"
    blacklist_reason: str | None = None
    category: str | None = None
    discount_bp: int = 0
    lead_source: str | None = None
    manager_id: int | None = None
    birthday: date | None = None
    tags: list[str] = field(default_factory=list)


def contains_pattern(text: str) -> str:
    """A LIKE pattern matching `text` anywhere, with % and _ taken literally (escape character: backslash)."""
    escaped = text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _clean(value: str | None) -> str | None:
    value = (value or "").strip()
    return value or None


def _check(data: CustomerInput, customer: Customer | None) -> None:
    if data.kind == "business" and not _clean(data.company_name):
        raise ValidationError("company_name", "Enter the company name.")
    if data.kind == "individual" and not (_clean(data.first_name) or _clean(data.last_name)):
        raise ValidationError("first_name", "Enter a first or last name.")
    if data.status not in CUSTOMER_STATUSES:
        raise ValidationError("status", "Choose a status.")
    if data.status == "blacklisted" and not _clean(data.blacklist_reason):
        raise ValidationError("blacklist_reason", "Say why this customer is blacklisted.")
    if data.manager_id is not None:
        manager = db.session.get(StaffUser, data.manager_id)
        if manager is None or not manager.is_active_account:
            raise ValidationError("manager_id", "Choose an active staff member.")
    email = (data.email or "").strip().lower()
    if email:
        q = select(CustomerEmail).where(func.lower(CustomerEmail.email) == email)
        if customer is not None and customer.id is not None:
            q = q.where(CustomerEmail.customer_id != customer.id)
        other = db.session.scalars(q.limit(1)).first()
        if other is not None:
            raise ValidationError("email", f"This email already belongs to {other.customer.display_name}.")


def _apply(customer: Customer, data: CustomerInput) -> None:
    customer.kind = data.kind
    customer.first_name = _clean(data.first_name)
    customer.last_name = _clean(data.last_name)
    customer.company_name = _clean(data.company_name)
    customer.preferred_language = data.preferred_language
    customer.category = _clean(data.category)
    customer.discount_bp = data.discount_bp or 0
    customer.lead_source = _clean(data.lead_source)
    customer.manager_id = data.manager_id
    customer.birthday = data.birthday
    _set_status(customer, data.status, data.blacklist_reason)

    email = (data.email or "").strip().lower() or None
    primary = next((e for e in customer.emails if e.is_primary), None)
    if email is None and primary is not None:
        customer.emails.remove(primary)
    elif email is not None:
        if primary is None:
            customer.emails.append(CustomerEmail(email=email, is_primary=True))
        else:
            primary.email = email

    phone = _clean(data.phone)
    mobile = next((p for p in customer.phones if p.kind == "mobile"), None)
    if phone is None and mobile is not None:
        customer.phones.remove(mobile)
    elif phone is not None:
        if mobile is None:
            customer.phones.append(CustomerPhone(number=phone, kind="mobile"))
        else:
            mobile.number = phone

    service = customer.address_of("service")
    line1 = _clean(data.service_line1)
    if line1 is None and service is not None:
        customer.addresses.remove(service)
    elif line1 is not None:
        if service is None:
            service = Address(kind="service", line1=line1)
            customer.addresses.append(service)
        service.line1 = line1
        service.line2 = _clean(data.service_line2)
        service.city = _clean(data.service_city)
        service.region = _clean(data.service_region)
        service.postal_code = _clean(data.service_postal_code)

    customer.tags = _tags(data.tags)


def _set_status(customer: Customer, status: str, reason: str | None) -> None:
    customer.status = CustomerStatus(status)
    customer.blacklist_reason = _clean(reason) if status == "blacklisted" else None
    customer.archived_at = (customer.archived_at or clock.now()) if status == "archived" else None


def _tags(names: list[str]) -> list[Tag]:
    wanted: list[str] = []
    for name in names:
        name = name.strip()[:60]
        if name and name.lower() not in {w.lower() for w in wanted}:
            wanted.append(name)
    if not wanted:
        return []
    existing = {t.name.lower(): t for t in db.session.scalars(
        select(Tag).where(func.lower(Tag.name).in_([w.lower() for w in wanted])))}
    tags = []
    for name in wanted:
        tag = existing.get(name.lower())
        if tag is None:
            tag = Tag(name=name)
            db.session.add(tag)
        tags.append(tag)
    return tags


def create(data: CustomerInput, staff: StaffUser | None) -> Customer:
    _check(data, None)
    customer = Customer(created_at=clock.now())
    db.session.add(customer)
    _apply(customer, data)
    db.session.flush()
    activity.record(customer.id, "customer", f"Customer {customer.display_name} created.", staff=staff)
    return customer


def update(customer: Customer, data: CustomerInput, staff: StaffUser | None) -> Customer:
    _check(data, customer)
    before = customer.status
    snapshot = _snapshot(customer)
    _apply(customer, data)
    db.session.flush()
    db.session.expire(customer, ["manager"])  # the relationship follows the new manager_id
    changed = [label for label, value in _snapshot(customer).items() if snapshot.get(label) != value]
    if changed:
        activity.record(customer.id, "customer", f"Customer details updated: {', '.join(changed)}.", staff=staff,
                        detail="\n".join(f"{k}: {snapshot.get(k) or '—'} → {v or '—'}"
                                         for k, v in _snapshot(customer).items() if snapshot.get(k) != v))
    if before != customer.status:
        activity.record(customer.id, "customer", f"Status changed from {before} to {customer.status}.", staff=staff)
    return customer


def _snapshot(customer: Customer) -> dict[str, str | None]:
    """The client card's general block as text, to say what an edit changed (C-9)."""
    address = customer.address_of("service")
    return {"name": customer.display_name, "kind": customer.kind, "email": customer.primary_email,
            "phone": customer.mobile_phone, "service address": address.one_line() if address else None,
            "language": customer.preferred_language, "category": customer.category,
            "discount": f"{percent_to_input(customer.discount_bp)} %", "lead source": customer.lead_source,
            "manager": customer.manager.name if customer.manager else None,
            "birthday": customer.birthday.isoformat() if customer.birthday else None,
            "tags": ", ".join(sorted(t.name for t in customer.tags)) or None,
            "blacklist reason": customer.blacklist_reason}


def get(customer_id: int) -> Customer | None:
    return db.session.get(Customer, customer_id)


_LOAD = (select(Customer).where(Customer.id == bindparam("customer_id"))
         .options(joinedload(Customer.emails), joinedload(Customer.phones), joinedload(Customer.addresses),
                  joinedload(Customer.tags), joinedload(Customer.manager)))  # built once: every customer page


def load(customer_id: int) -> Customer:
    """The customer with emails, phones, addresses and tags (one query), or NotFound (→ 404)."""
    return found(db.session.scalars(_LOAD, {"customer_id": customer_id}).unique().first(), "Customer not found.")


def search(q: str | None = None, status: str | None = None, tag: str | None = None,
           manager_id: int | None = None, page: int = 1, per_page: int = 25, category: str | None = None,
           has_balance: bool = False, no_card: bool = False):
    """C-11. Archived customers are hidden unless asked for by status."""
    stmt = select(Customer).options(selectinload(Customer.emails), selectinload(Customer.phones),
                                    selectinload(Customer.tags), selectinload(Customer.manager))
    if status in CUSTOMER_STATUSES:
        stmt = stmt.where(Customer.status == status)
    else:
        stmt = stmt.where(Customer.status != "archived")
    if manager_id:
        stmt = stmt.where(Customer.manager_id == manager_id)
    if tag:
        stmt = stmt.where(Customer.tags.any(func.lower(Tag.name) == tag.strip().lower()))
    if category in CATEGORIES:
        stmt = stmt.where(Customer.category == category)
    if has_balance:
        stmt = stmt.where(select(Invoice.id).where(Invoice.customer_id == Customer.id,
                                                   Invoice.status.in_(("open", "partially_paid")),
                                                   Invoice.total_cents > Invoice.paid_cents).exists())
    if no_card:
        stmt = stmt.where(~select(Card.id).where(Card.customer_id == Customer.id, Card.removed_at.is_(None),
                                                 Card.added_by != "customer_once").exists())
    q = (q or "").strip()
    if q:
        like = contains_pattern(q)
        digits = "".join(ch for ch in q if ch.isdigit())
        conditions = [
            func.lower(Customer.first_name).like(like, escape="\\"),
            func.lower(Customer.last_name).like(like, escape="\\"),
            func.lower(Customer.company_name).like(like, escape="\\"),
            func.lower(func.coalesce(Customer.first_name, "") + " " + func.coalesce(Customer.last_name, ""))
            .like(like, escape="\\"),
            Customer.emails.any(func.lower(CustomerEmail.email).like(like, escape="\\")),
            Customer.tags.any(func.lower(Tag.name).like(like, escape="\\")),
            Customer.manager.has(func.lower(StaffUser.name).like(like, escape="\\")),
        ]
        if len(digits) >= 3:
            conditions.append(Customer.phones.any(
                func.replace(func.replace(func.replace(func.replace(CustomerPhone.number, " ", ""), "-", ""),
                                          "(", ""), ")", "").like(f"%{digits}%")))
        stmt = stmt.where(or_(*conditions))
    stmt = stmt.order_by(func.lower(func.coalesce(Customer.last_name, Customer.company_name, "")), Customer.id)
    return paginate(stmt, page, per_page)
