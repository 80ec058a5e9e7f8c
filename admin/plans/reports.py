"""REP-2: the overdue dashboard; REP-3: the plan report."""
from __future__ import annotations

from flask import render_template, request

from admin import bp
from portal import charts
from portal.money import format_money
from portal.services.plans import reports as plan_reports


@bp.get("/overdue")
def overdue():
    bucket = request.args.get("bucket") if request.args.get("bucket") in plan_reports.BUCKETS else None
    kind = request.args.get("kind") if request.args.get("kind") in ("plan", "invoice") else None
    report = plan_reports.overdue_report(bucket=bucket, kind=kind, page=request.args.get("page"))
    chart = charts.bar_chart(
        "aging-chart", "Owed by age (days past due)",
        "; ".join(f"{b} days: {format_money(report.bucket_totals[b])} on {report.bucket_counts[b]} item"
                  f"{'' if report.bucket_counts[b] == 1 else 's'}" for b in plan_reports.BUCKETS) + ".",
        ["Owed"], [(f"{b} days", (report.bucket_totals[b],)) for b in plan_reports.BUCKETS], format_money)
    params = {k: v for k, v in (("bucket", bucket), ("kind", kind)) if v}
    return render_template("admin/plans/overdue.html", report=report, buckets=plan_reports.BUCKETS, bucket=bucket,
                           kind=kind, chart=chart, params=params)


@bp.get("/reports/plans")
def plan_report():
    status = request.args.get("status") if request.args.get("status") in (
        "draft", "pending", "active", "cancelled", "expired") else None
    report = plan_reports.plan_report(status, page=request.args.get("page"),
                                      owing_page=request.args.get("owing_page"))
    history = report.history
    chart = charts.bar_chart(
        "mrr-chart", "Monthly recurring revenue, last 12 months",
        f"MRR at the end of each month from {history[0][0]:%B %Y} ({format_money(history[0][1])}) to "
        f"{history[-1][0]:%B %Y} ({format_money(history[-1][1])}); highest {format_money(max(c for _, c in history))}.",
        ["MRR"], [(f"{m:%b %Y}", (cents,)) for m, cents in history], format_money)
    params = {"status": status} if status else {}
    return render_template("admin/plans/report.html", report=report, status=status, chart=chart, params=params,
                           monthly_value=plan_reports.monthly_value)
