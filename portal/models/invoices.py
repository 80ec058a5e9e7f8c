"""INV-2 … INV-5: invoices, their lines, the jobs they bill and the reminders sent."""
from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

from sqlalchemy import Column, Date, ForeignKey, Index, Integer, String, Table, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal import clock
from portal.extensions import db
from portal.models.payments import PaymentStatus
from portal.models.types import UTCDateTime, status_type


class InvoiceStatus(StrEnum):
    DRAFT = "draft"
    OPEN = "open"
    PARTIALLY_PAID = "partially_paid"
    PAID = "paid"
    VOID = "void"


invoice_jobs = Table(
    "invoice_jobs",
    db.metadata,
    Column("invoice_id", ForeignKey("invoices.id", ondelete="CASCADE"), primary_key=True),
    Column("job_id", ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True),
)


class Invoice(db.Model):
    __tablename__ = "invoices"
    __table_args__ = (
        # Issue 15 (migration 0012): the invoice list newest first, a customer's invoices newest first, and what
        # is payable by due date (dashboard, overdue dashboard).
        Index("ix_invoices_issue_date_id", "issue_date", "id"),
        Index("ix_invoices_customer_issue_date", "customer_id", "issue_date", "id"),
        # Migration 0014: the payable sums (dashboard, overdue aging) read this index alone on PostgreSQL.
        Index("ix_invoices_payable_sums", "due_date", postgresql_include=["customer_id", "total_cents", "paid_cents"],
              sqlite_where=text("status IN ('open', 'partially_paid')"),
              postgresql_where=text("status IN ('open', 'partially_paid')")),
        # Migration 0016 (the client card): a customer's open invoices, what they owe read from the index alone, and
        # their invoices' count and total (the customer index carries status and total).
        Index("ix_invoices_customer_payable", "customer_id", "due_date", "id",
              postgresql_include=["total_cents", "paid_cents"],
              sqlite_where=text("status IN ('open', 'partially_paid')"),
              postgresql_where=text("status IN ('open', 'partially_paid')")),
        Index("ix_invoices_customer_sums", "customer_id", postgresql_include=["status", "total_cents"]),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"))  # indexed by ix_invoices_customer_sums
    plan_id: Mapped[int | None] = mapped_column(ForeignKey("customer_plans.id", ondelete="SET NULL"), index=True)
    number: Mapped[str] = mapped_column(String(30), unique=True)
    status: Mapped[InvoiceStatus] = mapped_column(status_type(InvoiceStatus, 20), default=InvoiceStatus.DRAFT,
                                                 index=True)
    currency: Mapped[str] = mapped_column(String(3), default="USD")
    issue_date: Mapped[date] = mapped_column(Date)
    due_date: Mapped[date | None] = mapped_column(Date, index=True)
    subtotal_cents: Mapped[int] = mapped_column(Integer, default=0)
    discount_bp: Mapped[int] = mapped_column(Integer, default=0)
    discount_cents: Mapped[int] = mapped_column(Integer, default=0)
    tax_bp: Mapped[int] = mapped_column(Integer, default=0)
    tax_cents: Mapped[int] = mapped_column(Integer, default=0)
    total_cents: Mapped[int] = mapped_column(Integer, default=0)
    paid_cents: Mapped[int] = mapped_column(Integer, default=0)  # credited by payments; a refund does not lower it
    refunded_cents: Mapped[int] = mapped_column(Integer, default=0)  # given back, not owed again
    notes: Mapped[str | None] = mapped_column(Text)  # shown to the customer
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    reminder_anchor_date: Mapped[date | None] = mapped_column(Date)  # INV-5: due date, or the date of a manual resend
    autopay_failed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    auto_invoiced_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    voided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    void_reason: Mapped[str | None] = mapped_column(String(300))
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)

    customer = relationship("Customer")
    jobs = relationship("Job", secondary=invoice_jobs)
    line_items: Mapped[list[InvoiceLineItem]] = relationship(
        back_populates="invoice", cascade="all, delete-orphan", order_by="InvoiceLineItem.position")

    @property
    def balance_cents(self) -> int:
        return 0 if self.status == InvoiceStatus.VOID else max(self.total_cents - self.paid_cents, 0)

    @property
    def shown_status(self) -> StrEnum:
        """R-7: the status people read. A refunded invoice reads "Refunded" / "Partially refunded", owing nothing
        more than before the refund."""
        if self.status == InvoiceStatus.PAID and self.refunded_cents > 0:  # still owing: it reads what it owes
            return PaymentStatus.REFUNDED if self.refunded_cents >= self.paid_cents else \
                PaymentStatus.PARTIALLY_REFUNDED
        return self.status


class InvoiceLineItem(db.Model):
    __tablename__ = "invoice_line_items"

    id: Mapped[int] = mapped_column(primary_key=True)
    invoice_id: Mapped[int] = mapped_column(ForeignKey("invoices.id", ondelete="CASCADE"), index=True)
    description: Mapped[str] = mapped_column(String(300))
    quantity: Mapped[int] = mapped_column(Integer, default=1)
    unit_price_cents: Mapped[int] = mapped_column(Integer, default=0)
    position: Mapped[int] = mapped_column(Integer, default=0)
    addon_id: Mapped[int | None] = mapped_column(ForeignKey("plan_addons.id", ondelete="SET NULL"))
    invoice: Mapped[Invoice] = relationship(back_populates="line_items")

    @property
    def amount_cents(self) -> int:
        return self.quantity * self.unit_price_cents


class InvoiceReminder(db.Model):
    """INV-5: one row per reminder sent; the unique key makes a second send of the same step impossible."""

    __tablename__ = "invoice_reminders"
    __table_args__ = (UniqueConstraint("invoice_id", "anchor_date", "day_offset"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    invoice_id: Mapped[int] = mapped_column(ForeignKey("invoices.id", ondelete="CASCADE"), index=True)
    anchor_date: Mapped[date] = mapped_column(Date)
    day_offset: Mapped[int] = mapped_column(Integer)
    sent_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)
    email_id: Mapped[int | None] = mapped_column(ForeignKey("queued_emails.id", ondelete="SET NULL"))
