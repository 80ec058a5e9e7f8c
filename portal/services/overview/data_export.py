"""DATA-2: the whole business as a ZIP of CSV files with a README.txt describing every column, streamed.

`zip_chunks()` yields the archive's bytes as it is written: `zipfile` writes to a sink that cannot seek (so it
uses data descriptors instead of going back to patch headers), each table is read `BATCH` rows at a time by
primary key, and every batch's compressed bytes are handed on at once. Memory stays bounded whatever the size of
the business. customers.csv is the same file as the customer export, so it can be imported into another business.

Left out on purpose: secrets and internals (portal login secrets, staff passwords and two-factor secrets, login
sessions, idempotency keys of charges, webhook bookkeeping, imports in progress, the outbox's email bodies).
"""
from __future__ import annotations

import csv
import io
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import Enum, Table, select

from portal import clock
from portal.extensions import db
from portal.models import (
    ActivityEvent,
    Address,
    Adjustment,
    Card,
    ContactLog,
    CustomerEmail,
    CustomerNote,
    CustomerPhone,
    CustomerPlan,
    CustomFieldDefinition,
    CustomFieldValue,
    Estimate,
    EstimateLineItem,
    Invoice,
    InvoiceLineItem,
    Job,
    JobLineItem,
    Payment,
    PaymentAllocation,
    PlanAddon,
    PlanPayment,
    PlanPaymentLine,
    Refund,
    Visit,
)
from portal.services.crm import custom_fields, exporting
from portal.services.platform import settings

BATCH = 1000


@dataclass(frozen=True)
class TableFile:
    name: str
    table: Table
    about: str
    leave_out: tuple[str, ...] = ()


FILES = [
    TableFile("customer_emails.csv", CustomerEmail.__table__, "Every email address of each customer."),
    TableFile("customer_phones.csv", CustomerPhone.__table__, "Every phone number of each customer."),
    TableFile("addresses.csv", Address.__table__, "Service and billing addresses."),
    TableFile("notes.csv", CustomerNote.__table__, "Internal notes about customers (staff only)."),
    TableFile("custom_fields.csv", CustomFieldDefinition.__table__, "The custom fields defined for client cards."),
    TableFile("custom_field_values.csv", CustomFieldValue.__table__, "Each customer's custom field values (also "
                                                                     "in customers.csv, one column per field)."),
    TableFile("contact_log.csv", ContactLog.__table__, "Calls, emails, meetings and visits logged by staff."),
    TableFile("invoices.csv", Invoice.__table__, "Invoices."),
    TableFile("invoice_lines.csv", InvoiceLineItem.__table__, "The lines of each invoice."),
    TableFile("payments.csv", Payment.__table__, "Payments received (card, cash, check, other).",
              ("form_key",)),
    TableFile("payment_allocations.csv", PaymentAllocation.__table__,
              "What each payment paid: an invoice, a plan payment or an estimate deposit."),
    TableFile("refunds.csv", Refund.__table__, "Refunds of payments.", ("idempotency_key",)),
    TableFile("adjustments.csv", Adjustment.__table__, "Balance adjustments (e.g. a refund that leaves a debt)."),
    TableFile("cards.csv", Card.__table__, "Cards on file: brand, last 4 and expiry only (never numbers); the "
                                          "Stripe payment method id lets you charge them from your Stripe account."),
    TableFile("plans.csv", CustomerPlan.__table__, "Customers' service plans."),
    TableFile("plan_addons.csv", PlanAddon.__table__, "Add-ons of service plans."),
    TableFile("plan_payments.csv", PlanPayment.__table__, "Each billing date of each plan and what became of it."),
    TableFile("plan_payment_lines.csv", PlanPaymentLine.__table__, "The lines of each plan payment."),
    TableFile("estimates.csv", Estimate.__table__, "Estimates and their answers."),
    TableFile("estimate_lines.csv", EstimateLineItem.__table__, "The lines of each estimate."),
    TableFile("jobs.csv", Job.__table__, "Jobs."),
    TableFile("job_lines.csv", JobLineItem.__table__, "The lines (work and parts) of each job."),
    TableFile("visits.csv", Visit.__table__, "Scheduled visits of each job."),
    TableFile("activity.csv", ActivityEvent.__table__, "The activity feed: everything that happened, by whom."),
]

_FILE_OF_TABLE = {f.table.name: f.name for f in FILES} | {"customers": "customers.csv",
                                                          "staff_users": "the staff list (not exported)"}
_SPECIFIC = {
    "customer_id": "the customer (customer_id in customers.csv)",
    "currency": "ISO 4217 currency code of the amounts in this row",
    "number": "the number shown to people (e.g. INV-1001)",
    "kind": "kind of row (see the values in the data)",
    "method": "how it was paid: card, cash, check or other",
    "quantity": "quantity (decimal)",
    "position": "order of the line on its document",
    "stripe_payment_method_id": "Stripe PaymentMethod id (pm_… or card_…)",
    "stripe_payment_intent_id": "Stripe PaymentIntent id",
    "stripe_refund_id": "Stripe Refund id",
    "is_primary": "true for the customer's primary email",
    "is_default": "true for the customer's default card",
    "actor_kind": "who did it: staff, customer or system",
    "event_type": "kind of event (payment, invoice, note, …)",
    "summary": "one line saying what happened",
}


def _describe(table: Table, column) -> str:
    name = column.name
    if name == "id":
        return "this row's id"
    if name in _SPECIFIC:
        return _SPECIFIC[name]
    if isinstance(column.type, Enum) and column.type.enums:
        return "one of: " + ", ".join(column.type.enums)
    for fk in column.foreign_keys:
        target = fk.column.table.name
        return f"id of the row in {_FILE_OF_TABLE.get(target, target)}"
    if name.endswith("_cents"):
        return "amount in cents (hundredths of the currency unit); 1234 = 12.34"
    if name.endswith("_bp"):
        return "basis points: hundredths of a percent; 825 = 8.25 %"
    if name.endswith("_at"):
        return "date and time, UTC, ISO 8601 (empty: not happened)"
    if name.endswith("_date") or name in ("valid_until",):
        return "date, YYYY-MM-DD"
    return name.replace("_", " ")


def _columns(f: TableFile) -> list:
    return [c for c in f.table.columns if c.name not in f.leave_out]


def readme() -> str:
    business = settings.get()
    lines = [f"Data export of {business.name}, made {clock.now().isoformat(timespec='seconds')} (UTC).", "",
             "Each file is CSV: UTF-8, comma separated, first line the column names. Ids link the files (a "
             "customer_id is the id in customers.csv). Amounts are integer cents of the row's currency; dates "
             "are YYYY-MM-DD, times ISO 8601 in UTC. A cell that starts with = + - or @ has a ' put before it, "
             "so spreadsheets do not run it as a formula.", "",
             "customers.csv", "  Every customer, in the columns the customer import reads (Customers › Import CSV "
             "in another business recreates them, notes included).",
             *[f"  {c}: {text}" for c, text in exporting.DESCRIPTIONS.items()], ""]
    for f in FILES:
        lines += [f.name, f"  {f.about}", *[f"  {c.name}: {_describe(f.table, c)}" for c in _columns(f)], ""]
    return "\n".join(lines) + "\n"


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.isoformat(timespec="seconds")
    if isinstance(value, date):
        return value.isoformat()
    return exporting.safe_cell(str(value))


def table_batches(f: TableFile, batch: int = BATCH) -> Iterator[list[list[str]]]:
    columns = _columns(f)
    key = f.table.c.id
    last = 0
    while True:
        rows = db.session.execute(select(*columns).where(key > last).order_by(key).limit(batch)).all()
        if not rows:
            return
        last = rows[-1].id
        yield [[_cell(v) for v in row] for row in rows]


class _Sink:
    """Where zipfile writes: it can tell its position but not seek, so zipfile streams (data descriptors)."""

    def __init__(self) -> None:
        self._chunks: list[bytes] = []
        self._position = 0

    def write(self, data: bytes, /) -> int:
        self._chunks.append(bytes(data))
        self._position += len(data)
        return len(data)

    def close(self) -> None:
        return None

    def tell(self) -> int:
        return self._position

    def flush(self) -> None:
        return None

    def take(self) -> bytes:
        data = b"".join(self._chunks)
        self._chunks.clear()
        return data


def _write_csv(archive: zipfile.ZipFile, sink: _Sink, name: str, header: list[str],
               batches: Iterator[list[list[str]]]) -> Iterator[bytes]:
    with archive.open(name, "w", force_zip64=True) as member:
        text = io.TextIOWrapper(member, encoding="utf-8", newline="")
        writer = csv.writer(text)
        writer.writerow(header)
        for rows in batches:
            writer.writerows(rows)
            text.flush()
            yield sink.take()
        text.flush()
        text.detach()
    yield sink.take()


def zip_chunks() -> Iterator[bytes]:
    """The archive's bytes, a batch of rows at a time."""
    sink = _Sink()
    with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("README.txt", readme())
        yield sink.take()
        fields = custom_fields.definitions()
        yield from _write_csv(archive, sink, "customers.csv", exporting.header(fields),
                              exporting.customer_batches(fields))
        for f in FILES:
            yield from _write_csv(archive, sink, f.name, [c.name for c in _columns(f)], table_batches(f))
    yield sink.take()
