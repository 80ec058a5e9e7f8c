"""REP-1: /admin/reports/transactions with date filters, totals and ?format=csv."""
from __future__ import annotations

import csv
import io
from datetime import date, timedelta
from functools import partial

from babel.numbers import get_currency_precision
from flask import Response, render_template, request, stream_with_context

from admin import bp
from portal import charts, clock
from portal.money import format_money
from portal.services.billing import credit
from portal.services.payments import ledger
from portal.services.platform import settings


def _date(raw: str | None, default: date) -> tuple[date, str | None]:
    if not raw:
        return default, None
    try:
        value = date.fromisoformat(raw)
    except ValueError:
        return default, f"“{raw}” is not a date; use YYYY-MM-DD."
    if not 1900 <= value.year <= 9000:
        return default, f"{raw} is out of range."
    return value, None


@bp.get("/reports/transactions")
def transactions():
    today = clock.today()
    start, err1 = _date(request.args.get("from"), today.replace(day=1))
    end, err2 = _date(request.args.get("to"), today)
    errors = [e for e in (err1, err2) if e]
    if end < start:
        errors.append("The end date is before the start date; showing the start date only.")
        end = start
    if (end - start) > timedelta(days=3660):
        errors.append("At most ten years at a time.")
        end = start + timedelta(days=3660)
    chosen = tuple(t for t in request.args.getlist("type") if t in ledger.TYPES) or ledger.TYPES
    if request.args.get("format") == "csv":
        return _csv(start, end, chosen)
    report = ledger.transactions(start, end, chosen, page=request.args.get("page"))
    params = {"from": start.isoformat(), "to": end.isoformat(), "type": list(chosen)}
    currency = settings.currency()
    fmt = partial(format_money, currency=currency)
    money_in = sum(b.money_in for b in report.bars)
    money_out = sum(b.money_out for b in report.bars)
    chart = charts.bar_chart(
        "money-chart", f"Money in and out per {report.unit}, {start.isoformat()} to {end.isoformat()}",
        f"{len(report.bars)} {report.unit}s. In: {fmt(money_in)} (payments, deposits, positive adjustments). "
        f"Out: {fmt(money_out)} (refunds, negative adjustments). Declined attempts are not money.",
        ["In", "Out"], [(b.label, (b.money_in, b.money_out)) for b in report.bars], fmt)
    return render_template("admin/reports/transactions.html", report=report, errors=errors, types=ledger.TYPES,
                           chosen=chosen, currency=currency, params=params, chart=chart,
                           credit_held=credit.business_total_cents()), 400 if errors else 200


def _cell(text: str) -> str:
    """Spreadsheet apps run cells that start with these as formulas."""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def _csv(start: date, end: date, chosen: tuple[str, ...]) -> Response:
    """Streamed: rows come from a server-side cursor and leave in chunks, so a year of payments keeps memory flat.
    A declined attempt shows what was attempted (`attempted`) and counts 0 in amount, fee and net."""
    currency, tz = settings.currency(), clock.business_tz()
    places = get_currency_precision(currency)

    def amount(cents: int) -> str:
        """What to_decimal() prints, in integer arithmetic (no Decimal or locale lookup per cell)."""
        if not places:
            return str(cents)
        whole, part = divmod(abs(cents), 10 ** places)
        return f"{'-' if cents < 0 else ''}{whole}.{part:0{places}d}"

    def lines():
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(["date", "customer", "customer_id", "type", "method", "card", "status", "failure_message",
                         "amount", "fee", "net", "attempted", "currency", "reference", "payment_id"])
        if ledger.csv_in_database():  # PostgreSQL writes the same lines itself, in chunks
            yield out.getvalue()
            yield from ledger.csv_lines(start, end, chosen, currency=currency, places=places, tz_name=tz.key)
            return
        for n, r in enumerate(ledger.stream_transactions(start, end, chosen), 1):
            counted = r.counts
            writer.writerow([r.when.astimezone(tz).strftime("%Y-%m-%d %H:%M"),
                             _cell(r.customer.display_name) if r.customer else "",
                             r.customer.id if r.customer else "", r.type, r.method or "", r.card or "", r.status,
                             _cell(r.message or ""), amount(r.amount_cents if counted else 0),
                             amount(r.fee_cents if counted else 0), amount(r.net_cents),
                             "" if counted else amount(r.amount_cents), currency,
                             _cell(r.reference or ""), r.payment_id or ""])
            if n % 500 == 0:
                yield out.getvalue()
                out.seek(0)
                out.truncate()
        yield out.getvalue()

    name = f"transactions-{start.isoformat()}-{end.isoformat()}.csv"
    return Response(stream_with_context(lines()), mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})
