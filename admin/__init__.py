"""The staff admin, /admin. Access is checked once, here (docs/architecture.md).

Views are grouped by domain like portal.services (crm, work, billing, payments, plans, platform, overview): each
package holds its view modules and `forms.py` with the forms only they use; forms several domains share are in
admin.forms, shared view helpers in admin.common. Every module registers on the one blueprint `bp`."""
from __future__ import annotations

from flask import Blueprint, Flask, abort, redirect, request, session, url_for
from flask_login import current_user

bp = Blueprint("admin", __name__, url_prefix="/admin", template_folder="templates")

PUBLIC_ENDPOINTS = {"admin.login", "admin.login_code", "admin.invitation"}
# Everyone's own account: sessions and two-factor (issue 18). When two-factor is required and not set up yet,
# these are the only pages open (ENROLMENT_ENDPOINTS).
ACCOUNT_ENDPOINTS = {"admin.account", "admin.account_2fa", "admin.account_session_end", "admin.account_sessions_end"}
ENROLMENT_ENDPOINTS = {"admin.account_2fa", "admin.logout"}
# Technicians see their day and customers' contact data; every other page is closed to them
# unless listed here, so a new page is safe by default.
TECHNICIAN_ENDPOINTS = {"admin.dashboard", "admin.logout", "admin.customer_list", "admin.customer_view",
                        "admin.job_view", "admin.visit_status", "admin.job_status", "admin.customer_note",
                        "admin.customer_contact", "admin.customer_task_done"}
TECHNICIAN_JOB_STATUSES = ("in_progress", "finished")  # technicians start and finish; office cancels and reopens
# refunds, deletes: admin (owner) only
ADMIN_ONLY_PREFIXES = ("admin.staff", "admin.settings", "admin.refund", "admin.customer_delete",
                       "admin.customer_export")


def form_id(value) -> int | None:
    """An id typed or posted in a form or query string: a plain positive number in the database's range."""
    value = (value or "").strip() if isinstance(value, str) else value
    if isinstance(value, str) and value.isascii() and value.isdigit() and 0 < int(value) < 2**31:
        return int(value)
    return None


def allowed(role: str, endpoint: str) -> bool:
    if role == "admin":
        return True
    if endpoint in ACCOUNT_ENDPOINTS:
        return True
    if endpoint.startswith(ADMIN_ONLY_PREFIXES):
        return False
    if role == "office":
        return True
    return endpoint in TECHNICIAN_ENDPOINTS


def _next_target() -> str | None:
    if request.method != "GET":
        return None
    return request.full_path if request.query_string else request.path


@bp.before_request
def guard():
    if request.endpoint in PUBLIC_ENDPOINTS or request.endpoint is None:
        return None
    if not current_user.is_authenticated:
        return redirect(url_for("admin.login", next=_next_target()))
    if session.get("staff_must_enrol") and not current_user.has_two_factor and \
            request.endpoint not in ENROLMENT_ENDPOINTS:
        return redirect(url_for("admin.account_2fa"))
    if not allowed(current_user.role, request.endpoint):
        abort(403)
    return None


@bp.after_request
def no_store(response):
    response.headers.setdefault("Cache-Control", "no-store")
    return response


def init_app(app: Flask) -> None:
    # The views, grouped like portal.services; each registers its routes on `bp` (endpoint = admin.<function>).
    from admin.billing import automation, invoices  # noqa: F401
    from admin.crm import client_card, custom_fields, customers, importing, messages  # noqa: F401
    from admin.overview import views as overview_views  # noqa: F401
    from admin.payments import reports, stripe_link  # noqa: F401
    from admin.payments import views as payment_views  # noqa: F401  (registers its routes on bp)
    from admin.plans import reports as plan_reports  # noqa: F401
    from admin.plans import views as plan_views  # noqa: F401  (registers its routes on bp)
    from admin.platform import account, auth, data_export, outbox, settings, staff  # noqa: F401
    from portal.extensions import login_manager

    login_manager.user_loader(auth.load_user)
    from admin.work import views as work_views  # noqa: F401

    app.register_blueprint(bp)

    @app.template_global()
    def allowed_endpoint(endpoint: str) -> bool:
        return bool(current_user.is_authenticated and allowed(current_user.role, endpoint))
