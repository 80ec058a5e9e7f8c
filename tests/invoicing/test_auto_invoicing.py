"""INV-3 automatic invoicing, driven the way it runs in production: staff set the cadence on the client card,
work is finished on the job page with the moved clock, and `scheduler.run_due` (what `flask jobs run` runs) is called
every morning at 08:00 business time. What is asserted is what people see: the emails the SMTP server received
(subjects, text and HTML parts, PDF attachments read back with pypdf, links that log the customer in), the client
card and its flash messages, the outbox, the activity feed and the invoice rows.
"""
from __future__ import annotations

import html as htmllib
import io
import re
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from pypdf import PdfReader
from sqlalchemy import select

from portal import clock
from portal.extensions import db
from portal.models import ActivityEvent, Customer, Invoice, Job, QueuedEmail, StaffUser
from portal.services.billing import invoices
from portal.services.payments import charges
from portal.services.platform import scheduler
from portal.services.work import work_orders
from tests.factories import make_customer, make_job, make_staff
from tests.helpers import set_clock, staff_client

LA = ZoneInfo("America/Los_Angeles")  # the business time zone (config default)
SUBJECT = "Your invoices from Bright Air"
ENABLED_ON = date(2026, 3, 4)  # a Wednesday: weekly → Wednesdays, semimonthly → Mar 15, Apr 1, …
LAST_DAY = ENABLED_ON + timedelta(days=62)  # 2026-05-05


# --- helpers -----------------------------------------------------------------------------------------------

CADENCE_WORDS = {"weekly": "weekly", "biweekly": "every 2 weeks", "semimonthly": "twice a month (1st and 15th)",
                 "monthly": "monthly (on the 1st)"}
CADENCE_LABELS = {"weekly": "Weekly", "biweekly": "Every 2 weeks", "semimonthly": "Twice a month (1st and 15th)",
                  "monthly": "Monthly (on the 1st)"}


def make_staff_in(app, role: str):
    with app.app_context():
        return make_staff(role)


def make_customer_in(app, first: str, last: str, **kwargs):
    with app.app_context():
        return make_customer(first, last, **kwargs)


def page_text(r) -> str:
    return htmllib.unescape(r.get_data(True))


def flashes(html: str) -> list[tuple[str, str]]:
    return [(cat, htmllib.unescape(msg).strip())
            for cat, msg in re.findall(r'<div class="flash (\w+)" role="\w+">(.*?)</div>', html, re.S)]


def set_cadence(app, login_staff, office, customer_id: int, cadence: str):
    """Staff pick a cadence on the client card and press the button; returns the client card they land on."""
    c = staff_client(app, login_staff, office)
    r = c.post(f"/admin/customers/{customer_id}/auto-invoicing",
               data={"csrf_token": c.csrf, "cadence": cadence}, follow_redirects=True)
    assert r.status_code == 200, r.status_code
    return r


def finish_job(app, login_staff, office, job_id: int) -> None:
    """Staff mark the job finished on its page (finished_at comes from the clock)."""
    c = staff_client(app, login_staff, office)
    r = c.post(f"/admin/jobs/{job_id}/status", data={"csrf_token": c.csrf, "status": "finished"})
    assert r.status_code == 302, r.status_code
    with app.app_context():
        job = db.session.get(Job, job_id)
        assert job.status == "finished" and job.finished_at == clock.now(), (job.status, job.finished_at)


def run_morning(app, smtp, day: date) -> list:
    """`flask jobs run` at 08:00 business time; returns the automatic-invoice emails it delivered."""
    before = len(smtp.messages)
    with app.app_context():
        scheduler.run_due(datetime(day.year, day.month, day.day, 8, 0, tzinfo=LA))
    return [m for m in smtp.messages[before:] if str(m["Subject"]) == SUBJECT]


def pdf_attachments(msg) -> dict[str, str]:
    """{filename: text of the PDF} for every attachment; each must be a PDF."""
    found = {}
    for part in msg.iter_attachments():
        assert part.get_content_type() == "application/pdf", part.get_content_type()
        name = part.get_filename()
        assert name not in found, f"{name} attached twice"
        reader = PdfReader(io.BytesIO(part.get_content()))
        found[name] = "\n".join(page.extract_text() or "" for page in reader.pages)
    return found


def attached_numbers(msg) -> list[str]:
    """The invoice numbers attached, each checked against the text of its own PDF."""
    numbers = []
    for name, text in pdf_attachments(msg).items():
        m = re.fullmatch(r"invoice-(.+)\.pdf", name)
        assert m, name
        assert m.group(1) in text, f"{name} does not show invoice {m.group(1)}"
        numbers.append(m.group(1))
    return sorted(numbers)


def invoice_numbers_of_jobs(app, job_ids) -> dict[int, list[str]]:
    with app.app_context():
        result = {}
        for job_id in job_ids:
            result[job_id] = sorted(db.session.scalars(
                select(Invoice.number).where(Invoice.jobs.any(Job.id == job_id))).all())
        return result


def links(text: str) -> list[str]:
    return re.findall(r"http://portal\.test/portal/magic/[^\s\"<]+", text)


def follow_magic(app, link: str) -> str:
    """Open an email link in a fresh browser: where it lands (the path it redirects to)."""
    c = app.test_client()
    r = c.get(link.replace("http://portal.test", ""))
    assert r.status_code == 302, r.status_code
    return r.headers["Location"]


def new_job(app, customer, title: str) -> int:
    with app.app_context():
        return make_job(customer, title, visit_in_days=None).id


def backlog(app, customer, office) -> tuple[str, int]:
    """Before automatic invoicing is on: a finished job invoiced and sent by hand (the backlog invoice, unpaid),
    and a finished job nobody invoiced. Returns the backlog invoice number and the uninvoiced job id."""
    set_clock(ENABLED_ON - timedelta(days=10), 11)
    with app.app_context():
        staff = db.session.get(StaffUser, office.id)
        job = make_job(customer, "Old furnace repair", visit_in_days=None)
        loose = make_job(customer, "Old duct cleaning", visit_in_days=None)
        for j in (job, loose):
            work_orders.set_status(db.session.get(Job, j.id), staff, "finished")
        db.session.commit()
        invoice = invoices.from_job(db.session.get(Job, job.id), staff)
        db.session.commit()
        invoices.send(invoice, staff)
        db.session.commit()
        return invoice.number, loose.id


# --- 1. Two months of each cadence ---------------------------------------------------------------------------

FINISHED_ON = [0, 2, 5, 6, 20, 21, 22, 44, 50]  # days after enabling; finished at 14:00, after that morning's run


def d(offset: int) -> date:
    return ENABLED_ON + timedelta(days=offset)


# cadence date → the jobs (by FINISHED_ON offset) its email carries; every other morning sends nothing
EXPECTED = {
    "weekly": {d(7): [0, 2, 5, 6], d(21): [20], d(28): [21, 22], d(49): [44], d(56): [50]},
    # empty weekly dates: d(14), d(35), d(42)
    "biweekly": {d(14): [0, 2, 5, 6], d(28): [20, 21, 22], d(56): [44, 50]},  # d(42) empty
    "semimonthly": {date(2026, 3, 15): [0, 2, 5, 6], date(2026, 4, 1): [20, 21, 22],
                    date(2026, 5, 1): [44, 50]},  # Apr 15 empty
    "monthly": {date(2026, 4, 1): [0, 2, 5, 6, 20, 21, 22], date(2026, 5, 1): [44, 50]},
}
EMPTY_CADENCE_DATES = {
    "weekly": [d(14), d(35), d(42)],
    "biweekly": [d(42)],
    "semimonthly": [date(2026, 4, 15)],
    "monthly": [],
}


@pytest.mark.parametrize("cadence", ["weekly", "biweekly", "semimonthly", "monthly"])
def test_two_months_of_automatic_invoicing(app, login_staff, stripe_sandbox, smtp, cadence):
    office = make_staff_in(app, "office")
    customer = make_customer_in(app, "Nora", "Cadence")
    backlog_number, loose_job = backlog(app, customer, office)
    smtp.clear()

    # staff turn it on from the client card
    set_clock(ENABLED_ON, 10)
    r = set_cadence(app, login_staff, office, customer.id, cadence)
    first = min(EXPECTED[cadence])
    assert ("success", f"Automatic invoicing: {CADENCE_WORDS[cadence]}. Next email on {first.isoformat()} "
                       "if there is finished, unpaid work.") in flashes(r.get_data(True))
    assert re.search(rf"<dd data-auto-invoicing>{re.escape(CADENCE_LABELS[cadence])} · next", r.get_data(True))
    unfinished = new_job(app, customer, "Heat pump install (still going)")

    job_ids = {}
    for offset in FINISHED_ON:
        job_ids[offset] = new_job(app, customer, f"Visit day {offset}")

    received: dict[date, list[str]] = {}
    day = ENABLED_ON
    while day <= LAST_DAY:
        emails = run_morning(app, smtp, day)
        assert len(emails) <= 1, f"{len(emails)} automatic emails on {day}"
        if emails:
            received[day] = attached_numbers(emails[0])
        for offset, job_id in job_ids.items():
            if d(offset) == day:
                set_clock(day, 14)
                finish_job(app, login_staff, office, job_id)
        day += timedelta(days=1)

    numbers = invoice_numbers_of_jobs(app, [*job_ids.values(), unfinished, loose_job])
    for offset, job_id in job_ids.items():
        assert len(numbers[job_id]) == 1, f"job finished on day {offset} is on {numbers[job_id]}"
    expected = {when: sorted(numbers[job_ids[o]][0] for o in offsets) for when, offsets in EXPECTED[cadence].items()}
    assert received == expected
    for empty in EMPTY_CADENCE_DATES[cadence]:
        assert empty not in received  # a cadence date with nothing eligible sends nothing
    everything = [n for ns in received.values() for n in ns]
    assert len(everything) == len(set(everything)) == len(FINISHED_ON)  # never in two automatic emails
    assert backlog_number not in everything
    assert numbers[unfinished] == [] and numbers[loose_job] == []  # unfinished work and the backlog: no invoice

    with app.app_context():
        for when, offsets in EXPECTED[cadence].items():
            for o in offsets:
                inv = db.session.scalars(select(Invoice).where(Invoice.jobs.any(Job.id == job_ids[o]))).one()
                assert inv.status == "open"
                assert inv.sent_at == datetime(when.year, when.month, when.day, 8, tzinfo=LA)
                assert inv.auto_invoiced_at == inv.sent_at
        backlog_invoice = db.session.scalars(select(Invoice).where(Invoice.number == backlog_number)).one()
        assert backlog_invoice.status == "open" and backlog_invoice.auto_invoiced_at is None


# --- 2. Paid and hand-sent invoices ---------------------------------------------------------------------------

def test_paid_and_hand_sent_invoices_are_left_out(app, login_staff, stripe_sandbox, smtp):
    office = make_staff_in(app, "office")
    customer = make_customer_in(app, "Paula", "Handsent")
    set_clock(ENABLED_ON, 9)
    set_cadence(app, login_staff, office, customer.id, "weekly")  # cadence dates d(7), d(14), …

    hand, paid, partial, auto1, auto2 = (new_job(app, customer, t) for t in
                                         ("Hand-sent", "Paid", "Part paid", "Auto one", "Auto two"))
    by_hand = {}
    for job_id, offset in ((hand, 1), (paid, 1), (partial, 1), (auto1, 3)):
        set_clock(d(offset), 14)
        finish_job(app, login_staff, office, job_id)
    set_clock(d(2), 11)
    with app.app_context():  # staff invoice three of them and send them by hand after enabling
        staff = db.session.get(StaffUser, office.id)
        for job_id in (hand, paid, partial):
            inv = invoices.from_job(db.session.get(Job, job_id), staff)
            db.session.commit()
            invoices.send(inv, staff)
            db.session.commit()
            by_hand[job_id] = (inv.id, inv.number)

    for day in (d(1), d(2), d(3), d(4), d(5), d(6)):
        assert run_morning(app, smtp, day) == []
    [email] = run_morning(app, smtp, d(7))
    [auto1_number] = invoice_numbers_of_jobs(app, [auto1])[auto1]
    assert attached_numbers(email) == [auto1_number]  # the three sent by hand after enabling are not re-sent

    # before the next cadence date the customer pays one in full and one in part; another job is finished
    set_clock(d(9), 12)
    with app.app_context():
        staff = db.session.get(StaffUser, office.id)
        cust = db.session.get(Customer, customer.id)
        charges.record_manual(cust, method="cash", amount_cents=15_000, reference=None, actor=staff,
                              invoice=db.session.get(Invoice, by_hand[paid][0]))
        charges.record_manual(cust, method="cash", amount_cents=5_000, reference=None, actor=staff,
                              invoice=db.session.get(Invoice, by_hand[partial][0]))
        assert db.session.get(Invoice, by_hand[paid][0]).status == "paid"
    set_clock(d(10), 14)
    finish_job(app, login_staff, office, auto2)
    for day in (d(8), d(9), d(10), d(11), d(12), d(13)):
        assert run_morning(app, smtp, day) == []
    [email] = run_morning(app, smtp, d(14))
    [auto2_number] = invoice_numbers_of_jobs(app, [auto2])[auto2]
    # INV-3: "every invoice … not fully paid and not sent since the last automatic email": the hand-sent ones
    # went out before the d(7) email, so the unpaid and the part-paid one come again; the paid one never does.
    assert attached_numbers(email) == sorted([auto2_number, by_hand[hand][1], by_hand[partial][1]])
    assert by_hand[paid][1] not in attached_numbers(email)
    assert by_hand[partial][1] in smtp.text(email) and "$100.00" in smtp.text(email)  # its balance, not its total


def test_an_invoice_sent_by_hand_between_two_automatic_emails_waits(app, login_staff, stripe_sandbox, smtp):
    office = make_staff_in(app, "office")
    customer = make_customer_in(app, "Hugo", "Between")
    set_clock(ENABLED_ON, 9)
    set_cadence(app, login_staff, office, customer.id, "weekly")
    first, second = new_job(app, customer, "First"), new_job(app, customer, "Second")
    set_clock(d(1), 14)
    finish_job(app, login_staff, office, first)
    [email] = [m for day in (d(1), d(4), d(7)) for m in run_morning(app, smtp, day)]
    set_clock(d(8), 14)
    finish_job(app, login_staff, office, second)
    set_clock(d(9), 9)
    with app.app_context():  # staff invoice the second job and send it by hand after the last automatic email
        staff = db.session.get(StaffUser, office.id)
        inv = invoices.from_job(db.session.get(Job, second), staff)
        db.session.commit()
        invoices.send(inv, staff)
        db.session.commit()
    assert run_morning(app, smtp, d(14)) == []  # sent since the last automatic email: nothing to send


# --- 3. Runner down, runner twice ----------------------------------------------------------------------------

def test_runner_down_over_cadence_dates_sends_one_email_then_the_schedule_continues(app, login_staff,
                                                                                  stripe_sandbox, smtp):
    office = make_staff_in(app, "office")
    customer = make_customer_in(app, "Rita", "Runner")
    set_clock(ENABLED_ON, 9)
    set_cadence(app, login_staff, office, customer.id, "weekly")
    a, b, c = (new_job(app, customer, t) for t in ("A", "B", "C"))
    set_clock(d(1), 14)
    finish_job(app, login_staff, office, a)
    set_clock(d(9), 14)
    finish_job(app, login_staff, office, b)
    # the runner is down from d(1) to d(17): cadence dates d(7) and d(14) pass without a run
    emails = run_morning(app, smtp, d(17))
    assert len(emails) == 1
    numbers = invoice_numbers_of_jobs(app, [a, b, c])
    assert attached_numbers(emails[0]) == sorted(numbers[a] + numbers[b])

    # work finished right after the catch-up run waits for the next cadence date: the missed d(7) and d(14)
    # were both handled by that one run, neither is left over to carry it (a second run that day sends nothing)
    set_clock(d(17), 10)
    finish_job(app, login_staff, office, c)
    with app.app_context():
        scheduler.run_due(datetime.combine(d(17), datetime.min.time(), LA) + timedelta(hours=15))
    assert [m for m in smtp.messages if str(m["Subject"]) == SUBJECT] == emails
    for day in (d(18), d(19), d(20)):
        assert run_morning(app, smtp, day) == []
    # the schedule continues from the latest missed date (d(14)): next one d(21), sent once even if run twice
    first_run, second_run = run_morning(app, smtp, d(21)), run_morning(app, smtp, d(21))
    assert len(first_run) == 1 and second_run == []
    [c_number] = invoice_numbers_of_jobs(app, [c])[c]
    assert attached_numbers(first_run[0]) == [c_number]


# --- 4. What the email carries, outbox and activity feed ------------------------------------------------------

def test_the_email_its_links_the_outbox_and_the_activity_feed(app, login_staff, stripe_sandbox, smtp):
    office = make_staff_in(app, "office")
    customer = make_customer_in(app, "Elena", "Links", language="en")
    set_clock(ENABLED_ON, 9)
    set_cadence(app, login_staff, office, customer.id, "weekly")
    one, two = new_job(app, customer, "Tune-up"), new_job(app, customer, "Filter change")
    set_clock(d(2), 14)
    finish_job(app, login_staff, office, one)
    finish_job(app, login_staff, office, two)
    set_clock(d(7), 8)
    [email] = run_morning(app, smtp, d(7))
    assert str(email["To"]) == customer.primary_email

    with app.app_context():
        invs = db.session.scalars(select(Invoice).where(Invoice.customer_id == customer.id)
                                  .order_by(Invoice.id)).all()
        ids, nums = [i.id for i in invs], [i.number for i in invs]
    assert len(ids) == 2

    text, html = smtp.text(email), smtp.html(email)
    assert text.strip() and html.strip()
    for n in nums:
        assert f"Invoice {n}" in text and f"Invoice {n}" in html
    assert "$150.00" in text and "$300.00" in text  # each balance and the total

    # every link logs the customer in: one per invoice, then "Pay all" with both ids
    text_links = links(text)
    assert len(text_links) == 3, text_links
    assert sorted(follow_magic(app, link) for link in text_links[:2]) == [f"/portal/invoices/{i}" for i in ids]
    pay_all = follow_magic(app, text_links[2])
    assert pay_all == "/portal/invoices/pay-all?ids=" + ",".join(str(i) for i in ids)
    assert "Pay all of them at once: " + text_links[2] in text
    assert {htmllib.unescape(u) for u in links(html)} == set(text_links)  # the HTML part carries the same links
    # the "Pay all" page itself shows both invoices and the total
    c = app.test_client()
    r = c.get(text_links[2].replace("http://portal.test", ""), follow_redirects=True)
    assert r.status_code == 200
    page = page_text(r)
    assert all(n in page for n in nums) and "$300.00" in page

    # the outbox lists it (sent) and its page names the two PDFs; the activity feed has it
    staff = staff_client(app, login_staff, office)
    with app.app_context():
        queued = db.session.scalars(select(QueuedEmail).where(QueuedEmail.template == "invoices_sent")).one()
        assert queued.status == "sent" and queued.customer_id == customer.id
        qid = queued.id
    outbox = page_text(staff.get("/admin/outbox"))
    assert SUBJECT in outbox and f"/admin/outbox/{qid}" in outbox
    detail = page_text(staff.get(f"/admin/outbox/{qid}"))
    for n in nums:
        assert f"invoice-{n}.pdf" in detail
    feed = page_text(staff.get(f"/admin/customers/{customer.id}/activity"))
    assert f"Email: {SUBJECT} → {customer.primary_email}" in feed
    assert f"Automatic invoicing sent: invoices {nums[0]}, {nums[1]}" in feed


# --- 5. Bad input; turning it off ---------------------------------------------------------------------------

@pytest.mark.parametrize("bad", ["daily", "<script>alert(1)</script>", "WEEKLY", " monthly-ish"])
def test_a_cadence_not_in_the_list_is_refused_with_a_message(app, login_staff, stripe_sandbox, smtp, bad):
    office = make_staff_in(app, "office")
    customer = make_customer_in(app, "Bea", "Badinput")
    set_clock(ENABLED_ON, 9)
    r = set_cadence(app, login_staff, office, customer.id, bad)
    raw = r.get_data(True)
    assert ("error", "Choose weekly, every 2 weeks, twice a month or monthly.") in flashes(raw)
    assert "<script>alert(1)</script>" not in raw
    with app.app_context():
        cust = db.session.get(Customer, customer.id)
        assert cust.auto_invoice_cadence is None and cust.auto_invoice_enabled_at is None
        assert not db.session.scalars(select(ActivityEvent).where(
            ActivityEvent.customer_id == customer.id, ActivityEvent.summary.like("Automatic invoicing%"))).all()
    assert re.search(r"<dd data-auto-invoicing>off</dd>", raw)


def test_a_customer_without_email_cannot_get_automatic_invoices(app, login_staff, stripe_sandbox, smtp):
    office = make_staff_in(app, "office")
    customer = make_customer_in(app, "Noel", "Noemail", email=None)
    set_clock(ENABLED_ON, 9)
    r = set_cadence(app, login_staff, office, customer.id, "weekly")
    assert ("error", "This customer has no email address to send invoices to.") in flashes(r.get_data(True))
    with app.app_context():
        assert db.session.get(Customer, customer.id).auto_invoice_cadence is None


def test_turning_it_off_stops_the_emails(app, login_staff, stripe_sandbox, smtp):
    office = make_staff_in(app, "office")
    customer = make_customer_in(app, "Otto", "Offswitch")
    set_clock(ENABLED_ON, 9)
    set_cadence(app, login_staff, office, customer.id, "weekly")
    job = new_job(app, customer, "Tune-up")
    set_clock(d(2), 14)
    finish_job(app, login_staff, office, job)
    set_clock(d(3), 10)
    r = set_cadence(app, login_staff, office, customer.id, "")
    assert ("success", "Automatic invoicing turned off.") in flashes(r.get_data(True))
    assert re.search(r"<dd data-auto-invoicing>off</dd>", r.get_data(True))
    for offset in range(3, 30):
        assert run_morning(app, smtp, d(offset)) == []
    assert invoice_numbers_of_jobs(app, [job])[job] == []  # nothing invoiced automatically either
