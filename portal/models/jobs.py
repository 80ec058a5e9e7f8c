"""INV-1: jobs and their visits (the portal's appointments)."""
from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal import clock
from portal.extensions import db
from portal.models.types import UTCDateTime, status_type


class JobStatus(StrEnum):
    SCHEDULED = "scheduled"
    IN_PROGRESS = "in_progress"
    FINISHED = "finished"
    CANCELLED = "cancelled"


class VisitStatus(StrEnum):
    SCHEDULED = "scheduled"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    CANCELLED = "cancelled"


class Job(db.Model):
    __tablename__ = "jobs"

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    plan_id: Mapped[int | None] = mapped_column(ForeignKey("customer_plans.id", ondelete="SET NULL"), index=True)
    number: Mapped[str] = mapped_column(String(30), unique=True)
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text)
    address: Mapped[str | None] = mapped_column(String(400))
    technician_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id", ondelete="SET NULL"), index=True)
    status: Mapped[JobStatus] = mapped_column(status_type(JobStatus, 20), default=JobStatus.SCHEDULED, index=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)

    customer = relationship("Customer")
    technician = relationship("StaffUser")
    line_items: Mapped[list[JobLineItem]] = relationship(
        back_populates="job", cascade="all, delete-orphan", order_by="JobLineItem.position")
    visits: Mapped[list[Visit]] = relationship(
        back_populates="job", cascade="all, delete-orphan", order_by="Visit.starts_at")

    @property
    def total_cents(self) -> int:
        return sum(li.amount_cents for li in self.line_items)


class JobLineItem(db.Model):
    __tablename__ = "job_line_items"

    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    description: Mapped[str] = mapped_column(String(300))
    quantity: Mapped[int] = mapped_column(Integer, default=1)
    unit_price_cents: Mapped[int] = mapped_column(Integer, default=0)
    position: Mapped[int] = mapped_column(Integer, default=0)
    job: Mapped[Job] = relationship(back_populates="line_items")

    @property
    def amount_cents(self) -> int:
        return self.quantity * self.unit_price_cents


class Visit(db.Model):
    __tablename__ = "visits"
    # a customer's visits (through their jobs) counted and paged from the index alone (migration 0019)
    __table_args__ = (Index("ix_visits_job_times", "job_id", "starts_at",
                            postgresql_include=["ends_at", "status", "id"]),)

    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime)
    technician_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id", ondelete="SET NULL"), index=True)
    status: Mapped[VisitStatus] = mapped_column(status_type(VisitStatus, 20), default=VisitStatus.SCHEDULED)
    notes: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)

    job: Mapped[Job] = relationship(back_populates="visits")
    technician = relationship("StaffUser")
