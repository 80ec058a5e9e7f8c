"""Business settings: one row; until it is saved, the config's defaults apply."""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from flask import current_app, g, has_request_context
from sqlalchemy import inspect, select
from sqlalchemy import select as _select

from portal.extensions import db
from portal.models import BusinessSettings
from portal.services.errors import ValidationError

_for_run: BusinessSettings | None = None


def get() -> BusinessSettings:
    """The settings row (read once per request, and once per scheduler run: `fixed_for_run`)."""
    if _for_run is not None:
        return _for_run
    cached = getattr(g, "_business_settings", None) if has_request_context() else None
    if cached is not None:
        return cached
    return _load()


@contextmanager
def fixed_for_run() -> Iterator[BusinessSettings]:
    """Issue 16: the scheduler reads the settings once for a whole run, not once per payment or email. The run
    (and its worker threads) sees a detached copy; `ensure()` still loads the row itself to change it."""
    global _for_run
    row = _load()
    columns = {attr.key: getattr(row, attr.key) for attr in inspect(BusinessSettings).column_attrs}
    previous, _for_run = _for_run, BusinessSettings(**columns)
    try:
        yield _for_run
    finally:
        _for_run = previous


def _load() -> BusinessSettings:
    row = db.session.scalars(select(BusinessSettings).order_by(BusinessSettings.id).limit(1)).first()
    if row is None:
        cfg = current_app.config
        row = BusinessSettings(name=cfg["BUSINESS_NAME"], timezone=cfg["BUSINESS_TIMEZONE"],
                               currency=cfg["BUSINESS_CURRENCY"], fee_percent_bp=295, fee_fixed_cents=30,
                               refund_window_days=90, dunning_retry_hours="24,48,72", reminders_enabled=True,
                               reminder_days="1,7,14,30", autopay_enabled=False, require_card_for_deposits=False,
                               require_staff_2fa=False,
                               default_tax_bp=0, invoice_due_days=14, next_invoice_number=1001,
                               next_job_number=1, next_estimate_number=1)
    if has_request_context():
        g._business_settings = row
    return row


def ensure() -> BusinessSettings:
    """The persisted row, created from defaults if missing (caller commits)."""
    row = _load() if _for_run is not None else get()
    if row.id is None:
        db.session.add(row)
        db.session.flush()
    return row


def timezone_name() -> str:
    return get().timezone or current_app.config["BUSINESS_TIMEZONE"]


def currency() -> str:
    return get().currency or current_app.config["BUSINESS_CURRENCY"]


def update_business(*, name: str, email: str | None, phone: str | None, address: str | None,
                    invoice_due_days: int, default_tax_bp: int, require_card_for_deposits: bool) -> BusinessSettings:
    """Caller commits."""
    name = " ".join((name or "").split())
    if not name:
        raise ValidationError("name", "Enter the business name.")
    if not 0 <= invoice_due_days <= 365:
        raise ValidationError("invoice_due_days", "Between 0 and 365 days.")
    if not 0 <= default_tax_bp <= 5_000:
        raise ValidationError("default_tax", "Between 0 and 50 percent.")
    row = ensure()
    row.name, row.email = name, (email or "").strip().lower() or None
    row.phone, row.address = (phone or "").strip() or None, (address or "").strip() or None
    row.invoice_due_days, row.default_tax_bp = invoice_due_days, default_tax_bp
    row.require_card_for_deposits = require_card_for_deposits
    return row


def parse_retry_hours(raw: str | None) -> str:
    """D-1: "24, 48, 72" → "24,48,72": whole hours from 1 to 720, increasing, at most 6 retries."""
    parts = [p.strip() for p in (raw or "").replace(";", ",").split(",") if p.strip()]
    if not all(p.isascii() and p.isdigit() for p in parts):
        raise ValidationError("dunning_hours", "Enter whole hours separated by commas, like 24, 48, 72.")
    hours = [int(p) for p in parts]
    if len(hours) > 6:
        raise ValidationError("dunning_hours", "At most 6 retries.")
    if any(not 1 <= h <= 720 for h in hours):
        raise ValidationError("dunning_hours", "Each retry must be between 1 and 720 hours (30 days) after the "
                                               "first failure.")
    if hours != sorted(set(hours)):
        raise ValidationError("dunning_hours", "List each retry once, in increasing order.")
    return ",".join(str(h) for h in hours)


def update_payments(*, fee_percent_bp: int, fee_fixed_cents: int, refund_window_days: int,
                    dunning_retry_hours: str | None = None) -> BusinessSettings:
    """PAY-5, R-3, D-1: processing fee, refund window, retry schedule. Caller commits."""
    if not 0 <= fee_percent_bp <= 1_000:
        raise ValidationError("fee_percent", "The percentage fee must be between 0 % and 10 %.")
    if not 0 <= fee_fixed_cents <= 500:
        raise ValidationError("fee_fixed", "The fixed fee must be between 0.00 and 5.00.")
    if not 1 <= refund_window_days <= 365:
        raise ValidationError("refund_window_days", "The refund window must be between 1 and 365 days.")
    row = ensure()
    retry = parse_retry_hours(dunning_retry_hours) if dunning_retry_hours is not None else None
    row.fee_percent_bp, row.fee_fixed_cents, row.refund_window_days = fee_percent_bp, fee_fixed_cents, \
        refund_window_days
    if retry is not None:
        row.dunning_retry_hours = retry
    return row


def update_security(*, require_staff_2fa: bool) -> BusinessSettings:
    """Settings › Security (issue 18). Caller commits."""
    row = ensure()
    row.require_staff_2fa = require_staff_2fa
    return row


NUMBER_FORMATS = {"invoice": ("next_invoice_number", "INV-{}"), "job": ("next_job_number", "J-{:04d}"),
                  "estimate": ("next_estimate_number", "E-{:04d}")}


def next_number(kind: str, exists) -> str:
    """The next document number of a kind, taken under a row lock (PostgreSQL) so two staff never get the
    same one; `exists(number)` skips numbers already used (demo data, imports). Caller commits."""
    column, pattern = NUMBER_FORMATS[kind]
    row = ensure()
    row = db.session.scalars(_select(BusinessSettings).where(BusinessSettings.id == row.id)
                             .with_for_update().execution_options(populate_existing=True)).one()
    while True:
        value = getattr(row, column)
        setattr(row, column, value + 1)
        number = pattern.format(value)
        if not exists(number):
            return number
