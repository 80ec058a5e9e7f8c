"""Staff money pages: cards on file (W-2 … W-5), charging (PAY-2), hand-recorded payments (PAY-1),
invoice and payment pages with refunds (R-1 … R-5). Rules live in portal.services."""
from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, url_for
from flask_login import current_user

from admin import bp
from admin.customers import _customer_or_404
from admin.forms import AddCardForm, ChargeForm, ConfirmForm, EditCardForm, ManualPaymentForm, RefundForm, RemoveCardForm
from portal import clock
from portal.blueprints.actions import run_action
from portal.extensions import db
from portal.models import Invoice, Payment
from portal.money import MoneyError, format_money, parse_amount
from portal.services.payments import cards
from portal.services.payments import charges
from portal.services.payments import gateway
from portal.services.billing import invoices
from portal.services.payments import ledger
from portal.services.payments import refunds
from portal.services.billing import reminders
from portal.services.errors import NotFound, ServiceError, ValidationError


def _field_error(form, exc: ServiceError, default: str = "amount") -> None:
    name = getattr(exc, "field", None)
    field = getattr(form, name, None) if name else None
    if field is None or not hasattr(field, "errors"):
        field = getattr(form, default, None)
    if field is None:
        form.form_errors.append(exc.message)
    else:
        field.errors = list(field.errors) + [exc.message]


# --- Cards on file -------------------------------------------------------------------------------------

@bp.route("/customers/<int:customer_id>/cards/new", methods=["GET", "POST"])
def card_add(customer_id: int):
    customer = _customer_or_404(customer_id)
    form = AddCardForm()
    if form.validate_on_submit():
        try:
            card = cards.save_from_setup_intent(customer, form.setup_intent.data, added_by="staff", actor=current_user,
                                                kind=form.kind.data, nickname=form.nickname.data,
                                                make_default=bool(form.make_default.data))
        except ServiceError as exc:
            db.session.rollback()
            form.form_errors.append(exc.message)
        else:
            db.session.commit()
            flash(f"Card {card.label} added{' as the default card' if card.is_default else ''}.", "success")
            return redirect(url_for("admin.customer_view", customer_id=customer.id) + "#cards")
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


@bp.post("/customers/<int:customer_id>/cards/<int:card_id>/default")
def card_default(customer_id: int, card_id: int):
    customer = _customer_or_404(customer_id)
    if ConfirmForm().validate_on_submit():
        run_action(lambda: cards.set_default(customer, card_id, actor=current_user),
                   lambda card: f"{card.label} is now the default card.")
    return redirect(url_for("admin.customer_view", customer_id=customer.id) + "#cards")


@bp.post("/customers/<int:customer_id>/cards/<int:card_id>/edit")
def card_edit(customer_id: int, card_id: int):
    customer = _customer_or_404(customer_id)
    form = EditCardForm()
    if form.validate_on_submit():
        run_action(lambda: cards.update_nickname(customer, card_id, form.nickname.data, form.kind.data, current_user),
                   lambda card: "Card details saved.")
    else:
        flash("Nickname: at most 60 characters.", "error")
    return redirect(url_for("admin.customer_view", customer_id=customer.id) + "#cards")


@bp.post("/customers/<int:customer_id>/cards/<int:card_id>/remove")
def card_remove(customer_id: int, card_id: int):
    customer = _customer_or_404(customer_id)
    form = RemoveCardForm()
    if form.validate_on_submit():
        run_action(lambda: cards.remove(customer, card_id, actor=current_user, confirmed=bool(form.confirm.data)),
                   lambda card: f"Card {card.label} removed.")
    return redirect(url_for("admin.customer_view", customer_id=customer.id) + "#cards")


@bp.post("/customers/<int:customer_id>/card-request")
def card_request(customer_id: int):
    customer = _customer_or_404(customer_id)
    if ConfirmForm().validate_on_submit():
        run_action(lambda: cards.request_card_on_file(customer, current_user),
                   lambda _: f"Card request emailed to {customer.primary_email}.")
    if request.form.get("back") == "autopay":
        return redirect(url_for("admin.autopay_page"))
    return redirect(url_for("admin.customer_view", customer_id=customer.id) + "#cards")


# --- Charging and hand-recorded payments ----------------------------------------------------------------

def _invoice_choices(customer, invoices) -> list[tuple[str, str]]:
    return [(str(i.id), f"Invoice {i.number} — balance {format_money(i.balance_cents, i.currency)}")
            for i in invoices] + [("", "No invoice (payment on account)")]


def _selected_invoice(customer, raw) -> Invoice | None:
    if not raw:
        return None
    try:
        return charges.invoice_of(customer, raw)
    except NotFound:
        abort(404)


def _prefill(form, customer, invoices) -> None:
    """The invoice from ?invoice= (or the oldest open one) and its full balance; a fresh form key."""
    invoice = _selected_invoice(customer, request.args.get("invoice"))
    chosen = invoice or (invoices[0] if invoices else None)
    form.invoice_id.data = str(chosen.id) if chosen else ""
    form.amount.data = f"{chosen.balance_cents / 100:.2f}" if chosen else ""
    form.token.data = charges.new_token()


@bp.route("/customers/<int:customer_id>/charge", methods=["GET", "POST"])
def charge(customer_id: int):
    customer = _customer_or_404(customer_id)
    form = ChargeForm()
    on_file = cards.active_cards(customer)
    invoices = ledger.open_invoices(customer)
    form.card_id.choices = [(str(c.id), c.label + (f" “{c.nickname}”" if c.nickname else "")
                             + (" (default)" if c.is_default else "")) for c in on_file]
    form.invoice_id.choices = _invoice_choices(customer, invoices)
    outcome = None
    status = 200
    if request.method == "GET":
        _prefill(form, customer, invoices)
    elif form.validate_on_submit():
        try:
            invoice = charges.invoice_of(customer, form.invoice_id.data) if form.invoice_id.data else None
            cents = parse_amount(form.amount.data)
            card = cards.card_of(customer, form.card_id.data)
            outcome = charges.charge_card(customer, card, cents, token=form.token.data, invoice=invoice,
                                          purpose="invoice" if invoice else "account", off_session=True,
                                          initiated_by="staff", actor=current_user)
        except MoneyError as exc:
            form.amount.errors = [str(exc)]
            status = 400
        except ServiceError as exc:
            db.session.rollback()
            _field_error(form, exc, "card_id" if isinstance(exc, NotFound) else "amount")
            status = 400 if isinstance(exc, ValidationError | NotFound) else 409
        else:
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
    customer = _customer_or_404(customer_id)
    form = ManualPaymentForm()
    invoices = ledger.open_invoices(customer)
    form.invoice_id.choices = _invoice_choices(customer, invoices)
    status = 200
    if request.method == "GET":
        _prefill(form, customer, invoices)
    elif form.validate_on_submit():
        try:
            invoice = charges.invoice_of(customer, form.invoice_id.data) if form.invoice_id.data else None
            cents = parse_amount(form.amount.data)
            payment = charges.record_manual(customer, method=form.method.data, amount_cents=cents,
                                            reference=form.reference.data, actor=current_user, invoice=invoice,
                                            token=form.token.data)
        except MoneyError as exc:
            form.amount.errors = [str(exc)]
            status = 400
        except ServiceError as exc:
            db.session.rollback()
            _field_error(form, exc)
            status = 400
        else:
            flash(f"{payment.method.title()} payment of {format_money(payment.amount_cents, payment.currency)} "
                  "recorded.", "success")
            return redirect(url_for("admin.payment_view", payment_id=payment.id))
    else:
        form.form_errors.append("The form expired; reload the page.")
        status = 400
    return render_template("admin/payments/record.html", customer=customer, form=form), status


# --- Invoice and payment pages ---------------------------------------------------------------------------

@bp.get("/invoices/<int:invoice_id>")
def invoice_view(invoice_id: int):
    invoice = db.session.get(Invoice, invoice_id)
    if invoice is None:
        abort(404)
    history = ledger.invoice_history(invoice)
    return render_template("admin/payments/invoice.html", invoice=invoice, history=history, customer=invoice.customer,
                           automation=reminders.status(invoice),
                           busy=charges.open_attempt_for(invoice), confirm=ConfirmForm())  # void posts reason with this CSRF token


@bp.post("/invoices/<int:invoice_id>/send")
def invoice_send(invoice_id: int):
    invoice = db.session.get(Invoice, invoice_id)
    if invoice is None:
        abort(404)
    if ConfirmForm().validate_on_submit():
        resend = invoice.sent_at is not None
        run_action(lambda: invoices.send(invoice, current_user),
                   lambda _: f"Invoice {invoice.number} {'resent' if resend else 'sent'} to "
                             f"{invoice.customer.primary_email}.")
    return redirect(url_for("admin.invoice_view", invoice_id=invoice.id))


@bp.get("/payments/<int:payment_id>")
def payment_view(payment_id: int):
    payment = db.session.get(Payment, payment_id)
    if payment is None:
        abort(404)
    form = RefundForm()
    form.amount.data = f"{refunds.refundable_cents(payment) / 100:.2f}"
    form.token.data = charges.new_token()
    return _payment_page(payment, form)


def _payment_page(payment: Payment, form: RefundForm, status: int = 200):
    return render_template("admin/payments/payment.html", payment=payment, form=form, customer=payment.customer,
                           detail=ledger.payment_detail(payment), why_not=refunds.why_not(payment),
                           refundable=refunds.refundable_cents(payment),
                           window_closes=refunds.window_closes_at(payment)), status


@bp.post("/payments/<int:payment_id>/refund")
def refund_create(payment_id: int):
    payment = db.session.get(Payment, payment_id)
    if payment is None:
        abort(404)
    form = RefundForm()
    if not form.validate_on_submit():
        form.form_errors.append("The form expired; reload the page.")
        return _payment_page(payment, form, 400)
    try:
        cents = parse_amount(form.amount.data, payment.currency)
        row = refunds.refund(payment, cents, form.reason.data, current_user, form.token.data)
    except MoneyError as exc:
        form.amount.errors = [str(exc)]
        return _payment_page(payment, form, 400)
    except ServiceError as exc:
        db.session.rollback()
        _field_error(form, exc)
        db.session.refresh(payment)
        return _payment_page(payment, form, 400)
    if row.status == "failed":
        flash(f"The refund failed: {row.failure_reason}. Nothing was refunded.", "error")
    elif row.status == "pending":
        flash(f"Refund of {format_money(row.amount_cents, payment.currency)} sent; waiting for the card processor "
              "to confirm.", "success")
    else:
        flash(f"Refunded {format_money(row.amount_cents, payment.currency)}. The customer was emailed a refund "
              "receipt.", "success")
    return redirect(url_for("admin.payment_view", payment_id=payment.id))
