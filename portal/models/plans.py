"""Sections 9, 10, 12: plan templates, customer plans, their payments and add-ons."""
from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

from sqlalchemy import Boolean, Date, ForeignKey, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal import clock
from portal.extensions import db
from portal.models.types import UTCDateTime, status_type

FREQUENCIES = ("monthly", "quarterly", "yearly")
ADDON_PAYMENT_PLANS = ("recurring", "one_time", "installments")


class PlanStatus(StrEnum):
    """SP-2: draft → pending → active → cancelled / expired."""
    DRAFT = "draft"
    PENDING = "pending"  # sent; waiting for the customer to accept
    ACTIVE = "active"
    CANCELLED = "cancelled"
    EXPIRED = "expired"


class PlanPaymentStatus(StrEnum):
    SCHEDULED = "scheduled"
    PAID = "paid"
    FAILED = "failed"
    OVERDUE = "overdue"
    REFUNDED = "refunded"
    PARTIALLY_REFUNDED = "partially_refunded"
    MARKED_PAID = "marked_paid"
    CANCELLED = "cancelled"


class AddonStatus(StrEnum):
    ACTIVE = "active"
    RECEIVABLE = "receivable"
    PAID = "paid"


class PlanTemplate(db.Model):
    """SP-1. A price of None means the frequency is not offered."""

    __tablename__ = "plan_templates"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(160))
    description: Mapped[str | None] = mapped_column(Text)
    visits_per_year: Mapped[int] = mapped_column(Integer, default=0)
    price_monthly_cents: Mapped[int | None] = mapped_column(Integer)
    price_quarterly_cents: Mapped[int | None] = mapped_column(Integer)
    price_yearly_cents: Mapped[int | None] = mapped_column(Integer)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)

    addons: Mapped[list[TemplateAddon]] = relationship(back_populates="template", cascade="all, delete-orphan")


class TemplateAddon(db.Model):
    __tablename__ = "template_addons"

    id: Mapped[int] = mapped_column(primary_key=True)
    template_id: Mapped[int] = mapped_column(ForeignKey("plan_templates.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(160))
    amount_cents: Mapped[int] = mapped_column(Integer)
    payment_plan: Mapped[str] = mapped_column(String(20), default="recurring")
    installments: Mapped[int | None] = mapped_column(Integer)
    template: Mapped[PlanTemplate] = relationship(back_populates="addons")


class CustomerPlan(db.Model):
    """SP-2: draft → pending → active → cancelled / expired."""

    __tablename__ = "customer_plans"
    __table_args__ = (Index("ix_customer_plans_created_at", "created_at"),)  # issue 15: the plan report

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    template_id: Mapped[int | None] = mapped_column(ForeignKey("plan_templates.id", ondelete="SET NULL"))
    name: Mapped[str] = mapped_column(String(160))
    description: Mapped[str | None] = mapped_column(Text)
    visits_per_year: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[PlanStatus] = mapped_column(status_type(PlanStatus, 20), default=PlanStatus.DRAFT, index=True)
    # SP-1/SP-3: the prices offered to this customer; None = frequency not offered
    price_monthly_cents: Mapped[int | None] = mapped_column(Integer)
    price_quarterly_cents: Mapped[int | None] = mapped_column(Integer)
    price_yearly_cents: Mapped[int | None] = mapped_column(Integer)
    offered_frequencies: Mapped[str] = mapped_column(String(60), default="monthly")  # comma separated
    frequency: Mapped[str | None] = mapped_column(String(20))
    price_cents: Mapped[int | None] = mapped_column(Integer)
    currency: Mapped[str] = mapped_column(String(3), default="USD")
    payment_method: Mapped[str] = mapped_column(String(10), default="card")  # card / cash / check / other
    card_id: Mapped[int | None] = mapped_column(ForeignKey("cards.id", ondelete="SET NULL"))
    start_date: Mapped[date | None] = mapped_column(Date)
    end_date: Mapped[date | None] = mapped_column(Date)
    billing_anchor_day: Mapped[int | None] = mapped_column(Integer)  # the billing date never moves (SP-10)
    next_billing_date: Mapped[date | None] = mapped_column(Date, index=True)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    accepted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    cancel_reason: Mapped[str | None] = mapped_column(Text)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)

    customer = relationship("Customer")
    template = relationship("PlanTemplate")
    card = relationship("Card")
    payments: Mapped[list[PlanPayment]] = relationship(back_populates="plan", order_by="PlanPayment.due_date")
    addons: Mapped[list[PlanAddon]] = relationship(back_populates="plan", cascade="all, delete-orphan")

    def price_for(self, frequency: str | None) -> int | None:
        if frequency not in FREQUENCIES:
            return None
        return getattr(self, f"price_{frequency}_cents")

    @property
    def offers(self) -> list[str]:
        """The billing frequencies the customer may choose (SP-3)."""
        return [f for f in FREQUENCIES if self.price_for(f) is not None]


class PlanPayment(db.Model):
    """SP-4 … SP-7, D-1 … D-6. One row per plan per due date."""

    __tablename__ = "plan_payments"
    __table_args__ = (
        UniqueConstraint("plan_id", "due_date"),
        # What each plan owes (the plan report, SP-9) from the index alone (migration 0017).
        Index("ix_plan_payments_outstanding", "plan_id", postgresql_include=["status", "amount_cents"],
              sqlite_where=text("status IN ('failed', 'overdue')"),
              postgresql_where=text("status IN ('failed', 'overdue')")),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    plan_id: Mapped[int] = mapped_column(ForeignKey("customer_plans.id"), index=True)
    due_date: Mapped[date] = mapped_column(Date, index=True)
    amount_cents: Mapped[int] = mapped_column(Integer)
    status: Mapped[PlanPaymentStatus] = mapped_column(status_type(PlanPaymentStatus, 20),
                                                     default=PlanPaymentStatus.SCHEDULED, index=True)
    method: Mapped[str] = mapped_column(String(10), default="card")
    card_id: Mapped[int | None] = mapped_column(ForeignKey("cards.id", ondelete="SET NULL"))
    payment_id: Mapped[int | None] = mapped_column(ForeignKey("payments.id", use_alter=True))
    failure_code: Mapped[str | None] = mapped_column(String(60))
    failure_message: Mapped[str | None] = mapped_column(Text)
    first_failed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    attempt_count: Mapped[int] = mapped_column(Integer, default=0)
    next_retry_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    retries_exhausted: Mapped[bool] = mapped_column(Boolean, default=False)
    is_first_payment: Mapped[bool] = mapped_column(Boolean, default=False)  # D-4: never retried
    marked_paid_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id", ondelete="SET NULL"))
    marked_paid_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)

    plan: Mapped[CustomerPlan] = relationship(back_populates="payments")
    card = relationship("Card")
    lines: Mapped[list[PlanPaymentLine]] = relationship(back_populates="plan_payment", order_by="PlanPaymentLine.id",
                                                        cascade="all, delete-orphan")

    @property
    def outstanding(self) -> bool:
        return self.status in (PlanPaymentStatus.FAILED, PlanPaymentStatus.OVERDUE)


class PlanPaymentLine(db.Model):
    """AO-1: what one plan bill is made of: the plan's price and the add-ons billed with it."""

    __tablename__ = "plan_payment_lines"

    id: Mapped[int] = mapped_column(primary_key=True)
    plan_payment_id: Mapped[int] = mapped_column(ForeignKey("plan_payments.id", ondelete="CASCADE"), index=True)
    description: Mapped[str] = mapped_column(String(200))
    amount_cents: Mapped[int] = mapped_column(Integer)
    addon_id: Mapped[int | None] = mapped_column(ForeignKey("plan_addons.id", ondelete="SET NULL"), index=True)
    installment: Mapped[int | None] = mapped_column(Integer)  # 1..N for installment add-ons

    plan_payment: Mapped[PlanPayment] = relationship(back_populates="lines")


class PlanAddon(db.Model):
    """AO-1 … AO-5."""

    __tablename__ = "plan_addons"

    id: Mapped[int] = mapped_column(primary_key=True)
    plan_id: Mapped[int | None] = mapped_column(ForeignKey("customer_plans.id", ondelete="CASCADE"), index=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    name: Mapped[str] = mapped_column(String(160))
    amount_cents: Mapped[int] = mapped_column(Integer)  # per invoice (recurring) or total (one-time, installments)
    payment_plan: Mapped[str] = mapped_column(String(20), default="recurring")
    installments: Mapped[int | None] = mapped_column(Integer)
    installments_billed: Mapped[int] = mapped_column(Integer, default=0)
    billed_cents: Mapped[int] = mapped_column(Integer, default=0)
    start_date: Mapped[date | None] = mapped_column(Date)
    end_date: Mapped[date | None] = mapped_column(Date)
    status: Mapped[AddonStatus] = mapped_column(status_type(AddonStatus, 20), default=AddonStatus.ACTIVE)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)

    plan: Mapped[CustomerPlan | None] = relationship(back_populates="addons")
