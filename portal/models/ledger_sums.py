"""The transactions report's sums per UTC day and type, kept by PostgreSQL triggers (migration 0018)."""
from __future__ import annotations

from datetime import date

from sqlalchemy import BigInteger, Date, Index, Integer, String, event, text
from sqlalchemy.orm import Mapped, mapped_column

from portal.extensions import db


class LedgerDaySum(db.Model):
    """Sums of the transactions report per UTC day and type (payment, deposit, refund, adjustment, declined). The
    triggers below add, in the writer's own transaction, a row of differences for every insert, update of a summed
    column, delete or truncate of payments, refunds, adjustments and charge attempts — whatever wrote it (the ORM,
    a bulk UPDATE through execute_dml, an import, COPY). Rows are only ever added, never updated in place, so
    concurrent writers never wait on a shared row; `ledger.compact_day_sums` (a scheduler rule) folds each day's
    rows into one. Not kept on SQLite, where the report reads the tables."""

    __tablename__ = "ledger_day_sums"
    __table_args__ = (
        Index("ix_ledger_day_sums_day", "day", "type",
              postgresql_include=["amount_cents", "fee_cents", "n", "positive_cents"]),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    day: Mapped[date] = mapped_column(Date)
    type: Mapped[str] = mapped_column(String(10))
    amount_cents: Mapped[int] = mapped_column(BigInteger)
    fee_cents: Mapped[int] = mapped_column(BigInteger)
    n: Mapped[int] = mapped_column(BigInteger)  # rows
    positive_cents: Mapped[int] = mapped_column(BigInteger)  # the positive amounts' sum (money in)


# table: (its day column, type, amount, fee, which rows count, the types it holds, the columns summed)
SOURCES = {
    "payments": ("received_at", "kind", "amount_cents", "fee_cents", "true", ("payment", "deposit"),
                 ("received_at", "kind", "amount_cents", "fee_cents")),
    "refunds": ("created_at", "'refund'", "-amount_cents", "0", "true", ("refund",), ("created_at", "amount_cents")),
    "adjustments": ("created_at", "'adjustment'", "amount_cents", "0", "true", ("adjustment",),
                    ("created_at", "amount_cents")),
    # declined attempts are only counted (their money never moved)
    "charge_attempts": ("created_at", "'declined'", "0", "0", "status = 'failed'", ("declined",),
                        ("created_at", "status")),
}
_INSERT = "INSERT INTO ledger_day_sums (day, type, amount_cents, fee_cents, n, positive_cents)"


def _grouped(rows: str, sign: str, day: str, kind: str, amount: str, fee: str, counted: str) -> str:
    return (f"{_INSERT} SELECT ({day})::date, {kind}, {sign}sum({amount}), {sign}sum({fee}), {sign}count(*), "
            f"{sign}sum(CASE WHEN {amount} > 0 THEN {amount} ELSE 0 END) FROM {rows} WHERE {counted} GROUP BY 1, 2")


def _row(prefix: str, sign: str, day: str, kind: str, amount: str, fee: str, counted: str) -> str:
    def of(expr: str) -> str:
        for column in ("received_at", "created_at", "kind", "amount_cents", "fee_cents", "status"):
            expr = expr.replace(column, f"{prefix}.{column}")
        return expr

    value = of(amount)
    return (f"IF {of(counted)} THEN {_INSERT} VALUES (({of(day)})::date, {of(kind)}, {sign}({value}), "
            f"{sign}({of(fee)}), {sign}1, {sign}(CASE WHEN {value} > 0 THEN {value} ELSE 0 END)); END IF;")


def trigger_ddl() -> list[str]:
    """The PostgreSQL functions and triggers that keep ledger_day_sums, and the sums of the rows already there."""
    out = []
    for table, (day, kind, amount, fee, counted, types, columns) in SOURCES.items():
        parts = (day, kind, amount, fee, counted)
        out.append(f"""CREATE OR REPLACE FUNCTION ledger_day_sums_{table}() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        {_grouped('new_rows', '', *parts)};
    ELSIF TG_OP = 'DELETE' THEN
        {_grouped('old_rows', '-', *parts)};
    ELSIF TG_OP = 'UPDATE' THEN
        {_row('OLD', '-', *parts)}
        {_row('NEW', '', *parts)}
    ELSIF TG_OP = 'TRUNCATE' THEN
        DELETE FROM ledger_day_sums WHERE type IN ({", ".join(f"'{t}'" for t in types)});
    END IF;
    RETURN NULL;
END $$""")
        changed = " OR ".join(f"OLD.{c} IS DISTINCT FROM NEW.{c}" for c in columns)
        out += [f"CREATE TRIGGER ledger_day_sums_insert AFTER INSERT ON {table} REFERENCING NEW TABLE AS new_rows "
                f"FOR EACH STATEMENT EXECUTE FUNCTION ledger_day_sums_{table}()",
                f"CREATE TRIGGER ledger_day_sums_delete AFTER DELETE ON {table} REFERENCING OLD TABLE AS old_rows "
                f"FOR EACH STATEMENT EXECUTE FUNCTION ledger_day_sums_{table}()",
                f"CREATE TRIGGER ledger_day_sums_update AFTER UPDATE OF {', '.join(columns)} ON {table} "
                f"FOR EACH ROW WHEN ({changed}) EXECUTE FUNCTION ledger_day_sums_{table}()",
                f"CREATE TRIGGER ledger_day_sums_truncate AFTER TRUNCATE ON {table} "
                f"FOR EACH STATEMENT EXECUTE FUNCTION ledger_day_sums_{table}()",
                _grouped(table, "", *parts)]
    return out


def drop_trigger_ddl() -> list[str]:
    out = []
    for table in SOURCES:
        out += [f"DROP TRIGGER ledger_day_sums_{e} ON {table}" for e in ("insert", "delete", "update", "truncate")]
        out.append(f"DROP FUNCTION ledger_day_sums_{table}()")
    return out


@event.listens_for(db.metadata, "after_create")
def _create_triggers(target, connection, tables=(), **kw) -> None:
    """create_all (the tests, a new database without migrations) gets the triggers too, after every table, when
    it created ledger_day_sums (a second create_all over existing tables adds nothing)."""
    if connection.dialect.name == "postgresql" and LedgerDaySum.__table__ in tables:
        for statement in trigger_ddl():
            connection.execute(text(statement))


class CustomerPaymentSum(db.Model):
    """What each customer has paid over their whole history and how many payments they made (the client card's
    figures), kept by PostgreSQL triggers like `LedgerDaySum`: a row of differences per customer for every insert,
    update of a summed column, delete or truncate of payments; `ledger.compact_day_sums` folds a customer's rows
    into one. The card reads a few rows instead of a long history's every payment. Not kept on SQLite (the card
    sums the payments there)."""

    __tablename__ = "customer_payment_sums"
    __table_args__ = (
        Index("ix_customer_payment_sums_customer", "customer_id", postgresql_include=["paid_cents", "n"]),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    customer_id: Mapped[int] = mapped_column(Integer)  # no foreign key: a customer's rows go when they are folded
    paid_cents: Mapped[int] = mapped_column(BigInteger)  # amount less refunded, of payments that succeeded
    n: Mapped[int] = mapped_column(BigInteger)  # payments, whatever their status


PAID_STATUSES = ("succeeded", "refunded", "partially_refunded")  # what `client_card.financials` counts as paid
_PAID = (f"CASE WHEN status IN ({', '.join(repr(s) for s in PAID_STATUSES)}) THEN amount_cents - refunded_cents "
         "ELSE 0 END")
_CUSTOMER_INSERT = "INSERT INTO customer_payment_sums (customer_id, paid_cents, n)"
_CUSTOMER_COLUMNS = ("customer_id", "status", "amount_cents", "refunded_cents")


def customer_trigger_ddl() -> list[str]:
    """The PostgreSQL function and triggers that keep customer_payment_sums, and the sums of the payments there."""
    def row(prefix: str, sign: str) -> str:
        paid = _PAID
        for column in ("status", "amount_cents", "refunded_cents"):
            paid = paid.replace(column, f"{prefix}.{column}")
        return f"{_CUSTOMER_INSERT} VALUES ({prefix}.customer_id, {sign}({paid}), {sign}1);"

    def grouped(rows: str, sign: str) -> str:
        return f"{_CUSTOMER_INSERT} SELECT customer_id, {sign}sum({_PAID}), {sign}count(*) FROM {rows} GROUP BY 1"

    changed = " OR ".join(f"OLD.{c} IS DISTINCT FROM NEW.{c}" for c in _CUSTOMER_COLUMNS)
    return [f"""CREATE OR REPLACE FUNCTION customer_payment_sums_payments() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        {grouped('new_rows', '')};
    ELSIF TG_OP = 'DELETE' THEN
        {grouped('old_rows', '-')};
    ELSIF TG_OP = 'UPDATE' THEN
        {row('OLD', '-')}
        {row('NEW', '')}
    ELSIF TG_OP = 'TRUNCATE' THEN
        DELETE FROM customer_payment_sums;
    END IF;
    RETURN NULL;
END $$""",
            "CREATE TRIGGER customer_payment_sums_insert AFTER INSERT ON payments REFERENCING NEW TABLE AS new_rows "
            "FOR EACH STATEMENT EXECUTE FUNCTION customer_payment_sums_payments()",
            "CREATE TRIGGER customer_payment_sums_delete AFTER DELETE ON payments REFERENCING OLD TABLE AS old_rows "
            "FOR EACH STATEMENT EXECUTE FUNCTION customer_payment_sums_payments()",
            f"CREATE TRIGGER customer_payment_sums_update AFTER UPDATE OF {', '.join(_CUSTOMER_COLUMNS)} ON payments "
            f"FOR EACH ROW WHEN ({changed}) EXECUTE FUNCTION customer_payment_sums_payments()",
            "CREATE TRIGGER customer_payment_sums_truncate AFTER TRUNCATE ON payments "
            "FOR EACH STATEMENT EXECUTE FUNCTION customer_payment_sums_payments()",
            grouped("payments", "")]


def drop_customer_trigger_ddl() -> list[str]:
    return [f"DROP TRIGGER customer_payment_sums_{e} ON payments" for e in ("insert", "delete", "update", "truncate")] \
        + ["DROP FUNCTION customer_payment_sums_payments()"]


@event.listens_for(db.metadata, "after_create")
def _create_customer_triggers(target, connection, tables=(), **kw) -> None:
    """create_all gets customer_payment_sums' triggers too (see `_create_triggers`)."""
    if connection.dialect.name == "postgresql" and CustomerPaymentSum.__table__ in tables:
        for statement in customer_trigger_ddl():
            connection.execute(text(statement))
