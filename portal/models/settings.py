"""Business settings: one row, edited under /admin/settings."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from portal import clock
from portal.extensions import db
from portal.models.types import UTCDateTime


class BusinessSettings(db.Model):
    __tablename__ = "business_settings"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(160))
    email: Mapped[str | None] = mapped_column(String(254))
    phone: Mapped[str | None] = mapped_column(String(32))
    address: Mapped[str | None] = mapped_column(String(400))
    currency: Mapped[str] = mapped_column(String(3), default="USD")
    timezone: Mapped[str] = mapped_column(String(64), default="America/Los_Angeles")
    fee_percent_bp: Mapped[int] = mapped_column(Integer, default=295)  # PAY-5: 2.95 %
    fee_fixed_cents: Mapped[int] = mapped_column(Integer, default=30)
    refund_window_days: Mapped[int] = mapped_column(Integer, default=90)
    dunning_retry_hours: Mapped[str] = mapped_column(String(60), default="24,48,72")  # D-1
    reminders_enabled: Mapped[bool] = mapped_column(Boolean, default=True)  # INV-5
    reminder_days: Mapped[str] = mapped_column(String(60), default="1,7,14,30")
    autopay_enabled: Mapped[bool] = mapped_column(Boolean, default=False)  # INV-6
    require_card_for_deposits: Mapped[bool] = mapped_column(Boolean, default=False)  # W-6
    require_staff_2fa: Mapped[bool] = mapped_column(Boolean, default=False)  # Settings › Security
    default_tax_bp: Mapped[int] = mapped_column(Integer, default=0)
    invoice_due_days: Mapped[int] = mapped_column(Integer, default=14)
    next_invoice_number: Mapped[int] = mapped_column(Integer, default=1001)
    next_job_number: Mapped[int] = mapped_column(Integer, default=1)
    next_estimate_number: Mapped[int] = mapped_column(Integer, default=1)


class FormSubmission(db.Model):
    """A create form submitted once: its one-time key, stored in the same transaction as what it created, so a
    double click or a resubmitted page creates nothing new and leads to what the first one made."""

    __tablename__ = "form_submissions"

    id: Mapped[int] = mapped_column(primary_key=True)
    form_key: Mapped[str] = mapped_column(String(80), unique=True)
    kind: Mapped[str] = mapped_column(String(20))
    target_id: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)
