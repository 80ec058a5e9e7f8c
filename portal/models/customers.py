"""Section 2: the client card."""
from __future__ import annotations

import secrets
from datetime import date, datetime
from enum import StrEnum

from sqlalchemy import Boolean, Column, Date, ForeignKey, Index, Integer, String, Table, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal import clock
from portal.extensions import db
from portal.models.types import UTCDateTime, status_type

CUSTOMER_KINDS = ("individual", "business")


class CustomerStatus(StrEnum):
    LEAD = "lead"
    ACTIVE = "active"
    INACTIVE = "inactive"
    ARCHIVED = "archived"
    BLACKLISTED = "blacklisted"


CUSTOMER_STATUSES = tuple(CustomerStatus)
CATEGORIES = ("A", "B", "C", "VIP")
LANGUAGES = ("en", "es", "ru")
PHONE_KINDS = ("mobile", "home", "work", "other")
ADDRESS_KINDS = ("service", "billing")
AUTO_INVOICE_CADENCES = ("weekly", "biweekly", "semimonthly", "monthly")
CUSTOM_FIELD_TYPES = ("text", "long_text", "number", "date", "checkbox", "list", "multi_list")
CONTACT_CHANNELS = ("call", "email", "meeting", "sms", "visit")

customer_tags = Table(
    "customer_tags",
    db.metadata,
    Column("customer_id", ForeignKey("customers.id", ondelete="CASCADE"), primary_key=True),
    Column("tag_id", ForeignKey("tags.id", ondelete="CASCADE"), primary_key=True),
)


def new_auth_secret() -> str:
    return secrets.token_hex(16)


class Customer(db.Model):
    """C-1, C-2, C-3. `auth_secret` is carried by portal links and sessions; rotating it revokes both (A-6)."""

    __tablename__ = "customers"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(20), default="individual")
    first_name: Mapped[str | None] = mapped_column(String(80))
    last_name: Mapped[str | None] = mapped_column(String(80))
    company_name: Mapped[str | None] = mapped_column(String(160))
    status: Mapped[CustomerStatus] = mapped_column(status_type(CustomerStatus, 20), default=CustomerStatus.LEAD,
                                                  index=True)
    blacklist_reason: Mapped[str | None] = mapped_column(String(500))
    category: Mapped[str | None] = mapped_column(String(10))
    birthday: Mapped[date | None] = mapped_column(Date)
    preferred_language: Mapped[str] = mapped_column(String(5), default="en")
    discount_bp: Mapped[int] = mapped_column(Integer, default=0)  # personal discount, basis points
    lead_source: Mapped[str | None] = mapped_column(String(120))
    manager_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id", ondelete="SET NULL"), index=True)

    auth_secret: Mapped[str] = mapped_column(String(64), default=new_auth_secret)
    last_auto_link_sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_portal_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    stripe_customer_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    autopay_enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    auto_invoice_cadence: Mapped[str | None] = mapped_column(String(20))
    auto_invoice_enabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    auto_invoice_last_sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    auto_invoice_last_run_on: Mapped[date | None] = mapped_column(Date)  # INV-3: the last cadence date handled

    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now, onupdate=clock.now)
    archived_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    manager = relationship("StaffUser", foreign_keys=[manager_id])
    emails: Mapped[list[CustomerEmail]] = relationship(
        back_populates="customer", cascade="all, delete-orphan",
        order_by="desc(CustomerEmail.is_primary), CustomerEmail.id")
    phones: Mapped[list[CustomerPhone]] = relationship(
        back_populates="customer", cascade="all, delete-orphan", order_by="CustomerPhone.id")
    addresses: Mapped[list[Address]] = relationship(
        back_populates="customer", cascade="all, delete-orphan", order_by="Address.id")
    tags: Mapped[list[Tag]] = relationship(secondary=customer_tags, order_by="Tag.name")

    @property
    def display_name(self) -> str:
        if self.kind == "business" and self.company_name:
            return self.company_name
        name = " ".join(p for p in (self.first_name, self.last_name) if p)
        return name or self.company_name or f"Customer #{self.id}"

    @property
    def greeting_name(self) -> str:
        return self.first_name or self.display_name

    @property
    def primary_email(self) -> str | None:
        for e in self.emails:
            if e.is_primary:
                return e.email
        return self.emails[0].email if self.emails else None

    @property
    def mobile_phone(self) -> str | None:
        for p in self.phones:
            if p.kind == "mobile":
                return p.number
        return self.phones[0].number if self.phones else None

    def address_of(self, kind: str) -> Address | None:
        for a in self.addresses:
            if a.kind == kind:
                return a
        return None

    @property
    def can_log_in(self) -> bool:
        return self.status not in (CustomerStatus.ARCHIVED, CustomerStatus.BLACKLISTED)

    def __repr__(self) -> str:
        return f"<Customer {self.id} {self.display_name}>"


class CustomerEmail(db.Model):
    __tablename__ = "customer_emails"
    __table_args__ = (
        UniqueConstraint("customer_id", "email"),
        Index("uq_customer_emails_one_primary", "customer_id", unique=True,
              sqlite_where=text("is_primary"), postgresql_where=text("is_primary")),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"), index=True)
    email: Mapped[str] = mapped_column(String(254), index=True)  # stored lower-cased
    is_primary: Mapped[bool] = mapped_column(Boolean, default=False)
    customer: Mapped[Customer] = relationship(back_populates="emails")


class CustomerPhone(db.Model):
    __tablename__ = "customer_phones"

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"), index=True)
    number: Mapped[str] = mapped_column(String(32), index=True)
    kind: Mapped[str] = mapped_column(String(10), default="mobile")
    customer: Mapped[Customer] = relationship(back_populates="phones")


class Address(db.Model):
    __tablename__ = "addresses"

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(10), default="service")
    line1: Mapped[str] = mapped_column(String(200))
    line2: Mapped[str | None] = mapped_column(String(200))
    city: Mapped[str | None] = mapped_column(String(100))
    region: Mapped[str | None] = mapped_column(String(100))
    postal_code: Mapped[str | None] = mapped_column(String(20))
    country: Mapped[str | None] = mapped_column(String(2), default="US")
    customer: Mapped[Customer] = relationship(back_populates="addresses")

    def one_line(self) -> str:
        parts = [self.line1, self.line2, self.city, " ".join(p for p in (self.region, self.postal_code) if p)]
        return ", ".join(p for p in parts if p)


class Tag(db.Model):
    __tablename__ = "tags"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(60), unique=True)


class CustomFieldDefinition(db.Model):
    """C-4: defined by an admin under settings."""

    __tablename__ = "custom_field_definitions"

    id: Mapped[int] = mapped_column(primary_key=True)
    label: Mapped[str] = mapped_column(String(120))
    field_type: Mapped[str] = mapped_column(String(20), default="text")
    required: Mapped[bool] = mapped_column(Boolean, default=False)
    options: Mapped[str | None] = mapped_column(Text)  # one choice per line, for list / multi_list
    position: Mapped[int] = mapped_column(Integer, default=0)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)


class CustomFieldValue(db.Model):
    __tablename__ = "custom_field_values"
    __table_args__ = (UniqueConstraint("customer_id", "field_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"), index=True)
    field_id: Mapped[int] = mapped_column(ForeignKey("custom_field_definitions.id", ondelete="CASCADE"))
    value: Mapped[str | None] = mapped_column(Text)


class CustomerNote(db.Model):
    """C-5: staff only; never rendered in the portal or a customer email."""

    __tablename__ = "customer_notes"

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"), index=True)
    author_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id", ondelete="SET NULL"))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)
    author = relationship("StaffUser")


class ContactLog(db.Model):
    """C-6."""

    __tablename__ = "contact_logs"

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"), index=True)
    staff_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id", ondelete="SET NULL"))
    channel: Mapped[str] = mapped_column(String(20))
    outcome: Mapped[str | None] = mapped_column(Text)
    contacted_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)
    staff = relationship("StaffUser")


class ContactTask(db.Model):
    """C-7: the next-contact task."""

    __tablename__ = "contact_tasks"

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"), index=True)
    assignee_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id", ondelete="SET NULL"), index=True)
    due_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    note: Mapped[str | None] = mapped_column(Text)
    done_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)
    assignee = relationship("StaffUser")
    customer = relationship("Customer")


class CustomerImport(db.Model):
    """DATA-1: an uploaded customer CSV between its preview and its confirmation. `rows` holds the decoded cells
    (JSON: [line, [cells]]) with any row that looked like it carried a card number emptied (its line is kept in
    `card_lines`); it is cleared once imported, so the file's contents are not kept twice."""

    __tablename__ = "customer_imports"

    id: Mapped[int] = mapped_column(primary_key=True)
    filename: Mapped[str] = mapped_column(String(255))
    staff_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id", ondelete="SET NULL"))
    encoding: Mapped[str] = mapped_column(String(20))
    delimiter: Mapped[str] = mapped_column(String(5))
    headers: Mapped[str] = mapped_column(Text)  # JSON list
    mapping: Mapped[str] = mapped_column(Text)  # JSON list: the target field of each column, "" = ignored
    rows: Mapped[str | None] = mapped_column(Text)
    card_lines: Mapped[str | None] = mapped_column(Text)  # JSON {line: column}
    row_count: Mapped[int] = mapped_column(Integer, default=0)
    update_existing: Mapped[bool] = mapped_column(Boolean, default=True)
    created_count: Mapped[int] = mapped_column(Integer, default=0)
    updated_count: Mapped[int] = mapped_column(Integer, default=0)
    skipped_count: Mapped[int] = mapped_column(Integer, default=0)
    refused_count: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)
    imported_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # None: previewed, not yet confirmed
