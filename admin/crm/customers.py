"""C-1, C-2, C-11: the customer list and the basic client card; portal invitations (A-1, A-6)."""
from __future__ import annotations

from decimal import Decimal

from flask import abort, flash, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from admin import allowed, bp, form_id
from admin.forms import (ConfirmForm, ContactForm, CustomerForm, DeleteCustomerForm, EditCardForm, NoteForm,
                         ReassignForm, RemoveCardForm, TaskForm)
from portal import clock
from portal.extensions import db
from portal.models import ActivityEvent, Customer, CustomerPlan, Invoice
from portal.models.customers import CUSTOMER_STATUSES
from portal.services.billing import auto_invoicing
from portal.services.plans import reports as plan_reports
from portal.services.payments import cards
from portal.services.crm import records
from portal.services.crm import custom_fields
from portal.services.overview import client_card
from portal.services.payments import ledger
from portal.services.platform import settings
from portal.services.work import work_orders
from portal.services.work import estimates as estimate_service
from portal.services.crm import customers as customer_service
from portal.services.platform import magic_links
from portal.services.platform import staff as staff_service
from portal.services.errors import ServiceError, ValidationError


MONEY_EVENTS = ("payment", "failure", "refund", "invoice", "estimate", "card")


def _customer_or_404(customer_id: int) -> Customer:
    customer = customer_service.get(customer_id)
    if customer is None:
        abort(404)
    return customer


def _manager_choices(form: CustomerForm) -> None:
    form.manager_id.choices = [("", "— nobody —")] + [(str(s.id), s.name) for s in staff_service.active_staff()]


def _input_from(form: CustomerForm) -> customer_service.CustomerInput:
    percent = form.discount_percent.data or Decimal(0)
    return customer_service.CustomerInput(
        kind=form.kind.data, first_name=form.first_name.data, last_name=form.last_name.data,
        company_name=form.company_name.data, email=form.email.data, phone=form.phone.data,
        service_line1=form.service_line1.data, service_line2=form.service_line2.data,
        service_city=form.service_city.data, service_region=form.service_region.data,
        service_postal_code=form.service_postal_code.data, preferred_language=form.preferred_language.data,
        status=form.status.data, blacklist_reason=form.blacklist_reason.data, category=form.category.data or None,
        discount_bp=int(percent * 100), lead_source=form.lead_source.data,
        manager_id=int(form.manager_id.data) if form.manager_id.data else None, birthday=form.birthday.data,
        tags=[t for t in (form.tags.data or "").split(",") if t.strip()],
    )


def _form_error(form: CustomerForm, exc: ValidationError) -> None:
    field = getattr(form, exc.field or "", None)
    if field is not None:
        field.errors = list(field.errors) + [exc.message]
    else:
        form.form_errors.append(exc.message)


@bp.get("/customers")
def customer_list():
    page = min(max(request.args.get("page", 1, type=int) or 1, 1), 10_000)
    status = request.args.get("status") or None
    manager = form_id(request.args.get("manager"))
    money = allowed(current_user.role, "admin.charge")  # balance and card filters reveal money
    results = customer_service.search(q=request.args.get("q"), status=status, tag=request.args.get("tag"),
                                      manager_id=manager, page=max(page, 1), category=request.args.get("category"),
                                      has_balance=money and bool(request.args.get("balance")),
                                      no_card=money and bool(request.args.get("no_card")))
    return render_template("admin/customers/list.html", results=results, statuses=CUSTOMER_STATUSES,
                           staff=staff_service.active_staff(), args=request.args)


@bp.route("/customers/new", methods=["GET", "POST"])
def customer_new():
    form = CustomerForm()
    _manager_choices(form)
    if request.method == "GET":
        form.manager_id.data = str(current_user.id)
    if form.validate_on_submit():
        try:
            customer = customer_service.create(_input_from(form), current_user)
        except ValidationError as exc:
            db.session.rollback()
            _form_error(form, exc)
        else:
            db.session.commit()
            flash(f"Customer {customer.display_name} created.", "success")
            return redirect(url_for("admin.customer_view", customer_id=customer.id))
    status = 400 if request.method == "POST" else 200
    return render_template("admin/customers/form.html", form=form, customer=None), status


@bp.get("/customers/<int:customer_id>")
def customer_view(customer_id: int):
    customer = _customer_or_404(customer_id)
    event_filter = [ActivityEvent.customer_id == customer.id]
    if not allowed(current_user.role, "admin.charge"):  # technicians: no money in the feed
        event_filter.append(ActivityEvent.event_type.not_in(MONEY_EVENTS))
    events = db.session.scalars(select(ActivityEvent).where(*event_filter)
                                .options(selectinload(ActivityEvent.actor))
                                .order_by(ActivityEvent.created_at.desc(), ActivityEvent.id.desc()).limit(30)).all()
    money = None
    if allowed(current_user.role, "admin.charge"):
        money = {"cards": cards.active_cards(customer), "invoices": ledger.open_invoices(customer, limit=10),
                 "history": ledger.customer_history(customer), "today": clock.today(),
                 "financials": client_card.financials(customer),
                 "all_invoices": db.session.scalars(select(Invoice).where(Invoice.customer_id == customer.id)
                                                    .order_by(Invoice.issue_date.desc(), Invoice.id.desc())
                                                    .limit(20)).all(),
                 "plans": db.session.scalars(select(CustomerPlan).where(CustomerPlan.customer_id == customer.id)
                                             .order_by(CustomerPlan.created_at.desc()).limit(10)).all(),
                 "banner": plan_reports.banner(customer), "autopay_global": settings.get().autopay_enabled,
                 "cadences": auto_invoicing.CADENCES, "cadence_choices": auto_invoicing.cadence_choices(),
                 "auto_next": auto_invoicing.upcoming(customer)}
        money["plan_owed"] = money["banner"].owed if money["banner"] else {}
    edit_form = None
    if allowed(current_user.role, "admin.customer_edit"):
        edit_form = CustomerForm(formdata=None)
        _manager_choices(edit_form)
        _fill(edit_form, customer)
    task_form, reassign_form = TaskForm(formdata=None), ReassignForm(formdata=None)
    _staff_select(task_form.assignee_id, "— the customer's manager —")
    _staff_select(reassign_form.manager_id, "— nobody —")
    reassign_form.manager_id.data = str(customer.manager_id or "")
    task = records.open_task(customer)
    return render_template(
        "admin/customers/view.html", customer=customer, events=events, confirm=ConfirmForm(), money=money,
        edit_card=EditCardForm(), remove_card=RemoveCardForm(), notes=records.notes(customer, 10),
        contacts=records.contact_log(customer, 10), task=task, task_overdue=records.is_overdue(task),
        fields=custom_fields.values_for(customer), jobs=work_orders.jobs_of(customer),
        estimates=estimate_service.staff_list(customer=customer, limit=20), note_form=NoteForm(formdata=None),
        contact_form=ContactForm(formdata=None), task_form=task_form, reassign_form=reassign_form,
        delete_form=DeleteCustomerForm(formdata=None), can_delete=not records.has_financial_records(customer),
        edit_form=edit_form)


def _staff_select(field, empty: str) -> None:
    field.choices = [("", empty)] + [(str(s.id), s.name) for s in staff_service.active_staff()]


def _fill(form: CustomerForm, customer: Customer) -> None:
    address = customer.address_of("service")
    form.process(data={
        "kind": customer.kind, "first_name": customer.first_name, "last_name": customer.last_name,
        "company_name": customer.company_name, "email": customer.primary_email, "phone": customer.mobile_phone,
        "service_line1": address.line1 if address else None, "service_line2": address.line2 if address else None,
        "service_city": address.city if address else None, "service_region": address.region if address else None,
        "service_postal_code": address.postal_code if address else None,
        "preferred_language": customer.preferred_language, "status": customer.status,
        "blacklist_reason": customer.blacklist_reason, "category": customer.category or "",
        "discount_percent": Decimal(customer.discount_bp) / 100, "lead_source": customer.lead_source,
        "manager_id": str(customer.manager_id or ""), "birthday": customer.birthday,
        "tags": ", ".join(t.name for t in customer.tags),
    })


@bp.route("/customers/<int:customer_id>/edit", methods=["GET", "POST"])
def customer_edit(customer_id: int):
    customer = _customer_or_404(customer_id)
    form = CustomerForm()
    _manager_choices(form)
    if request.method == "GET":
        _fill(form, customer)
    elif form.validate_on_submit():
        try:
            customer_service.update(customer, _input_from(form), current_user)
        except ValidationError as exc:
            db.session.rollback()
            _form_error(form, exc)
        else:
            db.session.commit()
            flash("Customer saved.", "success")
            return redirect(url_for("admin.customer_view", customer_id=customer.id))
    status = 400 if request.method == "POST" else 200
    return render_template("admin/customers/form.html", form=form, customer=customer), status


@bp.post("/customers/<int:customer_id>/portal-invitation")
def customer_invite(customer_id: int):
    customer = _customer_or_404(customer_id)
    if ConfirmForm().validate_on_submit():
        try:
            magic_links.send_invitation(customer, current_user)
        except ServiceError as exc:
            db.session.rollback()
            flash(exc.message, "error")
        else:
            db.session.commit()
            flash(f"Portal invitation sent to {customer.primary_email}.", "success")
    return redirect(url_for("admin.customer_view", customer_id=customer.id))


@bp.post("/customers/<int:customer_id>/portal-revoke")
def customer_revoke(customer_id: int):
    customer = _customer_or_404(customer_id)
    if ConfirmForm().validate_on_submit():
        magic_links.revoke(customer, current_user)
        db.session.commit()
        flash("All portal links revoked; the customer is logged out of the portal everywhere.", "success")
    return redirect(url_for("admin.customer_view", customer_id=customer.id))
