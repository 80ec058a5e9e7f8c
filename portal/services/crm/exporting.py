"""DATA-2: every customer as CSV rows, in the columns `importing` reads back (an export imported into an empty
business reproduces its customers, notes included). Rows are produced in batches by id, so a business of any
size streams in bounded memory."""
from __future__ import annotations

import csv
import io
from collections.abc import Iterator

from sqlalchemy import select
from sqlalchemy.orm import selectinload

from portal.extensions import db
from portal.models import Customer, CustomerNote, CustomFieldDefinition, CustomFieldValue
from portal.services.crm import custom_fields
from portal.services.crm.importing import CUSTOM_HEADER, NOTE_SEPARATOR

BATCH = 500

COLUMNS = ["customer_id", "first_name", "last_name", "company_name", "kind", "email", "phone", "street",
           "address_line2", "city", "state", "postal_code", "status", "language", "category", "lead_source", "tags",
           "birthday", "notes", "created_at"]

DESCRIPTIONS = {
    "customer_id": "our id of the customer (the other files' customer_id); not read by the import",
    "first_name": "first name", "last_name": "last name", "company_name": "company name",
    "kind": "individual or business", "email": "primary email (lower case)", "phone": "mobile phone as typed",
    "street": "service address, first line", "address_line2": "service address, second line",
    "city": "service address city", "state": "service address state or region",
    "postal_code": "service address postal code",
    "status": "lead, active, inactive, archived or blacklisted", "language": "preferred language: en, es or ru",
    "category": "A, B, C or VIP", "lead_source": "where the customer came from",
    "tags": "tags, separated by commas", "birthday": "YYYY-MM-DD",
    "notes": "internal notes, oldest first, separated by a line holding only ---",
    "created_at": "when the customer was created (UTC, ISO 8601); not read by the import",
    "custom: <label>": "one column per custom field (Settings › Custom fields), as stored: numbers plain, dates "
                       "YYYY-MM-DD, checkboxes 1 or empty, several choices one per line",
}


def header(fields: list[CustomFieldDefinition]) -> list[str]:
    """COLUMNS, then one column per active custom field."""
    return COLUMNS + [f"{CUSTOM_HEADER}{d.label}" for d in fields]


def safe_cell(value: object) -> str:
    """A cell a spreadsheet will not run as a formula: text starting with = + - @ gets a leading quote (the
    import removes it again)."""
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def customer_batches(fields: list[CustomFieldDefinition], batch: int = BATCH) -> Iterator[list[list[str]]]:
    """Every customer, oldest first, `batch` at a time, as rows of `header(fields)`."""
    last_id = 0
    while True:
        customers = list(db.session.scalars(
            select(Customer).where(Customer.id > last_id).order_by(Customer.id).limit(batch)
            .options(selectinload(Customer.emails), selectinload(Customer.phones), selectinload(Customer.addresses),
                     selectinload(Customer.tags))))
        if not customers:
            return
        last_id = customers[-1].id
        notes: dict[int, list[str]] = {}
        for customer_id, body in db.session.execute(
                select(CustomerNote.customer_id, CustomerNote.body)
                .where(CustomerNote.customer_id.in_([c.id for c in customers]))
                .order_by(CustomerNote.created_at, CustomerNote.id)):
            notes.setdefault(customer_id, []).append(body)
        values: dict[tuple[int, int], str | None] = {}
        for customer_id, field_id, value in db.session.execute(
                select(CustomFieldValue.customer_id, CustomFieldValue.field_id, CustomFieldValue.value)
                .where(CustomFieldValue.customer_id.in_([c.id for c in customers]))):
            values[(customer_id, field_id)] = value
        rows = [_row(c, notes.get(c.id, [])) + [safe_cell(values.get((c.id, d.id))) for d in fields]
                for c in customers]
        for customer in customers:  # keep the session small while streaming (emails, phones, addresses follow)
            db.session.expunge(customer)
        yield rows


def _row(c: Customer, notes: list[str]) -> list[str]:
    address = c.address_of("service")
    values = [c.id, c.first_name, c.last_name, c.company_name, c.kind, c.primary_email, c.mobile_phone,
              address.line1 if address else None, address.line2 if address else None,
              address.city if address else None, address.region if address else None,
              address.postal_code if address else None, c.status.value, c.preferred_language, c.category,
              c.lead_source, ", ".join(t.name for t in c.tags), c.birthday.isoformat() if c.birthday else None,
              NOTE_SEPARATOR.join(notes), c.created_at.isoformat(timespec="seconds")]
    return [safe_cell(v) for v in values]


def csv_chunks() -> Iterator[str]:
    """The customers CSV as text chunks (one per batch), header first, with a BOM so spreadsheets read UTF-8."""
    out = io.StringIO()
    writer = csv.writer(out)
    fields = custom_fields.definitions()
    out.write("\ufeff")
    writer.writerow(header(fields))
    for rows in customer_batches(fields):
        writer.writerows(rows)
        yield out.getvalue()
        out.seek(0)
        out.truncate()
    yield out.getvalue()
