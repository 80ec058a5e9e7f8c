"""Column types shared by the models."""
from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum

from sqlalchemy import DateTime, Enum, event
from sqlalchemy.orm import Mapper
from sqlalchemy.types import TypeDecorator


class UTCDateTime(TypeDecorator):
    """Stores naive UTC, returns aware UTC, on SQLite and PostgreSQL alike."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect):
        if value is None:
            return None
        return value.replace(tzinfo=UTC)


def status_type(enum_class: type[StrEnum], length: int, name: str = "status") -> Enum:
    """A status column: VARCHAR(length) holding the member's value (the same plain strings as before), loaded as
    the StrEnum member, with a CHECK constraint named by the metadata's convention: ck_<table>_<name>.

    Members compare equal to their strings, so `Invoice.status == "paid"` works in Python and in SQL alike.
    An unknown string is refused when assigned (ValueError), when bound in SQL (LookupError) and by the database.
    """
    return Enum(enum_class, name=name, native_enum=False, create_constraint=True, validate_strings=True,
                values_callable=lambda members: [m.value for m in members], length=length)


def status_values(enum_class: type[StrEnum]) -> tuple[str, ...]:
    """The stored values, in declaration order (what the CHECK constraint allows)."""
    return tuple(m.value for m in enum_class)


def _coerce(enum_class: type[StrEnum]):
    def coerce(target, value, oldvalue, initiator):
        if value is None or isinstance(value, enum_class):
            return value
        return enum_class(value)  # ValueError for a value the column does not allow
    return coerce


@event.listens_for(Mapper, "mapper_configured")
def _typed_statuses(mapper: Mapper, class_) -> None:
    """`obj.status = "paid"` stores InvoiceStatus.PAID, so the attribute is the member before a reload too."""
    for prop in mapper.column_attrs:
        column_type = prop.columns[0].type
        enum_class = getattr(column_type, "enum_class", None)
        if isinstance(column_type, Enum) and enum_class is not None and issubclass(enum_class, StrEnum):
            event.listen(prop.class_attribute, "set", _coerce(enum_class), retval=True)
