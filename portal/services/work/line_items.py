"""Line items typed by staff (jobs, estimates, invoices): description, quantity, unit price."""
from __future__ import annotations

from dataclasses import dataclass

from portal.money import MAX_CHARGE_CENTS, MoneyError, format_money, parse_amount
from portal.services.errors import ValidationError

MAX_LINES = 200
MAX_QUANTITY = 10_000


@dataclass
class Line:
    description: str
    quantity: int
    unit_price_cents: int

    @property
    def amount_cents(self) -> int:
        return self.quantity * self.unit_price_cents


def parse(rows: list[tuple[str | None, str | None, str | None]], *, required: bool = True) -> list[Line]:
    """Rows without a description are ignored (blank rows of the form). Raises ValidationError("lines", …)."""
    lines = []
    for n, (description, quantity, price) in enumerate(rows, start=1):
        description = " ".join((description or "").split())
        if not description:
            if (quantity or "").strip() not in ("", "1") or (price or "").strip():
                raise ValidationError("lines", f"Line {n}: enter a description.")
            continue
        if len(description) > 300:
            raise ValidationError("lines", f"Line {n}: keep the description under 300 characters.")
        try:
            qty = int((quantity or "1").strip())
        except ValueError:
            raise ValidationError("lines", f"Line {n}: the quantity must be a whole number.") from None
        if qty < 1 or qty > MAX_QUANTITY:
            raise ValidationError("lines", f"Line {n}: the quantity must be between 1 and {MAX_QUANTITY}.")
        try:
            cents = parse_amount(price or "0")
        except MoneyError as exc:
            raise ValidationError("lines", f"Line {n}: {exc}") from None
        lines.append(Line(description, qty, cents))
    if len(lines) > MAX_LINES:
        raise ValidationError("lines", f"At most {MAX_LINES} lines.")
    if sum(line.amount_cents for line in lines) > MAX_CHARGE_CENTS:
        raise ValidationError("lines", f"The lines add up to more than {format_money(MAX_CHARGE_CENTS)}, the most "
                                       "one document can hold; split the work.")
    if required and not lines:
        raise ValidationError("lines", "Add at least one line.")
    return lines


def from_form(form) -> list[tuple[str, str, str]]:
    """The request's line rows: fields line-<n>-description / -quantity / -price."""
    rows = []
    for n in range(MAX_LINES + 1):  # one past the limit, so parse() can refuse instead of dropping rows
        d = form.get(f"line-{n}-description")
        if d is None and form.get(f"line-{n}-price") is None:
            if n > 0 and form.get(f"line-{n + 1}-description") is None:
                break
            continue
        rows.append((d, form.get(f"line-{n}-quantity"), form.get(f"line-{n}-price")))
    return rows
