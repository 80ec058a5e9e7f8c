"""C-9, G-3: the activity feed. One row per thing that happened, with who did it."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal import clock
from portal.extensions import db
from portal.models.types import UTCDateTime

ACTIVITY_TYPES = ("customer", "email", "payment", "failure", "refund", "note", "contact", "estimate",
                  "message", "plan", "card", "invoice", "job", "portal")


class ActivityEvent(db.Model):
    __tablename__ = "activity_events"
    __table_args__ = (Index("ix_activity_events_customer_created", "customer_id", "created_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"))
    event_type: Mapped[str] = mapped_column(String(20), index=True)
    summary: Mapped[str] = mapped_column(String(500))
    detail: Mapped[str | None] = mapped_column(Text)
    actor_kind: Mapped[str] = mapped_column(String(10), default="system")  # staff / customer / system
    actor_staff_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id", ondelete="SET NULL"))
    plan_id: Mapped[int | None] = mapped_column(ForeignKey("customer_plans.id", ondelete="SET NULL"), index=True)
    invoice_id: Mapped[int | None] = mapped_column(ForeignKey("invoices.id", ondelete="SET NULL"))
    email_id: Mapped[int | None] = mapped_column(ForeignKey("queued_emails.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)

    actor = relationship("StaffUser")
    email = relationship("QueuedEmail")  # set with the new email: linked in the same flush, no flush of its own
