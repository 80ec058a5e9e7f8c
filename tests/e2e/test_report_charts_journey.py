"""Issue 15 (pictures) and issue 19 point 8 (staff screens), in headless Chromium at 1280 and 375 px.

An admin opens the dashboard, the overdue dashboard, the plan report and the transactions report: each shows its
inline SVG chart (no script) with a title and description for screen readers, bars drawn, the chart fitting the
window at both widths, and its numbers on demand. The dashboard leads to the new messages and the failed plan
payments by counts and links; the transactions filters sit in one row on a desktop.
"""
from __future__ import annotations

from datetime import date, timedelta

import pytest
from playwright.sync_api import expect

from tests import factories
from tests.helpers import staff_logs_in

DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 375, "height": 812}
STAFF_EMAIL = "charts.admin@brightair.test"
CHARTS = {"/admin/": ("payments-chart", "Payments received, last 30 days"),
          "/admin/overdue": ("aging-chart", "Owed by age (days past due)"),
          "/admin/reports/plans": ("mrr-chart", "Monthly recurring revenue, last 12 months"),
          "/admin/reports/transactions": ("money-chart", "Money in and out per day")}


def _business(app) -> None:
    from portal import clock
    from portal.extensions import db
    from portal.models import CustomerPlan, Invoice, MessageRequest, Payment, PlanPayment, Refund

    with app.app_context():
        factories.make_staff("admin", email=STAFF_EMAIL)
        c = factories.make_customer("Chart", "Customer")
        today = clock.today()
        plan = CustomerPlan(customer_id=c.id, name="Comfort Club", status="active", frequency="monthly",
                            price_cents=2_500, start_date=today - timedelta(days=200))
        db.session.add(plan)
        db.session.flush()
        db.session.add_all([
            PlanPayment(plan_id=plan.id, due_date=today - timedelta(days=3), amount_cents=2_500, status="failed",
                        failure_code="insufficient_funds"),
            Invoice(customer_id=c.id, number="CH-1", status="open", issue_date=date(2025, 1, 1),
                    due_date=today - timedelta(days=75), total_cents=12_000, subtotal_cents=12_000),
            MessageRequest(customer_id=c.id, name="Chart", body="Can you come earlier?", status="new"),
            MessageRequest(customer_id=c.id, name="Chart", body="Thanks!", status="new"),
        ])
        for k in range(12):
            when = clock.now() - timedelta(days=k * 2, hours=1)
            db.session.add(Payment(customer_id=c.id, method="card", amount_cents=5_000 + 1_000 * k, fee_cents=150,
                                   net_cents=4_850 + 1_000 * k, received_at=when))
        db.session.flush()
        first = db.session.query(Payment).first()
        db.session.add(Refund(payment_id=first.id, amount_cents=1_000, status="succeeded", idempotency_key="ch_rf",
                              created_at=clock.now() - timedelta(hours=2)))
        db.session.commit()


def _chart_is_drawn(page, chart_id: str, title: str, width: int) -> None:
    figure = page.locator(f"figure#{chart_id}")
    expect(figure).to_be_visible()
    expect(page.get_by_role("img", name=title)).to_be_visible()  # the svg named by its <title> and <desc>
    assert page.locator(f"#{chart_id}-d").text_content().strip()
    box = figure.locator("svg").bounding_box()
    assert box and 200 <= box["width"] <= width, box  # fits the window at both widths
    heights = figure.locator("rect.bar").evaluate_all("rs => rs.map(r => r.getBBox().height)")
    assert heights and max(heights) > 20, heights  # bars drawn with real heights
    assert page.evaluate("document.documentElement.scrollWidth") <= page.evaluate("window.innerWidth") + 1 \
        or width == PHONE["width"]  # the desktop page never scrolls sideways
    figure.get_by_text("The numbers").click()
    expect(figure.locator(".chart-data table")).to_be_visible()


@pytest.mark.e2e
def test_report_charts_at_desktop_and_phone_widths(app, live_server, page):
    _business(app)
    staff_logs_in(page, live_server, STAFF_EMAIL)
    attention = page.locator("#attention")
    expect(attention.get_by_role("link", name="2 new messages")).to_have_attribute("href",
                                                                                  "/admin/messages?status=new")
    expect(attention.get_by_role("link", name="1 failed plan payment")).to_have_attribute(
        "href", "/admin/overdue?kind=plan")
    for viewport in (DESKTOP, PHONE):
        page.set_viewport_size(viewport)
        for path, (chart_id, title) in CHARTS.items():
            page.goto(f"{live_server}{path}")
            full_title = page.locator(f"#{chart_id}-t").text_content()
            assert full_title.startswith(title), full_title
            _chart_is_drawn(page, chart_id, full_title, viewport["width"])
        if viewport is DESKTOP:  # issue 19 point 8: the filters in one row
            boxes = [page.locator(sel).bounding_box() for sel in ("#from", "#to", "form.filters fieldset",
                                                                  "form.filters button")]
            assert max(b["y"] for b in boxes) - min(b["y"] for b in boxes) < 60, boxes
    page.set_viewport_size(DESKTOP)
    page.goto(f"{live_server}/admin/")
    page.locator("#attention").get_by_role("link", name="1 failed plan payment").click()
    expect(page.locator('tr[data-kind="plan_payment"]')).to_have_count(1)
