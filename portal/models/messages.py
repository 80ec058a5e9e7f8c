"""P-6, P-4: messages from customers to the business, and reschedule requests tied to a visit."""
from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal import clock
from portal.extensions import db
from portal.models.types import UTCDateTime, status_type


class MessageStatus(StrEnum):
    NEW = "new"
    HANDLED = "handled"


class MessageRequest(db.Model):
    __tablename__ = "message_requests"

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    visit_id: Mapped[int | None] = mapped_column(ForeignKey("visits.id", ondelete="SET NULL"))
    kind: Mapped[str] = mapped_column(String(20), default="message")  # message / reschedule
    name: Mapped[str] = mapped_column(String(160))
    phone: Mapped[str | None] = mapped_column(String(32))
    body: Mapped[str] = mapped_column(Text)
    status: Mapped[MessageStatus] = mapped_column(status_type(MessageStatus, 10), default=MessageStatus.NEW, index=True)
    handled_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id", ondelete="SET NULL"))
    handled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    replied_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    replied_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id", ondelete="SET NULL"))
    reply_body: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now, index=True)

    customer = relationship("Customer")
    visit = relationship("Visit")
    handled_by = relationship("StaffUser", foreign_keys=[handled_by_id])
    replied_by = relationship("StaffUser", foreign_keys=[replied_by_id])
