"""P-2, P-3: the customer's invoices, paying one, and receipts."""
from __future__ import annotations

from flask import Blueprint, Response, abort, redirect, render_template, request, url_for
from flask_babel import get_locale
from flask_babel import gettext as _

from portal import clock
from portal.blueprints.portal_session import current_customer
from portal.blueprints.wallet import (
    authenticate_page,
    back_from_bank,
    card_choices,
    card_entry,
    chosen_card,
    forget_if_done,
)
from portal.extensions import db
from portal.forms.payments import PayAllForm, PayInvoiceForm
from portal.models import ChargeAttempt, Invoice, Payment
from portal.money import MoneyError, parse_amount, to_input
from portal.services.billing import credit, documents, invoices
from portal.services.errors import NotFound, ServiceError, ValidationError
from portal.services.overview import owed
from portal.services.payments import charges, ledger
from portal.services.platform import settings

bp = Blueprint("invoices", __name__)
PER_PAGE = 25


def _invoice(invoice_id: int) -> Invoice:
    return invoices.for_customer(current_customer, invoice_id)


@bp.get("/invoices")
def index():
    show = request.args.get("show", "open")
    page = invoices.customer_list(current_customer, show, request.args.get("page"), PER_PAGE)
    return render_template("portal/invoices/list.html", invoices=page.items, page=page, show=show,
                           today=clock.today(), owed=owed.for_customer(current_customer))


@bp.get("/invoices/<int:invoice_id>")
def detail(invoice_id: int):
    invoice = _invoice(invoice_id)
    payments, refunds = invoices.payments_of(invoice)
    return render_template("portal/invoices/detail.html", invoice=invoice, payments=payments, refunds=refunds,
                           today=clock.today())


def _pay_page(invoice: Invoice, form: PayInvoiceForm, status: int = 200, outcome=None):
    saved = card_choices(form)
    busy = charges.open_attempt_for(invoice)
    entry = card_entry("payment") if invoice.status in charges.PAYABLE_INVOICE else {}
    return render_template("portal/invoices/pay.html", invoice=invoice, form=form, cards=saved, outcome=outcome,
                           busy=busy, entry=entry, today=clock.today(), currency=settings.currency()), status


@bp.route("/invoices/<int:invoice_id>/pay", methods=["GET", "POST"])
def pay(invoice_id: int):
    invoice = _invoice(invoice_id)
    form = PayInvoiceForm()
    if request.method == "GET":
        if invoice.status not in charges.PAYABLE_INVOICE:
            return redirect(url_for(".detail", invoice_id=invoice.id))
        form.amount.data = to_input(invoice.balance_cents, invoice.currency)
        return _pay_page(invoice, form)
    if not form.validate_on_submit():
        form.form_errors.append(_("The form expired. Please try again."))
        return _pay_page(invoice, form, 400)
    try:
        cents = parse_amount(form.amount.data, invoice.currency)
    except MoneyError as exc:
        form.amount.errors = [str(exc)]
        return _pay_page(invoice, form, 400)
    new_card = None
    try:
        if form.card_id.data == "new":
            charges.check_amount(cents, invoice.balance_cents)
        card = new_card = chosen_card(form, on_file=bool(form.save_card.data))
        if form.card_id.data != "new":
            new_card = None
        outcome = charges.charge_card(current_customer, card, cents, token=form.token.data, invoice=invoice,
                                      purpose="invoice", off_session=False, initiated_by="customer")
    except NotFound as exc:
        db.session.rollback()
        form.card_id.errors = [exc.message]
        return _pay_page(invoice, form, 400)
    except ValidationError as exc:
        db.session.rollback()
        getattr(form, exc.field if exc.field in ("amount", "card_id") else "amount").errors = [exc.message]
        form.setup_intent.data = ""
        return _pay_page(invoice, form, 400)
    except ServiceError as exc:
        db.session.rollback()
        form.form_errors.append(exc.message)
        return _pay_page(invoice, form, 409)
    finally:
        forget_if_done(new_card)
    return _after_charge(invoice, form, outcome)


def _after_charge(invoice: Invoice, form: PayInvoiceForm, outcome: charges.Outcome):
    if outcome.status == "succeeded" and outcome.payment is not None:
        return redirect(url_for(".receipt", payment_id=outcome.payment.id))
    if outcome.status == "requires_action":
        return authenticate_page(outcome, url_for(".confirm", invoice_id=invoice.id, attempt_id=outcome.attempt.id))
    form.token.data = charges.new_token()  # a new try is a new attempt
    form.setup_intent.data = ""
    db.session.refresh(invoice)
    return _pay_page(invoice, form, 402 if outcome.status == "failed" else 202, outcome=outcome)


@bp.post("/invoices/<int:invoice_id>/pay/<int:attempt_id>/confirm")
def confirm(invoice_id: int, attempt_id: int):
    """Back from the bank's confirmation (3-D Secure) in Stripe.js: ask Stripe what happened."""
    invoice = _invoice(invoice_id)
    attempt, outcome = back_from_bank(attempt_id, ChargeAttempt.invoice_id == invoice.id)
    form = PayInvoiceForm(formdata=None)
    form.amount.data = to_input(attempt.amount_cents, invoice.currency)
    return _after_charge(invoice, form, outcome)


# --- INV-4 and P-1: "Pay all" (invoices and plan payments in one charge) ------------------------------------

def _selection(raw_ids: str | None, raw_plans: str | None = None, *, everything: bool = False) -> owed.Selection:
    try:
        return owed.selection(current_customer, raw_ids, raw_plans, everything=everything)
    except NotFound:
        abort(404)


def _pay_all_page(form: PayAllForm, chosen: owed.Selection, status: int = 200, outcome=None):
    total = chosen.total_cents
    credit_cents = min(credit.available_cents(current_customer.id), sum(i.balance_cents for i in chosen.invoices))
    form.ids.data = ",".join(str(i.id) for i in chosen.invoices)
    form.plans.data = ",".join(str(p.id) for p in chosen.plan_payments)
    form.total.data = str(total - credit_cents)  # what the card is charged: credit on account goes first
    saved = card_choices(form)
    payable = bool(chosen.invoices or chosen.plan_payments)
    shown = [i.id for i in chosen.invoices + chosen.settled], [p.id for p in chosen.plan_payments]
    entry = card_entry("payment") if payable else {}
    owed.reload(*shown)  # card_entry committed: reload the rows in one query each, not one per row
    return render_template("portal/invoices/pay_all.html", form=form, payable=chosen.invoices,
                           plan_payments=chosen.plan_payments, settled=chosen.settled, total=total,
                           credit_cents=credit_cents,
                           cards=saved, entry=entry, outcome=outcome, currency=settings.currency(),
                           today=clock.today()), status


@bp.route("/invoices/pay-all", methods=["GET", "POST"])
def pay_all():
    form = PayAllForm()
    if request.method == "GET":
        ids, plans = request.args.get("ids"), request.args.get("plans")
        return _pay_all_page(form, _selection(ids, plans, everything=not ids and not plans))
    chosen = _selection(form.ids.data, form.plans.data)
    if not form.validate_on_submit():
        form.form_errors.append(_("The form expired. Please try again."))
        return _pay_all_page(form, chosen, 400)
    if not chosen.invoices and not chosen.plan_payments:  # the page says there is nothing left to pay
        return _pay_all_page(form, chosen, 409)
    new_card = None
    try:
        seen = int(form.total.data or "0") if (form.total.data or "0").isdigit() else -1
        card = new_card = chosen_card(form, on_file=bool(form.save_card.data))
        if form.card_id.data != "new":
            new_card = None
        outcome = owed.pay_everything(current_customer, card, chosen, seen_total_cents=seen, token=form.token.data)
    except NotFound as exc:
        db.session.rollback()
        form.card_id.errors = [exc.message]
        return _pay_all_page(form, chosen, 400)
    except ServiceError as exc:
        db.session.rollback()
        if getattr(exc, "field", None) == "card_id":
            form.card_id.errors = [exc.message]
        else:
            form.form_errors.append(exc.message)
        form.setup_intent.data = ""
        return _pay_all_page(form, _selection(form.ids.data, form.plans.data), 409)
    finally:
        forget_if_done(new_card)
    return _after_pay_all(form, outcome)


def _after_pay_all(form: PayAllForm, outcome: charges.Outcome):
    if outcome.status == "succeeded" and outcome.payment is not None:
        return redirect(url_for(".receipt", payment_id=outcome.payment.id))
    if outcome.status == "requires_action":
        return authenticate_page(outcome, url_for(".pay_all_confirm", attempt_id=outcome.attempt.id))
    form.token.data = charges.new_token()
    form.setup_intent.data = ""
    ids = ",".join(str(s.invoice_id) for s in outcome.attempt.invoice_shares)
    chosen = _selection(ids, outcome.attempt.plan_payment_ids or "")
    return _pay_all_page(form, chosen, 402 if outcome.status == "failed" else 202, outcome=outcome)


@bp.post("/invoices/pay-all/<int:attempt_id>/confirm")
def pay_all_confirm(attempt_id: int):
    attempt, outcome = back_from_bank(attempt_id, ChargeAttempt.purpose.in_(("invoices", owed.PAY_ALL)))
    return _after_pay_all(PayAllForm(formdata=None), outcome)


def _payment(payment_id: int) -> Payment:
    return ledger.customer_payment(current_customer, payment_id)


@bp.get("/payments/<int:payment_id>")
def receipt(payment_id: int):
    payment = _payment(payment_id)
    detail = ledger.payment_detail(payment)
    return render_template("portal/receipt.html", payment=payment, invoices=detail.allocations,
                           refunds=detail.refunds, plan_payments=detail.plan_payments, detail=detail,
                           owed=owed.for_customer(current_customer))


def _pdf(data: bytes, filename: str):
    return Response(data, mimetype="application/pdf",
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})


@bp.get("/invoices/<int:invoice_id>.pdf")
def invoice_pdf(invoice_id: int):
    invoice = _invoice(invoice_id)
    return _pdf(documents.invoice_pdf(invoice, str(get_locale())), f"invoice-{invoice.number}.pdf")


@bp.get("/payments/<int:payment_id>.pdf")
def receipt_pdf(payment_id: int):
    payment = _payment(payment_id)
    return _pdf(documents.receipt_pdf(payment, str(get_locale())), f"receipt-P-{payment.id}.pdf")
