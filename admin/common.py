"""View helpers several admin domains share: staff pickers, the way back to a client-card section, and the
line-item table of job, estimate and invoice forms (created once per form key)."""
from __future__ import annotations

from flask import flash, g, redirect, request, url_for

from portal.blueprints.actions import run_form
from portal.money import to_input
from portal.services.payments import charges
from portal.services.platform import once
from portal.services.platform import staff as staff_service
from portal.services.work import line_items

BLANK_ROWS = 3


def staff_choices(field, empty: str = "— unassigned —") -> None:
    if "active_staff" not in g:  # several pickers on one page (the client card has three): one query
        g.active_staff = [(str(s.id), s.name) for s in staff_service.active_staff()]
    field.choices = [("", empty)] + g.active_staff


def back_to_card(customer, anchor: str):
    return redirect(url_for("admin.customer_view", customer_id=customer.id) + f"#{anchor}")


def lines_in_form(rows) -> list:
    """What the line table shows after a failed submit: the typed rows."""
    return [{"description": d or "", "quantity": q or "1", "price": p or ""} for d, q, p in rows]


def lines_of(items, currency: str) -> list:
    return [{"description": li.description, "quantity": str(li.quantity),
             "price": to_input(li.unit_price_cents, currency)} for li in items]


def new_form_key(form) -> None:
    if not form.form_key.data:
        form.form_key.data = charges.new_token()


def submit(form, errors: dict, action):
    """Validate a line-table form and run the service action (`run_form`): the reason for a refusal goes on its
    field, or into `errors` ("form", "lines") for what the form has no field for. The action's result, or None."""
    if not form.validate_on_submit():
        return None
    outcome = run_form(form, action, elsewhere=errors, duplicate="This form was just submitted.")
    if not outcome:
        return None
    return outcome.result if outcome.result is not None else True


def _already(form, kind: str, endpoint: str, arg: str):
    """The page for what an earlier submission of this very form created, if any."""
    target = once.earlier(form.form_key.data, kind)
    if target is None:
        return None
    flash("That form was already submitted; here is what it created.", "success")
    return redirect(url_for(endpoint, **{arg: target}))


def create_once(form, kind: str, view: str, arg: str, make, success: str, rerender):
    """A create form: validate, create once per form key (a resubmission leads to what the first made),
    or show the form again with the reason and the typed lines."""
    if (done := _already(form, kind, view, arg)) is not None:
        return done
    errors: dict = {}
    rows = line_items.from_form(request.form)
    created = submit(form, errors, lambda: once.remember(form.form_key.data, kind, make(rows)))
    if created is None and (done := _already(form, kind, view, arg)) is not None:
        return done
    if created:
        flash(success.format(number=created.number), "success")
        return redirect(url_for(view, **{arg: created.id}))
    return rerender(lines_in_form(rows), errors)
