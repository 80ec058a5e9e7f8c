"""INV-5 invoice reminders (and INV-7 links in them, N-2 logging) with the moved clock.

The job runner (`scheduler.run_due`, what `flask jobs run` runs) is run at 09:00 business time on each day around an
invoice's due date D; the tests read which days reminder emails reach the real SMTP capture server, what they say,
where their magic link leads, the InvoiceReminder rows, the AutoPay charges in the Stripe sandbox (localstripe),
and the pages staff use (Settings › Automations, the invoice page's Resend button, the outbox, the activity feed).
"""
from __future__ import annotations

import re
from datetime import date, datetime, time, timedelta
from types import SimpleNamespace
from urllib.parse import urlparse
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from portal import clock
from portal.extensions import db
from portal.models import Customer, Invoice, InvoiceReminder, Job, QueuedEmail
from portal.money import format_money
from portal.services.billing import autopay, invoices, reminders
from portal.services.payments import charges
from portal.services.platform import settings
from tests.conftest import SMTPServer
from tests.factories import make_card, make_customer, make_invoice, make_job, make_staff
from tests.helpers import csrf_token_from, run_jobs_at, sandbox_intents

LA = ZoneInfo("America/Los_Angeles")  # the business time zone (config default)
D = date(2026, 3, 20)  # every invoice's due date
TOTAL = 25_000
GOOD, DECLINED = "4242424242424242", "4000000000000341"
DEFAULT_DAYS = [1, 7, 14, 30]
SWEEP = range(-2, 36)  # D-2 … D+35
LINK = re.compile(r"http://portal\.test/portal/magic/[A-Za-z0-9._-]+")


# --- helpers -------------------------------------------------------------------------------------------------

def at(day: int, hour: int = 9, minute: int = 0) -> datetime:
    """`day` days after the due date, at hour:minute business time."""
    return datetime.combine(D + timedelta(days=day), time(hour, minute), LA)


def subject_of(number: str) -> str:
    return f"Reminder: invoice {number} from Bright Air is past due"


def reminder_mails(smtp, who) -> list:
    return [m for m in smtp.to(who.email) if str(m["Subject"]).startswith("Reminder: invoice")]


def fresh(model, id_):
    return db.session.scalars(select(model).where(model.id == id_).execution_options(populate_existing=True)).one()


def next_reminder(who) -> date | None:
    """The next reminder date the staff invoice page announces (None: none planned)."""
    return reminders.status(fresh(Invoice, who.invoice_id)).next_reminder


def rows_of(who) -> list[tuple[date, int]]:
    """(anchor date, step) of every InvoiceReminder of the invoice, in the order sent."""
    return [(r.anchor_date, r.day_offset) for r in db.session.scalars(
        select(InvoiceReminder).where(InvoiceReminder.invoice_id == who.invoice_id)
        .order_by(InvoiceReminder.sent_at, InvoiceReminder.id).execution_options(populate_existing=True))]


def billed(tag: str, *, job_status: str = "finished", send_on: int | None = -14, manager=None, due: date = D):
    """A customer with one invoice for a job (status `job_status`), due `due`, sent by staff on day `send_on`
    (None: never sent, left a draft)."""
    clock.set_now(at(-20, 10))
    customer = make_customer("Rita", tag.title(), email=f"rita.{tag}@example.com",
                             manager_id=manager.id if manager else None)
    job = make_job(customer, status=job_status, visit_in_days=-1)
    made = make_invoice(customer, total_cents=TOTAL, status="draft", due_date=due, number=f"INV-{tag.upper()}")
    invoice = db.session.get(Invoice, made.id)
    invoice.jobs = [db.session.get(Job, job.id)]
    db.session.commit()
    if send_on is not None:
        clock.set_now(at(send_on, 10))
        invoices.send(invoice, None)
        db.session.commit()
    return SimpleNamespace(customer_id=customer.id, email=customer.primary_email, invoice_id=invoice.id,
                           number=invoice.number, job_id=job.id)


def check_reminder(app, msg, who, *, days_overdue: int, balance_cents: int = TOTAL) -> None:
    """A reminder as the customer gets it: subject, both parts, the overdue days and balance, and a magic link
    (INV-7) that logs the customer in on the invoice in the portal."""
    assert str(msg["Subject"]) == subject_of(who.number)
    text, html = SMTPServer.text(msg), SMTPServer.html(msg)
    unit = "day" if days_overdue == 1 else "days"
    for part in (text, html):
        assert f"invoice {who.number} from Bright Air was due {days_overdue} {unit} ago." in part, part
        assert format_money(balance_cents, "USD") in part
        assert "Mar 20, 2026" in part  # the due date D
    links = LINK.findall(text)
    assert len(set(links)) == 1, text
    link = links[0]
    assert f'href="{link}"' in html
    browser = Browser(app)
    r = browser.get(urlparse(link).path)
    assert r.status_code == 302 and r.headers["Location"].endswith(f"/portal/invoices/{who.invoice_id}")
    page = browser.get(f"/portal/invoices/{who.invoice_id}")
    assert page.status_code == 200 and who.number in page.get_data(True)
    assert browser.get("/portal/").status_code == 200  # logged in, not just let through once


class Browser:
    """A test client whose every request runs in its own application context (its own `g` and database session)
    as in production. A request made while the test holds an app context would otherwise share the test's `g`
    (Flask reuses an active context): the staff user Flask-Login cached there, the business settings, ..."""

    def __init__(self, app):
        self.app, self.client = app, app.test_client()

    def get(self, *args, **kwargs):
        with self.app.app_context():
            return self.client.get(*args, **kwargs)

    def post(self, *args, **kwargs):
        with self.app.app_context():
            return self.client.post(*args, **kwargs)


def sweep(app, smtp, people, *, days=SWEEP, skip=(), actions=None, check=True) -> dict[str, list[int]]:
    """Run the job runner at 09:00 business time on each day (relative to D) of `days` but those in `skip`,
    then do `actions[day]()` if any. Returns, per person's tag, the days on which a reminder email arrived;
    every arriving reminder is checked (`check_reminder`) as it arrives."""
    actions = actions or {}
    got = {tag: [] for tag in people}
    for day in days:
        if day not in skip:
            before = {tag: len(reminder_mails(smtp, who)) for tag, who in people.items()}
            run_jobs_at(at(day))
            for tag, who in people.items():
                arrived = reminder_mails(smtp, who)[before[tag]:]
                got[tag] += [day] * len(arrived)
                if check:
                    for msg in arrived:
                        balance = fresh(Invoice, who.invoice_id).balance_cents
                        check_reminder(app, msg, who, days_overdue=day, balance_cents=balance)
        if day in actions:
            actions[day]()
    return got


def pay_cash(who, amount_cents: int = TOTAL) -> None:
    staff = make_staff("office")
    charges.record_manual(db.session.get(Customer, who.customer_id), method="cash", amount_cents=amount_cents,
                          reference=None, actor=staff, invoice=fresh(Invoice, who.invoice_id))


def void(who) -> None:
    staff = make_staff("office")
    invoices.void(fresh(Invoice, who.invoice_id), staff, "Billed twice")
    db.session.commit()


def resend_on_admin_page(app, login_staff, who) -> None:
    """Staff press "Resend to customer" on the admin invoice page."""
    staff = make_staff("office")
    db.session.commit()
    browser = login_staff(staff, c=Browser(app))
    page = browser.get(f"/admin/invoices/{who.invoice_id}").get_data(True)
    assert "Resend to customer" in page
    r = browser.post(f"/admin/invoices/{who.invoice_id}/send", data={"csrf_token": csrf_token_from(page)})
    assert r.status_code == 302
    assert f"Invoice {who.number} resent to {who.email}" in browser.get(r.headers["Location"]).get_data(True)


# --- 1, 2, 3, 5: the schedule, table-driven ------------------------------------------------------------------

def _resend(day: int):
    def setup(app, login_staff, who):
        def act():
            clock.set_now(at(day, 12))  # after that day's 09:00 run
            resend_on_admin_page(app, login_staff, who)
        return {day: act}
    return setup


def _pay(day: int, cents: int):
    def setup(app, login_staff, who):
        def act():
            clock.set_now(at(day, 12))
            pay_cash(who, cents)
        return {day: act}
    return setup


def _void(day: int):
    def setup(app, login_staff, who):
        def act():
            clock.set_now(at(day, 12))
            void(who)
        return {day: act}
    return setup


# id, first send (day), actions, days the runner is down, reminder days, InvoiceReminder (anchor, step) rows
SCHEDULES = [
    ("default-schedule", -14, None, (), [1, 7, 14, 30],
     [(D, 1), (D, 7), (D, 14), (D, 30)]),
    ("resend-on-day-5-restarts", -14, _resend(5), (), [1, 6, 12, 19, 35],
     [(D, 1), (D + timedelta(5), 1), (D + timedelta(5), 7), (D + timedelta(5), 14), (D + timedelta(5), 30)]),
    ("resend-before-due-keeps-schedule", -14, _resend(-1), (), [1, 7, 14, 30],
     [(D, 1), (D, 7), (D, 14), (D, 30)]),
    ("first-sent-after-due-counts-from-send", 3, None, (), [4, 10, 17, 33],
     [(D + timedelta(3), 1), (D + timedelta(3), 7), (D + timedelta(3), 14), (D + timedelta(3), 30)]),
    ("runner-down-days-2-to-19", -14, None, range(2, 20), [1, 20, 30],
     [(D, 1), (D, 14), (D, 30)]),
    ("paid-in-full-on-day-10-stops", -14, _pay(10, TOTAL), (), [1, 7],
     [(D, 1), (D, 7)]),
    ("partly-paid-on-day-10-continues", -14, _pay(10, 10_000), (), [1, 7, 14, 30],
     [(D, 1), (D, 7), (D, 14), (D, 30)]),
    ("voided-on-day-10-stops", -14, _void(10), (), [1, 7],
     [(D, 1), (D, 7)]),
]


@pytest.mark.parametrize("name,send_on,setup,down,expected_days,expected_rows", SCHEDULES,
                         ids=[s[0] for s in SCHEDULES])
def test_reminder_schedule(app, ctx, smtp, login_staff, name, send_on, setup, down, expected_days, expected_rows):
    late = send_on >= SWEEP.start  # sent for the first time during the sweep
    who = billed("sched", send_on=None if late else send_on)
    actions = setup(app, login_staff, who) if setup else {}
    if late:
        def first_send():
            clock.set_now(at(send_on, 10))
            invoices.send(fresh(Invoice, who.invoice_id), None)
            db.session.commit()
        actions[send_on] = first_send
    got = sweep(app, smtp, {"sched": who}, skip=down, actions=actions)
    assert got["sched"] == expected_days
    assert rows_of(who) == expected_rows
    # every reminder is in the outbox as sent, linked to its InvoiceReminder row
    emails = db.session.scalars(select(QueuedEmail).where(QueuedEmail.template == "invoice_reminder")
                                .order_by(QueuedEmail.id)).all()
    assert [(e.status, e.subject, e.to_address) for e in emails] == \
        [("sent", subject_of(who.number), who.email)] * len(expected_days)
    linked = db.session.scalars(select(InvoiceReminder.email_id).where(InvoiceReminder.invoice_id == who.invoice_id)
                                .order_by(InvoiceReminder.id)).all()
    assert linked == [e.id for e in emails]


def test_a_resend_email_arrives_and_the_next_reminder_date_moves(app, ctx, smtp, login_staff):
    """The resend itself (INV-2 email through SMTP) and `next_reminder` before and after it."""
    who = billed("moved")
    run_jobs_at(at(1))
    assert next_reminder(who) == D + timedelta(7)
    clock.set_now(at(5, 12))
    resend_on_admin_page(app, login_staff, who)
    invoice = fresh(Invoice, who.invoice_id)
    assert invoice.reminder_anchor_date == D + timedelta(5)
    assert next_reminder(who) == D + timedelta(6)
    sent = [m for m in smtp.to(who.email) if str(m["Subject"]) == f"Invoice {who.number} from Bright Air"]
    assert len(sent) == 2  # the first send (delivered by the day-1 run) and the resend (after the request)


# --- 3: invoices that get none --------------------------------------------------------------------------------

def _draft(tag):
    return billed(tag, send_on=None)


def _open_never_sent(tag):
    who = billed(tag, send_on=None)
    fresh(Invoice, who.invoice_id).status = "open"
    db.session.commit()
    return who


def _paid_before_due(tag):
    who = billed(tag)
    clock.set_now(at(-3, 12))
    pay_cash(who)
    assert fresh(Invoice, who.invoice_id).status == "paid"
    return who


def _voided(tag):
    who = billed(tag)
    clock.set_now(at(-3, 12))
    void(who)
    return who


def _unfinished(status):
    def make(tag):
        return billed(tag, job_status=status)
    return make


def _one_of_two_jobs_unfinished(tag):
    who = billed(tag, send_on=None)
    second = make_job(db.session.get(Customer, who.customer_id), status="scheduled")
    invoice = fresh(Invoice, who.invoice_id)
    invoice.jobs.append(db.session.get(Job, second.id))
    db.session.commit()
    clock.set_now(at(-14, 10))
    invoices.send(invoice, None)
    db.session.commit()
    return who


def _no_due_date(tag):
    who = billed(tag, send_on=None)
    invoice = fresh(Invoice, who.invoice_id)
    invoice.due_date = None
    db.session.commit()
    clock.set_now(at(-14, 10))
    invoices.send(invoice, None)
    db.session.commit()
    return who


def _archived_customer(tag):
    who = billed(tag)
    db.session.get(Customer, who.customer_id).status = "archived"
    db.session.commit()
    return who


NO_REMINDERS = [
    ("draft", _draft),
    ("open-never-sent", _open_never_sent),
    ("paid", _paid_before_due),
    ("voided", _voided),
    ("job-scheduled", _unfinished("scheduled")),
    ("job-in-progress", _unfinished("in_progress")),
    ("one-of-two-jobs-unfinished", _one_of_two_jobs_unfinished),
    ("no-due-date", _no_due_date),
    ("archived-customer", _archived_customer),
]


@pytest.mark.parametrize("make", [m for _, m in NO_REMINDERS], ids=[n for n, _ in NO_REMINDERS])
def test_no_reminders_for(app, ctx, smtp, make):
    """Never a reminder for the invoice, while a sent, unpaid invoice of a finished job due the same day (the
    control) gets each of its four: the runner did run."""
    control = billed("control")
    who = make("case")
    # a run sends the latest step due, so these days would catch any reminder the invoice was given
    got = sweep(app, smtp, {"control": control, "case": who}, days=(-1, 0, 1, 2, 7, 14, 30, 35))
    assert got == {"control": DEFAULT_DAYS, "case": []}
    assert rows_of(who) == []
    assert next_reminder(who) is None  # and the staff invoice page announces none


def test_finishing_the_job_late_starts_reminders_with_the_latest_step(app, ctx, smtp):
    who = billed("late", job_status="in_progress")

    def finish():
        fresh(Job, who.job_id).status = "finished"
        db.session.commit()

    got = sweep(app, smtp, {"late": who}, actions={9: finish})
    assert got["late"] == [10, 14, 30]  # one catch-up (step 7) on day 10, never the missed step 1
    assert rows_of(who) == [(D, 7), (D, 14), (D, 30)]


# --- 4: AutoPay ------------------------------------------------------------------------------------------------

def _autopay_customer(tag, card_number, manager):
    who = billed(tag, manager=manager)
    make_card(who.customer_id, card_number)
    autopay.enroll(db.session.get(Customer, who.customer_id), None, True)
    db.session.commit()
    return who


def test_autopay_decline_on_the_due_date_turns_reminders_on(app, ctx, stripe_sandbox, smtp):
    """Global AutoPay on. At 00:30 on the due date AutoPay charges both enrolled customers' invoices: Ana's card
    declines (the failure emails go out and her reminders follow the normal schedule), Ben's is paid (no
    reminders). Cleo, not enrolled, is the control. Nothing is charged twice."""
    manager = make_staff("office", email="manager.autopay@brightair.test")
    autopay.set_global(True)
    db.session.commit()
    ana = _autopay_customer("ana", DECLINED, manager)
    ben = _autopay_customer("ben", GOOD, manager)
    cleo = billed("cleo")
    people = {"ana": ana, "ben": ben, "cleo": cleo}

    got = sweep(app, smtp, people, days=range(-2, 0))
    assert fresh(Invoice, ana.invoice_id).autopay_failed_at is None
    assert next_reminder(ana) is None  # AutoPay will pay it: none planned

    run_jobs_at(at(0, 0, 30))  # AutoPay's night
    assert sorted((pi["amount"], pi["status"]) for pi in sandbox_intents()) == \
        [(TOTAL, "requires_payment_method"), (TOTAL, "succeeded")]
    failed = fresh(Invoice, ana.invoice_id)
    assert failed.autopay_failed_at == at(0, 0, 30) and failed.status == "open"
    assert fresh(Invoice, ben.invoice_id).status == "paid"
    assert [str(m["Subject"]) for m in smtp.to(ana.email) if "did not go through" in str(m["Subject"])] == \
        ["Your payment to Bright Air did not go through"]
    assert [str(m["Subject"]) for m in smtp.to(manager.email)] == \
        [f"AutoPay payment failed: Rita Ana, invoice {ana.number}"]
    assert next_reminder(ana) == D + timedelta(1)

    later = sweep(app, smtp, people, days=range(36))
    for tag in people:
        got[tag] += later[tag]
    assert got == {"ana": DEFAULT_DAYS, "ben": [], "cleo": DEFAULT_DAYS}
    run_jobs_at(at(1, 0, 30))  # the next night: AutoPay does not try again
    assert len(sandbox_intents()) == 2


def test_autopay_customer_gets_no_reminder_until_the_charge_fails(app, ctx, stripe_sandbox, smtp):
    """The runner only ran at 09:00 until day 10, so AutoPay had not charged yet: no reminders for Ana, though
    Cleo (control) got hers. On day 10 at 00:30 AutoPay charges and is declined; from that run on, Ana's
    reminders resume with the latest step due (7), then 14 and 30."""
    manager = make_staff("office", email="manager.late@brightair.test")
    autopay.set_global(True)
    db.session.commit()
    ana = _autopay_customer("ana", DECLINED, manager)
    cleo = billed("cleo")
    people = {"ana": ana, "cleo": cleo}

    got = sweep(app, smtp, people, days=range(-2, 10))
    assert got == {"ana": [], "cleo": [1, 7]}
    assert sandbox_intents() == []

    before = len(reminder_mails(smtp, ana))
    run_jobs_at(at(10, 0, 30))
    assert [pi["status"] for pi in sandbox_intents()] == ["requires_payment_method"]
    arrived = reminder_mails(smtp, ana)[before:]
    assert len(arrived) == 1
    check_reminder(app, arrived[0], ana, days_overdue=10)
    got = sweep(app, smtp, people, days=range(10, 36))
    assert got == {"ana": [14, 30], "cleo": [14, 30]}
    assert rows_of(ana) == [(D, 7), (D, 14), (D, 30)]


def test_enrolled_customer_gets_reminders_while_autopay_is_off_for_the_business(app, ctx, stripe_sandbox, smtp):
    ana = _autopay_customer("ana", GOOD, None)  # enrolled, but the global switch is off (default)
    assert settings.get().autopay_enabled is False
    got = sweep(app, smtp, {"ana": ana}, days=[-1, 0, 1, 2, 7, 14, 30], check=False)
    assert got == {"ana": DEFAULT_DAYS}
    assert sandbox_intents() == []


# --- 6: idempotence -------------------------------------------------------------------------------------------

def test_running_the_job_twice_sends_nothing_twice(app, ctx, smtp):
    who = billed("twice")
    for day in [-1, 0] + DEFAULT_DAYS + [31]:
        seen = len(reminder_mails(smtp, who))
        first = run_jobs_at(at(day))["reminders"]
        again = run_jobs_at(at(day))["reminders"]  # the same instant
        minute_later = run_jobs_at(at(day, 9, 1))["reminders"]
        hour_later = run_jobs_at(at(day, 10))["reminders"]
        expected = 1 if day in DEFAULT_DAYS else 0
        assert (first, again, minute_later, hour_later) == ({"sent": expected}, {"sent": 0}, {"sent": 0},
                                                            {"sent": 0}), day
        assert len(reminder_mails(smtp, who)) == seen + expected, day
    assert rows_of(who) == [(D, 1), (D, 7), (D, 14), (D, 30)]
    assert db.session.scalar(select(func.count()).select_from(InvoiceReminder)) == 4
    assert db.session.scalar(select(func.count()).select_from(QueuedEmail)
                             .where(QueuedEmail.template == "invoice_reminder")) == 4


def test_the_reminder_day_is_the_business_day_not_the_servers(app, ctx, smtp):
    """At 23:30 on the due date in Los Angeles it is already the next day in UTC: still no reminder. Five
    minutes past midnight business time, the day-1 reminder goes."""
    who = billed("tz")
    run_jobs_at(at(0, 23, 30))
    assert reminder_mails(smtp, who) == []
    run_jobs_at(at(1, 0, 5))
    [msg] = reminder_mails(smtp, who)
    check_reminder(app, msg, who, days_overdue=1)


# --- 7: settings ----------------------------------------------------------------------------------------------

def _automations(browser, **fields):
    page = browser.get("/admin/settings/automations")
    assert page.status_code == 200
    data = {"csrf_token": csrf_token_from(page.get_data(True)), **fields}
    return browser.post("/admin/settings/automations", data=data)


BAD_DAYS = [
    ("-1, 7", "Days cannot be negative"),
    ("7, 7", "Each day may appear only once."),
    ("abc", "Enter whole days separated by commas"),
    ("", "Enter at least one day"),
    ("   ", "Enter at least one day"),
    ("0, 7", "Each day must be between 1 and 365 days"),
    ("400", "Each day must be between 1 and 365 days"),
    ("1.5", "Enter whole days separated by commas"),
    ("1,2,3,4,5,6,7,8,9,10,11", "At most 10 reminders."),
]


@pytest.mark.parametrize("raw,message", BAD_DAYS, ids=[repr(r) for r, _ in BAD_DAYS])
def test_bad_reminder_days_on_the_settings_page(app, client, login_staff, raw, message):
    with app.app_context():
        reminders.update(enabled=True, days="2, 5, 9")
        db.session.commit()
        admin = make_staff("admin")
    login_staff(admin)
    r = _automations(client, reminders_enabled="y", reminder_days=raw, autopay_enabled="y")
    assert r.status_code == 400
    page = r.get_data(True)
    assert message in page
    assert "Automation settings saved." not in page
    with app.app_context():
        row = settings.get()
        assert (row.reminders_enabled, row.reminder_days, row.autopay_enabled) == (True, "2,5,9", False)
    assert 'value="2, 5, 9"' in client.get("/admin/settings/automations").get_data(True)


def test_turning_reminders_off_with_the_days_cleared_keeps_the_schedule(app, client, login_staff):
    """The blank-days message says "(or turn reminders off)": doing that saves."""
    with app.app_context():
        reminders.update(enabled=True, days="2, 5, 9")
        db.session.commit()
        admin = make_staff("admin")
    login_staff(admin)
    r = _automations(client, reminder_days="")
    assert r.status_code == 302
    assert "Automation settings saved." in client.get(r.headers["Location"]).get_data(True)
    with app.app_context():
        assert (settings.get().reminders_enabled, settings.get().reminder_days) == (False, "2,5,9")


def test_a_valid_schedule_saved_on_the_page_is_followed(app, ctx, login_staff, smtp):
    client = Browser(app)
    admin = make_staff("admin")
    login_staff(admin, c=client)
    r = _automations(client, reminders_enabled="y", reminder_days=" 10 ,3 ")
    assert r.status_code == 302
    page = client.get(r.headers["Location"]).get_data(True)
    assert "Automation settings saved." in page and 'value="3, 10"' in page
    db.session.expire_all()
    assert (settings.get().reminder_days, settings.get().reminders_enabled) == ("3,10", True)

    who = billed("custom")
    assert sweep(app, smtp, {"custom": who}) == {"custom": [3, 10]}
    assert rows_of(who) == [(D, 3), (D, 10)]


def test_reminders_switched_off_on_the_page_send_none(app, ctx, login_staff, smtp):
    client = Browser(app)
    admin = make_staff("admin")
    login_staff(admin, c=client)
    r = _automations(client, reminder_days="1, 7, 14, 30")  # the box unticked
    assert r.status_code == 302
    db.session.expire_all()
    assert settings.get().reminders_enabled is False
    who = billed("off")
    assert sweep(app, smtp, {"off": who}) == {"off": []}
    assert rows_of(who) == []
    assert next_reminder(who) is None

    # switched back on mid-way: one catch-up reminder (the latest step due), then the schedule
    r = _automations(client, reminders_enabled="y", reminder_days="1, 7, 14, 30")
    assert r.status_code == 302
    db.session.expire_all()
    assert sweep(app, smtp, {"off": who}, days=range(36, 40), check=False) == {"off": [36]}
    assert rows_of(who) == [(D, 30)]


def test_only_admins_may_open_the_automations_page(app, client, login_staff):
    with app.app_context():
        office = make_staff("office")
        customer = make_customer()
    login_staff(office)
    assert client.get("/admin/settings/automations").status_code == 403
    token = csrf_token_from(client.get(f"/admin/customers/{customer.id}").get_data(True))
    r = client.post("/admin/settings/automations", data={"csrf_token": token, "reminder_days": "3"})
    assert r.status_code == 403
    with app.app_context():
        assert settings.get().reminder_days == "1,7,14,30" and settings.get().reminders_enabled is True


# --- 8: outbox and activity feed -------------------------------------------------------------------------------

def test_reminders_are_in_the_outbox_and_on_the_activity_feed(app, ctx, login_staff, smtp):
    client = Browser(app)
    who = billed("feed")
    sweep(app, smtp, {"feed": who}, days=[1, 7], check=False)
    admin = make_staff("admin")
    db.session.commit()
    login_staff(admin, c=client)

    outbox = client.get("/admin/outbox").get_data(True)
    rows = re.findall(r"<tr>\s*<td>.*?</td>\s*<td>(.*?)</td>\s*<td><a href=\"[^\"]+\">(.*?)</a></td>\s*"
                      r"<td><span class=\"status status-(\w+)\">", outbox, re.DOTALL)
    assert [r for r in rows if r[1] == subject_of(who.number)] == [(who.email, subject_of(who.number), "sent")] * 2

    page = client.get(f"/admin/invoices/{who.invoice_id}").get_data(True)
    [line] = re.findall(r"<dd data-reminders>(.*?)</dd>", page)
    assert line == "Mar 21, 2026 (day 1), Mar 27, 2026 (day 7) · next Apr 3, 2026"

    feed = client.get(f"/admin/customers/{who.customer_id}/activity").get_data(True)
    assert feed.count(f"Email: {subject_of(who.number)} → {who.email}") == 2
    assert f"Reminder for invoice {who.number} sent (1 day after the due date)" in feed
    assert f"Reminder for invoice {who.number} sent (7 days after the due date)" in feed
