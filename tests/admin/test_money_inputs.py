"""Money typed into staff forms is parsed exactly (portal.money): fees in settings, and a plan's currency."""
import re

from portal.extensions import db
from portal.models import CustomerPlan
from portal.money import parse_percent_bp, percent_to_input, to_input
from tests.factories import make_customer, make_staff
from tests.helpers import csrf_token_from


def _settings_form(client) -> tuple[str, str]:
    page = client.get("/admin/settings")
    assert page.status_code == 200
    html = page.get_data(True)
    return html, csrf_token_from(html)


def _fees(app):
    from portal.services.platform import settings

    with app.app_context():
        row = settings.get()
        return row.fee_percent_bp, row.fee_fixed_cents


def test_a_fee_with_three_decimals_is_refused_not_truncated(app, client, login_staff):
    with app.app_context():
        admin = make_staff("admin")
    login_staff(admin)
    _, csrf = _settings_form(client)
    before = _fees(app)
    r = client.post("/admin/settings", data={"csrf_token": csrf, "fee_percent": "0.305", "fee_fixed": "0.30",
                                             "refund_window_days": "90"})
    html = r.get_data(True)
    assert r.status_code == 400 and "Use at most two decimals" in html
    assert 'value="0.305"' in html  # what was typed stays in the box
    assert _fees(app) == before  # 0.305 % is not saved as 0.30 %
    r = client.post("/admin/settings", data={"csrf_token": csrf, "fee_percent": "2.9", "fee_fixed": "0.305",
                                             "refund_window_days": "90"})
    assert r.status_code == 400 and "Use at most 2 decimal places." in r.get_data(True)
    assert _fees(app) == before


def test_a_fee_with_a_decimal_comma_or_point_is_the_same(app, client, login_staff):
    with app.app_context():
        admin = make_staff("admin")
    login_staff(admin)
    for typed in ("2,9", "2.9"):
        _, csrf = _settings_form(client)
        r = client.post("/admin/settings", data={"csrf_token": csrf, "fee_percent": typed, "fee_fixed": "0,25",
                                                 "refund_window_days": "90"})
        assert r.status_code == 302, (typed, r.get_data(True)[:500])
        assert _fees(app) == (290, 25)
        html, _ = _settings_form(client)
        assert 'value="2.9"' in html and 'value="0.25"' in html  # prefilled by portal.money, exactly


def test_percent_and_amount_inputs_round_trip():
    assert [parse_percent_bp(t) for t in ("2.9", "2,9", "2.90 %", "10", "0", "")] == [290, 290, 290, 1000, 0, 0]
    assert [percent_to_input(bp) for bp in (290, 295, 1000, 0, 825)] == ["2.9", "2.95", "10", "0", "8.25"]
    assert [to_input(c) for c in (30, 2900, 0)] == ["0.30", "29.00", "0.00"]
    assert to_input(1200, "JPY") == "1200"


def test_a_new_plan_takes_the_business_currency(app, client, login_staff):
    from portal.services.platform import settings

    with app.app_context():
        admin = make_staff("admin")
        c = make_customer()
        settings.ensure().currency = "EUR"
        db.session.commit()
    login_staff(admin)
    html = client.get(f"/admin/customers/{c.id}/plans/new").get_data(True)
    key = re.search(r'name="form_key" type="hidden" value="([^"]+)"', html).group(1)
    r = client.post(f"/admin/customers/{c.id}/plans/new", data={
        "csrf_token": csrf_token_from(html), "form_key": key, "name": "Euro Care", "description": "",
        "visits_per_year": "2", "price_monthly": "29,50", "price_quarterly": "", "price_yearly": "",
        "payment_method": "cash", "start_date": "", "end_date": ""})
    assert r.status_code == 302, r.get_data(True)[:500]
    plan_id = int(r.headers["Location"].rsplit("/", 1)[1])
    with app.app_context():
        plan = db.session.get(CustomerPlan, plan_id)
        assert (plan.currency, plan.price_monthly_cents) == ("EUR", 2950)
    assert "€29.50" in client.get(f"/admin/plans/{plan_id}").get_data(True)
