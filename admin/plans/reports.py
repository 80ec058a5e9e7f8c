"""REP-2: the overdue dashboard; REP-3: the plan report."""
from __future__ import annotations

from flask import render_template, request

from admin import bp
from portal.services.plans import reports as plan_reports


@bp.get("/overdue")
def overdue():
    bucket = request.args.get("bucket") if request.args.get("bucket") in plan_reports.BUCKETS else None
    kind = request.args.get("kind") if request.args.get("kind") in ("plan", "invoice") else None
    return render_template("admin/plans/overdue.html", report=plan_reports.overdue_report(bucket=bucket, kind=kind),
                           buckets=plan_reports.BUCKETS, bucket=bucket, kind=kind)


@bp.get("/reports/plans")
def plan_report():
    status = request.args.get("status") if request.args.get("status") in (
        "draft", "pending", "active", "cancelled", "expired") else None
    return render_template("admin/plans/report.html", report=plan_reports.plan_report(status), status=status,
                           monthly_value=plan_reports.monthly_value)
