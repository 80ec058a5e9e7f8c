"""C-1, C-2, C-11: the customer list and the basic client card; portal invitations (A-1, A-6)."""
from __future__ import annotations

from collections import OrderedDict
from decimal import Decimal

from flask import flash, redirect, render_template, request, url_for
from flask_babel import get_locale
from flask_login import current_user
from markupsafe import Markup

from admin import allowed, bp, form_id
from admin.common import staff_choices
from admin.crm.forms import ContactForm, CustomerForm, DeleteCustomerForm, NoteForm, ReassignForm, TaskForm
from admin.forms import ConfirmForm, EditCardForm, RemoveCardForm
from portal import clock
from portal.blueprints.actions import parsed, run_action, run_form
from portal.models import Customer
from portal.models.customers import CUSTOMER_STATUSES
from portal.money import parse_percent_bp, percent_to_input
from portal.services.billing import auto_invoicing
from portal.services.crm import custom_fields, records
from portal.services.crm import customers as customer_service
from portal.services.overview import client_card, owed
from portal.services.payments import cards
from portal.services.plans import reports as plan_reports
from portal.services.platform import magic_links, settings
from portal.services.platform import staff as staff_service


def _input_from(form: CustomerForm) -> customer_service.CustomerInput:
    return customer_service.CustomerInput(
        kind=form.kind.data, first_name=form.first_name.data, last_name=form.last_name.data,
        company_name=form.company_name.data, email=form.email.data, phone=form.phone.data,
        service_line1=form.service_line1.data, service_line2=form.service_line2.data,
        service_city=form.service_city.data, service_region=form.service_region.data,
        service_postal_code=form.service_postal_code.data, preferred_language=form.preferred_language.data,
        status=form.status.data, blacklist_reason=form.blacklist_reason.data, category=form.category.data or None,
        discount_bp=parsed("discount_percent", parse_percent_bp,
                           str(form.discount_percent.data) if form.discount_percent.data is not None else ""),
        lead_source=form.lead_source.data,
        manager_id=int(form.manager_id.data) if form.manager_id.data else None, birthday=form.birthday.data,
        tags=[t for t in (form.tags.data or "").split(",") if t.strip()],
    )


@bp.get("/customers")
def customer_list():
    status = request.args.get("status") or None
    manager = form_id(request.args.get("manager"))
    money = allowed(current_user.role, "admin.charge")  # balance and card filters reveal money
    results = customer_service.search(q=request.args.get("q"), status=status, tag=request.args.get("tag"),
                                      manager_id=manager, page=request.args.get("page"),
                                      category=request.args.get("category"),
                                      has_balance=money and bool(request.args.get("balance")),
                                      no_card=money and bool(request.args.get("no_card")))
    return render_template("admin/customers/list.html", results=results, statuses=CUSTOMER_STATUSES,
                           staff=staff_service.active_staff(), args=request.args)


@bp.route("/customers/new", methods=["GET", "POST"])
def customer_new():
    form = CustomerForm()
    staff_choices(form.manager_id, "— nobody —")
    if request.method == "GET":
        form.manager_id.data = str(current_user.id)
    if form.validate_on_submit():
        done = run_form(form, lambda: customer_service.create(_input_from(form), current_user))
        if done:
            flash(f"Customer {done.result.display_name} created.", "success")
            return redirect(url_for("admin.customer_view", customer_id=done.result.id))
    status = 400 if request.method == "POST" else 200
    return render_template("admin/customers/form.html", form=form, customer=None), status


@bp.get("/customers/<int:customer_id>")
def customer_view(customer_id: int):
    customer = customer_service.load(customer_id)
    sees_money = allowed(current_user.role, "admin.charge")  # technicians: no money on the card or in the feed
    events = client_card.recent_events(customer, with_money=sees_money)
    figures = client_card.financials(customer)  # also the sizes of the paged lists below (issue 15)
    args = request.args
    money = None
    if sees_money:
        # issue 19: the same answer as the portal's; the first 10 open invoices listed, all of them summed
        what_is_owed = owed.for_customer(customer, with_next=False, listed=10)
        money = {"cards": cards.active_cards(customer), "invoices": what_is_owed.invoices,
                 "history": client_card.history_page(customer, figures.history_count, args.get("payments_page")),
                 "today": clock.today(), "financials": figures,
                 "all_invoices": client_card.invoice_page(customer, figures.invoice_count, args.get("invoices_page")),
                 "plans": client_card.plans(customer), "banner": plan_reports.banner_of(what_is_owed.plan_payments),
                 "autopay_global": settings.get().autopay_enabled,
                 "cadences": auto_invoicing.CADENCES, "cadence_choices": auto_invoicing.cadence_choices(),
                 "auto_next": auto_invoicing.upcoming(customer)}
        money["plan_owed"] = money["banner"].owed if money["banner"] else {}
        money["owed"] = what_is_owed
    edit_form = edit_fields = None
    if allowed(current_user.role, "admin.customer_edit"):
        edit_form = CustomerForm(formdata=None)
        staff_choices(edit_form.manager_id, "— nobody —")
        _fill(edit_form, customer)
        edit_fields = _edit_fields(edit_form)
    task_form, reassign_form = TaskForm(formdata=None), ReassignForm(formdata=None)
    staff_choices(task_form.assignee_id, "— the customer's manager —")
    staff_choices(reassign_form.manager_id, "— nobody —")
    reassign_form.manager_id.data = str(customer.manager_id or "")
    task = records.open_task(customer)
    return render_template(
        "admin/customers/view.html", customer=customer, events=events, confirm=ConfirmForm(), money=money,
        edit_card=EditCardForm(), remove_card=RemoveCardForm(), notes=records.notes(customer, 10),
        contacts=records.contact_log(customer, 10), task=task, task_overdue=records.is_overdue(task),
        fields=custom_fields.values_for(customer),
        jobs=client_card.job_page(customer, figures.job_count, args.get("jobs_page")),
        estimates=client_card.estimate_page(customer, figures.estimate_count, args.get("estimates_page")),
        pages={k: v for k, v in args.items() if k.endswith("_page")}, note_form=NoteForm(formdata=None),
        contact_form=ContactForm(formdata=None), task_form=task_form, reassign_form=reassign_form,
        delete_form=DeleteCustomerForm(formdata=None), can_delete=not figures.has_records,
        edit_form=edit_form, edit_fields=edit_fields)


_RENDERED_FIELDS: OrderedDict[tuple, Markup] = OrderedDict()


def _edit_fields(form: CustomerForm) -> Markup:
    """The customer form's fields, in place on the card. Their HTML depends only on each field's value, choices and
    errors, and a card is opened again and again (every action on it comes back to it), so each is rendered once per
    process: the widgets cost ~1.5 ms a card. The CSRF token is rendered beside them, per session."""
    key = (str(get_locale()), *((f.name, f.data, tuple(getattr(f, "choices", None) or ()), tuple(f.errors))
                                for f in form if f.name != "csrf_token"))  # the labels are in the page's language
    html = _RENDERED_FIELDS.get(key)
    if html is None:
        html = _RENDERED_FIELDS[key] = Markup(render_template("admin/customers/_fields.html", form=form))
        while len(_RENDERED_FIELDS) > 256:
            _RENDERED_FIELDS.popitem(last=False)
    return html


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
        "discount_percent": Decimal(percent_to_input(customer.discount_bp)), "lead_source": customer.lead_source,
        "manager_id": str(customer.manager_id or ""), "birthday": customer.birthday,
        "tags": ", ".join(t.name for t in customer.tags),
    })


@bp.route("/customers/<int:customer_id>/edit", methods=["GET", "POST"])
def customer_edit(customer_id: int):
    customer = customer_service.load(customer_id)
    form = CustomerForm()
    staff_choices(form.manager_id, "— nobody —")
    if request.method == "GET":
        _fill(form, customer)
    elif form.validate_on_submit() and run_form(form, lambda: customer_service.update(customer, _input_from(form),
                                                                                      current_user)):
        flash("Customer saved.", "success")
        return redirect(url_for("admin.customer_view", customer_id=customer.id))
    status = 400 if request.method == "POST" else 200
    return render_template("admin/customers/form.html", form=form, customer=customer), status


@bp.post("/customers/<int:customer_id>/portal-invitation")
def customer_invite(customer_id: int):
    customer = customer_service.load(customer_id)
    if ConfirmForm().validate_on_submit():
        run_action(lambda: magic_links.send_invitation(customer, current_user),
                   f"Portal invitation sent to {customer.primary_email}.")
    return redirect(url_for("admin.customer_view", customer_id=customer.id))


@bp.post("/customers/<int:customer_id>/portal-revoke")
def customer_revoke(customer_id: int):
    customer = customer_service.load(customer_id)
    if ConfirmForm().validate_on_submit():
        run_action(lambda: magic_links.revoke(customer, current_user),
                   "All portal links revoked; the customer is logged out of the portal everywhere.")
    return redirect(url_for("admin.customer_view", customer_id=customer.id))
