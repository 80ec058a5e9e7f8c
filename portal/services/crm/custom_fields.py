"""C-4: custom fields an admin defines; the client card shows and edits their values, validated by type.

Values are keyed by the field's id, so renaming a field's label keeps every value. Stored as text:
numbers normalised ("12.5"), dates ISO, checkboxes "1"/"", multi-lists one choice per line.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation

from sqlalchemy import bindparam, func, select

from portal.extensions import db
from portal.models import Customer, CustomFieldDefinition, CustomFieldValue, StaffUser
from portal.models.customers import CUSTOM_FIELD_TYPES
from portal.services.errors import ValidationError, found
from portal.services.platform import activity

TYPE_LABELS = {"text": "Text", "long_text": "Long text", "number": "Number", "date": "Date",
               "checkbox": "Checkbox", "list": "List (one choice)", "multi_list": "Multi-list (several choices)"}
MAX_VALUE = 5000


def definitions(active_only: bool = True) -> list[CustomFieldDefinition]:
    q = select(CustomFieldDefinition).order_by(CustomFieldDefinition.position, CustomFieldDefinition.id)
    if active_only:
        q = q.where(CustomFieldDefinition.is_active.is_(True))
    return list(db.session.scalars(q))


def choices_of(definition: CustomFieldDefinition) -> list[str]:
    return [line.strip() for line in (definition.options or "").splitlines() if line.strip()]


def _check_definition(label: str | None, field_type: str | None, options: str | None) -> tuple[str, str, str | None]:
    label = (label or "").strip()
    if not label:
        raise ValidationError("label", "Enter a label.")
    if len(label) > 120:
        raise ValidationError("label", "Keep the label under 120 characters.")
    if field_type not in CUSTOM_FIELD_TYPES:
        raise ValidationError("field_type", "Choose a type.")
    lines = [line.strip() for line in (options or "").splitlines() if line.strip()]
    if field_type in ("list", "multi_list"):
        if not lines:
            raise ValidationError("options", "Enter the choices, one per line.")
        if len(set(lines)) != len(lines):
            raise ValidationError("options", "Each choice must be different.")
    return label, field_type, "\n".join(lines) or None


def define(*, label: str | None, field_type: str | None, required: bool, options: str | None,
           staff: StaffUser) -> CustomFieldDefinition:
    label, field_type, options = _check_definition(label, field_type, options)
    position = (db.session.scalar(select(func.max(CustomFieldDefinition.position))) or 0) + 1
    definition = CustomFieldDefinition(label=label, field_type=field_type, required=required,
                                       options=options if field_type in ("list", "multi_list") else None,
                                       position=position, is_active=True)
    db.session.add(definition)
    return definition


def update_definition(definition: CustomFieldDefinition, *, label: str | None, required: bool,
                      options: str | None, active: bool) -> None:
    """The type does not change (existing values were validated for it); label, choices and flags do."""
    label, _, options = _check_definition(label, definition.field_type, options)
    if definition.field_type in ("list", "multi_list"):
        definition.options = options
    definition.label, definition.required, definition.is_active = label, required, active


@dataclass
class FieldValue:
    definition: CustomFieldDefinition
    value: str | None

    @property
    def display(self) -> str:
        kind, value = self.definition.field_type, self.value
        if kind == "checkbox":
            return "Yes" if value == "1" else "No"
        if not value:
            return "—"
        if kind == "multi_list":
            return ", ".join(value.splitlines())
        return value

    @property
    def selected(self) -> list[str]:
        return (self.value or "").splitlines()


_VALUES = (select(CustomFieldDefinition, CustomFieldValue.value)
           .outerjoin(CustomFieldValue, (CustomFieldValue.field_id == CustomFieldDefinition.id)
                      & (CustomFieldValue.customer_id == bindparam("customer_id")))
           .where(CustomFieldDefinition.is_active.is_(True))
           .order_by(CustomFieldDefinition.position, CustomFieldDefinition.id))  # built once: the client card


def values_for(customer: Customer) -> list[FieldValue]:
    """Every active field with the customer's value, in one query (the definitions joined to the values)."""
    rows = db.session.execute(_VALUES, {"customer_id": customer.id}).all()
    return [FieldValue(d, value) for d, value in rows]


def _decimal_text(value: str) -> str:
    """"3,5" and "3.5" are three and a half; "1,250" and "1,250.75" use the comma to group thousands."""
    value = value.replace(" ", "").replace("\u00a0", "")
    if value.count(",") == 1 and "." not in value and len(value.split(",")[1]) != 3:
        return value.replace(",", ".")
    return value.replace(",", "")


def clean_value(definition: CustomFieldDefinition, raw) -> str | None:
    """One field's input (a string; a list for multi-lists) → the stored text. Raises ValidationError."""
    field = f"cf_{definition.id}"
    kind = definition.field_type
    if kind == "checkbox":
        return "1" if raw in ("1", "on", "y", "yes", "true", True) else None
    if kind == "multi_list":
        picked = [v.strip() for v in (raw or []) if v and v.strip()]
        bad = [v for v in picked if v not in choices_of(definition)]
        if bad:
            raise ValidationError(field, f"{definition.label}: “{bad[0]}” is not one of the choices.")
        value = "\n".join(c for c in choices_of(definition) if c in picked)  # the list's order, no duplicates
    else:
        value = (raw or "").strip() if isinstance(raw, str) or raw is None else str(raw)
        if len(value) > MAX_VALUE:
            raise ValidationError(field, f"{definition.label}: keep it under {MAX_VALUE} characters.")
        if value and kind == "text" and "\n" in value:
            value = " ".join(value.split())
        if value and kind == "number":
            try:
                number = Decimal(_decimal_text(value))
            except InvalidOperation:
                raise ValidationError(field, f"{definition.label}: enter a number, like 12 or 3.5.") from None
            if not number.is_finite() or abs(number) >= Decimal("1e15"):
                raise ValidationError(field, f"{definition.label}: enter a number, like 12 or 3.5.")
            value = format(number.normalize(), "f")
        if value and kind == "date":
            try:
                value = date.fromisoformat(value).isoformat()
            except ValueError:
                raise ValidationError(field, f"{definition.label}: enter a date as YYYY-MM-DD.") from None
        if value and kind == "list" and value not in choices_of(definition):
            raise ValidationError(field, f"{definition.label}: “{value}” is not one of the choices.")
    if not value and definition.required:
        raise ValidationError(field, f"{definition.label} is required.")
    return value or None


def save_values(customer: Customer, raw: dict[int, object], staff: StaffUser) -> list[str]:
    """Validate every field first (nothing is saved if one is wrong), then store. Returns changed labels."""
    cleaned = {d.id: clean_value(d, raw.get(d.id)) for d in definitions()}
    existing = {v.field_id: v for v in db.session.scalars(
        select(CustomFieldValue).where(CustomFieldValue.customer_id == customer.id))}
    changed = []
    for definition in definitions():
        new = cleaned[definition.id]
        row = existing.get(definition.id)
        if (row.value if row else None) == new:
            continue
        if row is None:
            db.session.add(CustomFieldValue(customer_id=customer.id, field_id=definition.id, value=new))
        else:
            row.value = new
        changed.append(definition.label)
    if changed:
        activity.record(customer.id, "customer", f"Custom fields changed by {staff.name}: {', '.join(changed)}",
                        staff=staff)
    return changed


def get_definition(field_id: int) -> CustomFieldDefinition:
    return found(db.session.get(CustomFieldDefinition, field_id), "No such field.")
