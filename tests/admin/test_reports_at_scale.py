"""Issue 15 (reports page by page, sums over the whole filter, pictures) and issue 19 point 5 (declines count 0)."""
from __future__ import annotations

import csv
import io
import re
from datetime import date, datetime, timedelta
from decimal import Decimal

from portal.extensions import db
from tests.factories import make_customer, make_staff


def _money_rows(customer_id: int, day: date, payments: int, declined: int) -> None:
    from portal import clock
    from portal.models import ChargeAttempt, Payment, Refund

    noon = datetime(day.year, day.month, day.day, 12, 0, tzinfo=clock.business_tz())
    rows = [Payment(customer_id=customer_id, method="card", amount_cents=1_000 + k, fee_cents=59, net_cents=941 + k,
                    card_brand="visa", card_last4="4242", received_at=noon + timedelta(minutes=k))
            for k in range(payments)]
    db.session.add_all(rows)
    db.session.flush()
    db.session.add(Refund(payment_id=rows[0].id, amount_cents=300, reason="goodwill", status="succeeded",
                          idempotency_key=f"rf_{rows[0].id}", created_at=noon + timedelta(hours=1)))
    db.session.add_all([ChargeAttempt(idempotency_key=f"dec_{customer_id}_{day}_{k}", customer_id=customer_id,
                                      amount_cents=8_700, status="failed", purpose="invoice",
                                      decline_code="insufficient_funds", failure_message="Your card was declined.",
                                      created_at=noon + timedelta(minutes=k)) for k in range(declined)])
    db.session.commit()


def test_transactions_page_by_page_with_sums_over_the_range_and_declines_counting_zero(app, client, login_staff,
                                                                                       frozen_clock):
    with app.app_context():
        admin = make_staff("admin")
        ana = make_customer("Ana", "Diaz")
        today = frozen_clock.now().date()
        _money_rows(ana.id, today - timedelta(days=3), 150, 2)
        _money_rows(ana.id, today - timedelta(days=1), 80, 1)
    login_staff(admin)
    start = (today - timedelta(days=9)).isoformat()
    url = f"/admin/reports/transactions?from={start}&to={today.isoformat()}"
    first = client.get(url).get_data(True)
    # 230 payments (1000..1149 and 1000..1079 cents), 2 refunds of 3.00, 3 declines of 87.00 (not money); 50 a page
    amount = sum(1_000 + k for k in range(150)) + sum(1_000 + k for k in range(80)) - 600
    fees = 59 * 230
    assert f'data-total="amount">${Decimal(amount) / 100:,.2f}<' in first
    assert f'data-total="fee">${Decimal(fees) / 100:,.2f}<' in first
    assert f'data-total="net">${Decimal(amount - fees) / 100:,.2f}<' in first
    assert 'data-total="count">232 (+ 3 declined, not counted)' in first
    assert first.count("<tr data-type=") == 50 and "Page 1 of 5" in first
    declined = re.findall(r'<tr data-type="declined">.*?</tr>', first, re.DOTALL)
    assert declined, "the oldest page starts on the day with declines"
    row = declined[0]
    assert '<td class="num" data-net>$0.00</td>' in row and "($87.00)" in row
    assert "Code: insufficient_funds" in row and "What to do:" in row and "call the number" not in row.lower()
    # the chart: inline SVG with a title and description, one bar pair per day, the same money in as the totals
    assert '<svg viewBox="0 0 720 240" role="img" aria-labelledby="money-chart-t money-chart-d"' in first
    assert re.search(r'<title id="money-chart-t">Money in and out per day', first)
    assert first.count('class="bar s0"') == 10 and first.count('class="bar s1"') == 10
    assert f"In: ${Decimal(amount + 600) / 100:,.2f}" in first and "Out: $6.00" in first
    last = client.get(url + "&page=5").get_data(True)
    assert last.count("<tr data-type=") == 235 - 200 and "Page 5 of 5" in last
    assert client.get(url + "&page=99").get_data(True).count("<tr data-type=") == 35  # past the end: the last page
    exported = client.get(url + "&format=csv")
    assert exported.status_code == 200 and exported.is_streamed
    rows = list(csv.DictReader(io.StringIO(exported.get_data(True))))
    assert len(rows) == 235
    assert sum(Decimal(r["amount"]) for r in rows) == Decimal(amount) / 100
    assert sum(Decimal(r["net"]) for r in rows) == Decimal(amount - fees) / 100
    for r in (r for r in rows if r["type"] == "declined"):
        assert (r["amount"], r["fee"], r["net"], r["attempted"]) == ("0.00", "0.00", "0.00", "87.00")
        assert "Code: insufficient_funds" in r["failure_message"] and "What to do:" in r["failure_message"]


def test_overdue_dashboard_pages_rows_and_sums_every_bucket(app, client, login_staff, frozen_clock):
    from portal.models import Invoice, InvoiceLineItem

    with app.app_context():
        admin = make_staff("admin")
        today = frozen_clock.now().date()
        owner = make_customer("Olga", "Owes")
        for k in range(130):  # 10 … 139 days past due: 21 + 30 + 30 + 49 in the four buckets
            inv = Invoice(customer_id=owner.id, number=f"OV-{k}", status="open", issue_date=today,
                          due_date=today - timedelta(days=10 + k), subtotal_cents=1_000, total_cents=1_000,
                          paid_cents=0)
            inv.line_items.append(InvoiceLineItem(description="x", quantity=1, unit_price_cents=1_000))
            db.session.add(inv)
        db.session.commit()
    login_staff(admin)
    html = client.get("/admin/overdue").get_data(True)
    assert '<td data-bucket="0–30">$210.00 <span class="muted">(21)</span></td>' in html
    assert '<td data-bucket="90+">$490.00 <span class="muted">(49)</span></td>' in html
    assert "<td data-total>$1,300.00</td>" in html
    assert html.count('<tr data-kind="invoice">') == 50 and "Page 1 of 3" in html
    assert html.index("OV-129") < html.index("OV-100")  # oldest first
    assert 'aria-labelledby="aging-chart-t aging-chart-d"' in html and html.count('class="bar s0"') == 4
    assert "90+ days: $490.00 on 49 items" in html
    rest = client.get("/admin/overdue?page=3").get_data(True)
    assert rest.count('<tr data-kind="invoice">') == 30 and "OV-0<" in rest and "OV-30<" not in rest
    only_old = client.get("/admin/overdue?bucket=90%2B").get_data(True)
    assert only_old.count('<tr data-kind="invoice">') == 49 and "<td data-total>$490.00</td>" in only_old


def test_plan_report_mrr_in_sql_with_twelve_months_chart_and_pages(app, client, login_staff, frozen_clock):
    from portal.models import CustomerPlan, PlanAddon

    with app.app_context():
        admin = make_staff("admin")
        c = make_customer("Pat", "Plans")
        today = frozen_clock.now().date()
        for k in range(60):  # started k months ago (newest first); a quarterly and a yearly one among them
            frequency, price = ("quarterly", 5_500) if k == 1 else ("yearly", 12_000) if k == 2 else ("monthly", 2_000)
            plan = CustomerPlan(customer_id=c.id, name=f"Plan {k}", status="active", frequency=frequency,
                                price_cents=price, start_date=today - timedelta(days=31 * k))
            db.session.add(plan)
            if k == 0:
                db.session.flush()
                db.session.add(PlanAddon(plan_id=plan.id, customer_id=c.id, name="Filter", amount_cents=500,
                                         payment_plan="recurring", status="active"))
        db.session.commit()
    login_staff(admin)
    html = client.get("/admin/reports/plans").get_data(True)
    mrr = 58 * 2_000 + 500 + (5_500 * 2 + 3) // 6 + (12_000 * 2 + 12) // 24
    assert f"<dd data-mrr>${Decimal(mrr) / 100:,.2f}</dd>" in html
    assert 'aria-labelledby="mrr-chart-t mrr-chart-d"' in html and html.count('class="bar s0"') == 12
    assert f"to {today:%B %Y} (${Decimal(mrr) / 100:,.2f})" in html  # the description names the last month
    assert "Page 1 of 2" in html and html.count('href="/admin/plans/') == 50
    assert client.get("/admin/reports/plans?page=2").get_data(True).count('href="/admin/plans/') == 10


def test_staff_read_the_staff_wording_of_a_decline(app, client, login_staff, stripe_sandbox):
    """Issue 19 point 5: a card declined when staff charge it reads the code and what staff should do; the
    customer's wording (call the number on the back of the card) stays for the portal and the customer's emails."""
    from tests.factories import make_card, make_invoice
    from tests.helpers import csrf_token_from

    with app.app_context():
        admin = make_staff("admin")
        c = make_customer("Dee", "Clined", email="dee@example.com")
        invoice = make_invoice(c, 8_700)
        card = make_card(c.id, "4000000000000341")  # attaches, then every charge is declined
    login_staff(admin)
    html = client.get(f"/admin/customers/{c.id}/charge?invoice={invoice.id}").get_data(True)
    token = re.search(r'name="token" type="hidden" value="([^"]+)"', html).group(1)
    page = client.post(f"/admin/customers/{c.id}/charge", data={
        "csrf_token": csrf_token_from(html), "token": token, "card_id": card.id, "invoice_id": invoice.id,
        "amount": "87.00"}).get_data(True)
    assert "was not charged" in page and "Code: card_declined" in page
    assert "Ask the customer to call their bank or give another card" in page
    assert "number on the back of the card" not in page
    history = client.get(f"/admin/customers/{c.id}").get_data(True)
    row = re.search(r'<tr data-type="declined">.*?</tr>', history, re.DOTALL).group(0)
    assert '<td class="num" data-net>$0.00</td>' in row and "Code: card_declined" in row


def test_transactions_csv_cells_quoting_and_order_whatever_the_text(app, client, login_staff, frozen_clock):
    """PostgreSQL writes the CSV itself, SQLite through Python's csv writer: the same bytes either way, for
    commas, quotes, line breaks, formula-like text, business and nameless customers and unknown decline codes."""
    from portal import clock
    from portal.models import Adjustment, ChargeAttempt, Customer, Payment, Refund
    from portal.services.payments import declines

    with app.app_context():
        admin = make_staff("admin")
        firm = make_customer("Zed", "Ignored", kind="business", company_name='Acme, "The" Co')
        formula = make_customer("=cmd", "x")
        nameless = Customer(first_name="", last_name="", status="active", preferred_language="en")
        db.session.add(nameless)
        db.session.flush()
        today = frozen_clock.now().date()
        tz = clock.business_tz()
        at = datetime(today.year, today.month, today.day, 9, 5, tzinfo=tz) - timedelta(days=1)
        paid = Payment(customer_id=firm.id, method="card", amount_cents=123_456, fee_cents=3_611, net_cents=119_845,
                       card_brand="american_express", card_last4="0005", reference='=HYPERLINK("x")', received_at=at)
        cash = Payment(customer_id=formula.id, method="cash", amount_cents=5, fee_cents=0, net_cents=5,
                       reference="line one\nline two", received_at=at + timedelta(minutes=1))
        branded = Payment(customer_id=nameless.id, method="card", amount_cents=700, fee_cents=0, net_cents=700,
                          card_brand=None, card_last4="1234", received_at=at + timedelta(minutes=2))
        db.session.add_all([paid, cash, branded])
        db.session.flush()
        db.session.add(Refund(payment_id=paid.id, amount_cents=1_001, reason='said "no", twice\r\nthen left',
                              status="succeeded", idempotency_key="rf_csv", created_at=at + timedelta(minutes=3)))
        db.session.add(Adjustment(customer_id=formula.id, payment_id=cash.id, amount_cents=-250, reason="-fix, typo",
                                  created_at=at + timedelta(minutes=4)))
        db.session.add_all([
            ChargeAttempt(idempotency_key="dec_csv_1", customer_id=firm.id, amount_cents=4_200, status="failed",
                          purpose="invoice", decline_code="weird_code", failure_message="Bank said: no, sorry",
                          created_at=at + timedelta(minutes=5)),
            ChargeAttempt(idempotency_key="dec_csv_2", customer_id=nameless.id, amount_cents=99, status="failed",
                          purpose="invoice", decline_code="insufficient_funds", failure_message=None,
                          created_at=at + timedelta(minutes=5))])
        db.session.commit()
        ids = {"firm": firm.id, "formula": formula.id, "nameless": nameless.id, "paid": paid.id, "cash": cash.id,
               "branded": branded.id}
        funds = declines.staff_text("insufficient_funds", None)
    login_staff(admin)
    day = (today - timedelta(days=1)).isoformat()
    body = client.get(f"/admin/reports/transactions?from={day}&to={day}&format=csv").get_data()

    def when(minutes: int) -> str:
        return (at + timedelta(minutes=minutes)).strftime("%Y-%m-%d %H:%M")

    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["date", "customer", "customer_id", "type", "method", "card", "status", "failure_message",
                     "amount", "fee", "net", "attempted", "currency", "reference", "payment_id"])
    firm_name, formula_name, nameless_name = 'Acme, "The" Co', "'=cmd x", f"Customer #{ids['nameless']}"
    writer.writerows([
        [when(0), firm_name, ids["firm"], "payment", "card", "American_Express •••• 0005", "succeeded", "",
         "1234.56", "36.11", "1198.45", "", "USD", "'=HYPERLINK(\"x\")", ids["paid"]],
        [when(1), formula_name, ids["formula"], "payment", "cash", "", "succeeded", "", "0.05", "0.00", "0.05", "",
         "USD", "line one\nline two", ids["cash"]],
        [when(2), nameless_name, ids["nameless"], "payment", "card", "Card •••• 1234", "succeeded", "", "7.00",
         "0.00", "7.00", "", "USD", "", ids["branded"]],
        [when(3), firm_name, ids["firm"], "refund", "card", "American_Express •••• 0005", "succeeded",
         'said "no", twice\r\nthen left', "-10.01", "0.00", "-10.01", "", "USD", "", ids["paid"]],
        [when(4), formula_name, ids["formula"], "adjustment", "", "", "recorded", "'-fix, typo", "-2.50", "0.00",
         "-2.50", "", "USD", "", ids["cash"]],
        [when(5), firm_name, ids["firm"], "declined", "card", "", "failed",
         "The card was declined. Code: weird_code. Processor: “Bank said: no, sorry”. What to do: Ask the customer "
         "to call their bank or give another card; retrying the same card now will not help.", "0.00", "0.00",
         "0.00", "42.00", "USD", "", ""],
        [when(5), nameless_name, ids["nameless"], "declined", "card", "", "failed", funds, "0.00", "0.00", "0.00",
         "0.99", "USD", "", ""],
    ])
    assert "Processor" not in funds and funds.startswith("The card")
    assert body.decode() == out.getvalue()


def test_copy_row_ends_become_crlf_outside_quoted_cells_across_blocks():
    """COPY ends rows with LF and the Python writer with CRLF; an LF inside a quoted cell is text. The blocks the
    server sends may split a quoted cell anywhere."""
    from portal.services.platform.pg_copy import crlf

    text = b'a,"x\ny",b\nc,"""q""\n",d\n"\n",e\nplain\n'
    expected = b'a,"x\ny",b\r\nc,"""q""\n",d\r\n"\n",e\r\nplain\r\n'
    for size in range(1, len(text) + 1):
        convert = crlf()
        assert b"".join(convert(text[i:i + size]) for i in range(0, len(text), size)) == expected


def test_the_csvs_local_times_come_from_the_zones_offsets_found_to_the_second():
    """PostgreSQL's CSV adds the business zone's offset to each UTC time: the offsets and where they change, found
    by bisection, give Python's own local time for every instant of a range (30-minute DST in Lord Howe, zones
    west and east, a range without any change)."""
    import random
    from bisect import bisect_right
    from zoneinfo import ZoneInfo

    from portal.services.payments.ledger import _utc_offsets

    rng = random.Random(15)
    for name in ("America/Los_Angeles", "Europe/London", "Australia/Lord_Howe", "America/Santiago", "Asia/Kolkata",
                 "UTC"):
        zone = ZoneInfo(name)
        lo = datetime(2024, 1, 1, tzinfo=zone)
        hi = datetime(2026, 3, 1, tzinfo=zone)
        starts, offsets = _utc_offsets(zone, lo, hi)
        assert starts == sorted(starts) and len(starts) == len(offsets)
        span = int((hi - lo).total_seconds())
        instants = [lo + timedelta(seconds=rng.randrange(span)) for _ in range(3000)]
        instants += [s.replace(tzinfo=ZoneInfo("UTC")) + timedelta(seconds=d) for s in starts[1:]
                     for d in (-61, -1, 0, 1, 59)]  # around each change
        for when in instants:
            naive = when.astimezone(ZoneInfo("UTC")).replace(tzinfo=None)
            offset = offsets[bisect_right(starts, naive) - 1]
            assert (naive + offset).strftime("%Y-%m-%d %H:%M") == when.astimezone(zone).strftime("%Y-%m-%d %H:%M")
