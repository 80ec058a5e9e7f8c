"""Staff money pages: cards on file (W-2 … W-5), charging (PAY-2), hand-recorded payments (PAY-1), the payment
page with refunds (R-1 … R-5). Rules live in portal.services.payments."""
from __future__ import annotations

from flask import flash, redirect, render_template, request, url_for
from flask_login import current_user

from admin import bp
from admin.forms import ConfirmForm, EditCardForm, RemoveCardForm
from admin.payments.forms import AddCardForm, ChargeForm, ManualPaymentForm, RefundForm
from portal import clock
from portal.blueprints.actions import parsed, run_action, run_form
from portal.extensions import db
from portal.models import Invoice, Payment
from portal.money import format_money, parse_amount, to_input
from portal.services.billing import credit
from portal.services.crm import customers as customer_service
from portal.services.errors import NotFound
from portal.services.payments import cards, charges, disputes, gateway, ledger, refunds
from portal.services.platform import settings


def _to_card(customer):
    return redirect(url_for("admin.customer_view", customer_id=customer.id) + "#cards")


# --- Cards on file -------------------------------------------------------------------------------------

@bp.route("/customers/<int:customer_id>/cards/new", methods=["GET", "POST"])
def card_add(customer_id: int):
    customer = customer_service.load(customer_id)
    form = AddCardForm()
    if form.validate_on_submit():
        done = run_form(form, lambda: cards.save_from_setup_intent(
            customer, form.setup_intent.data, added_by="staff", actor=current_user, kind=form.kind.data,
            nickname=form.nickname.data, make_default=bool(form.make_default.data)))
        if done:
            card = done.result
            flash(f"Card {card.label} added{' as the default card' if card.is_default else ''}.", "success")
            return _to_card(customer)
    return render_template("admin/payments/card_new.html", customer=customer, form=form,
                           entry=staff_card_entry(customer)), 400 if request.method == "POST" else 200


def staff_card_entry(customer) -> dict:
    """What the card element needs on a staff page (a SetupIntent); empty when Stripe cannot be reached."""
    try:
        entry = {"client_secret": cards.start_setup(customer, purpose="staff", added_by="staff"),
                 "publishable_key": gateway.publishable_key(), "js_url": gateway.stripe_js_url()}
    except gateway.StripeError:
        db.session.rollback()
        return {}
    db.session.commit()
    return entry


@bp.post("/customers/<int:customer_id>/apply-credit")
def customer_apply_credit(customer_id: int):
    """Issue 19: staff apply the customer's credit on account to their open invoices now (oldest first)."""
    customer = customer_service.load(customer_id)
    if ConfirmForm().validate_on_submit():
        run_action(lambda: credit.apply(customer, actor=current_user),
                   lambda cents: f"Credit of {format_money(cents)} applied to the open invoices." if cents
                   else "There was no credit to apply, or no open invoice to apply it to.")
    return redirect(url_for("admin.customer_view", customer_id=customer.id) + "#financial")


@bp.post("/customers/<int:customer_id>/cards/<int:card_id>/default")
def card_default(customer_id: int, card_id: int):
    customer = customer_service.load(customer_id)
    if ConfirmForm().validate_on_submit():
        run_action(lambda: cards.set_default(customer, card_id, actor=current_user),
                   lambda card: f"{card.label} is now the default card.")
    return _to_card(customer)


@bp.post("/customers/<int:customer_id>/cards/<int:card_id>/edit")
def card_edit(customer_id: int, card_id: int):
    customer = customer_service.load(customer_id)
    form = EditCardForm()
    if form.validate_on_submit():
        run_action(lambda: cards.update_nickname(customer, card_id, form.nickname.data, form.kind.data, current_user),
                   "Card details saved.")
    else:
        flash("Nickname: at most 60 characters.", "error")
    return _to_card(customer)


@bp.post("/customers/<int:customer_id>/cards/<int:card_id>/remove")
def card_remove(customer_id: int, card_id: int):
    customer = customer_service.load(customer_id)
    form = RemoveCardForm()
    if form.validate_on_submit():
        run_action(lambda: cards.remove(customer, card_id, actor=current_user, confirmed=bool(form.confirm.data)),
                   lambda card: f"Card {card.label} removed.")
    return _to_card(customer)


@bp.post("/customers/<int:customer_id>/card-request")
def card_request(customer_id: int):
    customer = customer_service.load(customer_id)
    if ConfirmForm().validate_on_submit():
        run_action(lambda: cards.request_card_on_file(customer, current_user),
                   f"Card request emailed to {customer.primary_email}.")
    if request.form.get("back") == "autopay":
        return redirect(url_for("admin.autopay_page"))
    return _to_card(customer)


# --- Charging and hand-recorded payments ----------------------------------------------------------------

def _invoice_choices(invoices) -> list[tuple[str, str]]:
    return [(str(i.id), f"Invoice {i.number} — balance {format_money(i.balance_cents, i.currency)}")
            for i in invoices] + [("", "No invoice (payment on account)")]


def _prefill(form, customer, invoices) -> None:
    """The invoice from ?invoice= (or the oldest open one) and its full balance; a fresh form key."""
    raw = request.args.get("invoice")
    chosen = charges.invoice_of(customer, raw) if raw else (invoices[0] if invoices else None)
    form.invoice_id.data = str(chosen.id) if chosen else ""
    form.amount.data = to_input(chosen.balance_cents, chosen.currency) if chosen else ""
    form.token.data = charges.new_token()


def _chosen_invoice(customer, form) -> Invoice | None:
    return charges.invoice_of(customer, form.invoice_id.data) if form.invoice_id.data else None


def _amount(form, invoice: Invoice | None) -> int:
    return parsed("amount", parse_amount, form.amount.data, invoice.currency if invoice else settings.currency())


@bp.route("/customers/<int:customer_id>/charge", methods=["GET", "POST"])
def charge(customer_id: int):
    customer = customer_service.load(customer_id)
    form = ChargeForm()
    on_file = cards.active_cards(customer)
    invoices = ledger.open_invoices(customer)
    form.card_id.choices = [(str(c.id), c.label + (f" “{c.nickname}”" if c.nickname else "")
                             + (" (default)" if c.is_default else "")) for c in on_file]
    form.invoice_id.choices = _invoice_choices(invoices)
    outcome = None
    status = 200
    if request.method == "GET":
        _prefill(form, customer, invoices)
    elif form.validate_on_submit():
        def attempt():
            invoice = _chosen_invoice(customer, form)
            cents = _amount(form, invoice)
            card = cards.card_of(customer, form.card_id.data)
            return charges.charge_card(customer, card, cents, token=form.token.data, invoice=invoice,
                                       purpose="invoice" if invoice else "account", off_session=True,
                                       initiated_by="staff", actor=current_user)
        done = run_form(form, attempt, lambda exc: "card_id" if isinstance(exc, NotFound) else "amount")
        if not done:
            status = done.status
        else:
            outcome = done.result
            if outcome.status == "succeeded" and outcome.payment is not None:
                p = outcome.payment
                flash(f"Charged {format_money(p.amount_cents, p.currency)} to {p.card_brand.title()} •••• "
                      f"{p.card_last4}. Fee {format_money(p.fee_cents, p.currency)}, net "
                      f"{format_money(p.net_cents, p.currency)}. Receipt emailed.", "success")
                return redirect(url_for("admin.payment_view", payment_id=p.id))
            status = 402 if outcome.status == "failed" else 202
            form.token.data = charges.new_token()  # another try is another attempt
    else:
        form.form_errors.append("The form expired; reload the page.")
        status = 400
    if not form.token.data:
        form.token.data = charges.new_token()
    return render_template("admin/payments/charge.html", customer=customer, form=form, cards=on_file,
                           outcome=outcome, today=clock.today()), status


@bp.route("/customers/<int:customer_id>/payments/new", methods=["GET", "POST"])
def payment_record(customer_id: int):
    customer = customer_service.load(customer_id)
    form = ManualPaymentForm()
    invoices = ledger.open_invoices(customer)
    form.invoice_id.choices = _invoice_choices(invoices)
    status = 200
    if request.method == "GET":
        _prefill(form, customer, invoices)
    elif form.validate_on_submit():
        def record():
            invoice = _chosen_invoice(customer, form)
            return charges.record_manual(customer, method=form.method.data, amount_cents=_amount(form, invoice),
                                         reference=form.reference.data, actor=current_user, invoice=invoice,
                                         token=form.token.data)
        done = run_form(form, record, "amount")
        if done:
            payment = done.result
            flash(f"{payment.method.title()} payment of {format_money(payment.amount_cents, payment.currency)} "
                  "recorded.", "success")
            return redirect(url_for("admin.payment_view", payment_id=payment.id))
        status = 400
    else:
        form.form_errors.append("The form expired; reload the page.")
        status = 400
    return render_template("admin/payments/record.html", customer=customer, form=form), status


# --- The payment page and refunds ------------------------------------------------------------------------

@bp.get("/payments/<int:payment_id>")
def payment_view(payment_id: int):
    payment = ledger.load_payment(payment_id)
    form = RefundForm()
    form.amount.data = to_input(refunds.refundable_cents(payment), payment.currency)
    form.token.data = charges.new_token()
    return _payment_page(payment, form)


def _payment_page(payment: Payment, form: RefundForm, status: int = 200):
    return render_template("admin/payments/payment.html", payment=payment, form=form, customer=payment.customer,
                           detail=ledger.payment_detail(payment), why_not=refunds.why_not(payment),
                           refundable=refunds.refundable_cents(payment),
                           window_closes=refunds.window_closes_at(payment),
                           disputes=disputes.of_payment(payment)), status


@bp.post("/payments/<int:payment_id>/refund")
def refund_create(payment_id: int):
    payment = ledger.load_payment(payment_id)
    form = RefundForm()
    if not form.validate_on_submit():
        form.form_errors.append("The form expired; reload the page.")
        return _payment_page(payment, form, 400)
    done = run_form(form, lambda: refunds.refund(payment, parsed("amount", parse_amount, form.amount.data,
                                                                 payment.currency),
                                                 form.reason.data, current_user, form.token.data,
                                                 still_owed=bool(form.still_owed.data)), "amount")
    if not done:
        db.session.refresh(payment)
        return _payment_page(payment, form, 400)
    row = done.result
    if row.status == "failed":
        flash(f"The refund failed: {row.failure_reason}. Nothing was refunded.", "error")
    elif row.status == "pending":
        flash(f"Refund of {format_money(row.amount_cents, payment.currency)} sent; waiting for the card processor "
              "to confirm.", "success")
    else:
        flash(f"Refunded {format_money(row.amount_cents, payment.currency)}. The customer was emailed a refund "
              "receipt.", "success")
    return redirect(url_for("admin.payment_view", payment_id=payment.id))
