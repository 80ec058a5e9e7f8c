"""Issue 14: what the running system records about itself (the scheduler's last completed run per node)."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from portal import clock
from portal.extensions import db
from portal.models.types import UTCDateTime


class SchedulerRun(db.Model):
    """One row per node running the scheduler (`flask jobs run [--every N]`), updated after each completed pass;
    /healthz shows the newest."""

    __tablename__ = "scheduler_runs"

    id: Mapped[int] = mapped_column(primary_key=True)
    node: Mapped[str] = mapped_column(String(120), unique=True)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)
    finished_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now, index=True)
    runs: Mapped[int] = mapped_column(Integer, default=0)
    failed_rules: Mapped[str | None] = mapped_column(String(300))  # names of the rules that raised in that pass
    last_error: Mapped[str | None] = mapped_column(Text)
