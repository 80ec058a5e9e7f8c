"""P-5: estimates, approved with a typed name or declined."""
from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

from sqlalchemy import Date, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal import clock
from portal.extensions import db
from portal.models.types import UTCDateTime, status_type


class EstimateStatus(StrEnum):
    DRAFT = "draft"
    SENT = "sent"
    APPROVED = "approved"
    DECLINED = "declined"
    CONVERTED = "converted"
    EXPIRED = "expired"


class Estimate(db.Model):
    __tablename__ = "estimates"
    __table_args__ = (
        Index("ix_estimates_customer_created", "customer_id", "created_at"),  # issue 15
        # the dashboard's newest open estimates (migration 0019)
        Index("ix_estimates_sent", "sent_at", sqlite_where=text("status = 'sent'"),
              postgresql_where=text("status = 'sent'")),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    number: Mapped[str] = mapped_column(String(30), unique=True)
    title: Mapped[str] = mapped_column(String(200))
    message: Mapped[str | None] = mapped_column(Text)
    status: Mapped[EstimateStatus] = mapped_column(status_type(EstimateStatus, 20), default=EstimateStatus.DRAFT,
                                                  index=True)
    currency: Mapped[str] = mapped_column(String(3), default="USD")
    deposit_cents: Mapped[int] = mapped_column(Integer, default=0)
    valid_until: Mapped[date | None] = mapped_column(Date)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    approved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    approved_name: Mapped[str | None] = mapped_column(String(160))
    approved_ip: Mapped[str | None] = mapped_column(String(45))
    declined_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    decline_reason: Mapped[str | None] = mapped_column(Text)
    deposit_payment_id: Mapped[int | None] = mapped_column(
        ForeignKey("payments.id", ondelete="SET NULL", use_alter=True))
    job_id: Mapped[int | None] = mapped_column(ForeignKey("jobs.id", ondelete="SET NULL"))
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)

    customer = relationship("Customer")
    line_items: Mapped[list[EstimateLineItem]] = relationship(
        back_populates="estimate", cascade="all, delete-orphan", order_by="EstimateLineItem.position")

    @property
    def total_cents(self) -> int:
        return sum(li.amount_cents for li in self.line_items)


class EstimateLineItem(db.Model):
    __tablename__ = "estimate_line_items"

    id: Mapped[int] = mapped_column(primary_key=True)
    estimate_id: Mapped[int] = mapped_column(ForeignKey("estimates.id", ondelete="CASCADE"), index=True)
    description: Mapped[str] = mapped_column(String(300))
    quantity: Mapped[int] = mapped_column(Integer, default=1)
    unit_price_cents: Mapped[int] = mapped_column(Integer, default=0)
    position: Mapped[int] = mapped_column(Integer, default=0)
    estimate: Mapped[Estimate] = relationship(back_populates="line_items")

    @property
    def amount_cents(self) -> int:
        return self.quantity * self.unit_price_cents
