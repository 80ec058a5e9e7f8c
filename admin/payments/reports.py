"""REP-1: /admin/reports/transactions with date filters, totals and ?format=csv."""
from __future__ import annotations

import csv
import io
from datetime import date, timedelta

from flask import Response, render_template, request

from admin import bp
from portal import clock
from portal.money import to_decimal
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
    report = ledger.transactions(start, end, chosen)
    if request.args.get("format") == "csv":
        return _csv(report)
    return render_template("admin/reports/transactions.html", report=report, errors=errors, types=ledger.TYPES,
                           chosen=chosen, currency=settings.currency()), 400 if errors else 200


def _cell(text: str) -> str:
    """Spreadsheet apps run cells that start with these as formulas."""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def _csv(report: ledger.Report) -> Response:
    currency = settings.currency()
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["date", "customer", "customer_id", "type", "method", "card", "status", "failure_message",
                     "amount", "fee", "net", "currency", "reference", "payment_id"])
    for r in report.rows:
        writer.writerow([r.when.astimezone(clock.business_tz()).strftime("%Y-%m-%d %H:%M"),
                         _cell(r.customer.display_name) if r.customer else "", r.customer.id if r.customer else "",
                         r.type, r.method or "", r.card or "", r.status, _cell(r.message or ""),
                         to_decimal(r.amount_cents, currency), to_decimal(r.fee_cents, currency),
                         to_decimal(r.net_cents, currency), currency, _cell(r.reference or ""), r.payment_id or ""])
    name = f"transactions-{report.start.isoformat()}-{report.end.isoformat()}.csv"
    return Response(out.getvalue(), mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})
