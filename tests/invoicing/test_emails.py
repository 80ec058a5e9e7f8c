"""N-1, N-2, N-3: every email the business sends, in the customer's language, delivered, listed and logged.

Each email of N-1 is queued by the code that sends it in the app (or, for the two the job runner and the login
page send, by `mailer.queue_email` with the same context) for three customers whose preferred language is
English, Spanish and Russian. Then:

- every email has a subject and both parts; customer emails are in the customer's language: no English text of
  the catalog (any msgid, or the static part of one between its placeholders, whose translation differs) and no
  English sentence of the English rendering is left in the Spanish or Russian one; staff emails are English and
  the same whatever the customer speaks;
- delivered with `mailer.deliver_pending()`, each arrives through the SMTP server with a text/plain and a
  text/html part (and the invoice PDFs where it carries them), is listed in /admin/outbox as sent, and is on the
  customer's activity feed;
- N-3: with SMTP unreachable, the business action still commits, the email waits in the outbox with its error
  and a later delivery run sends it exactly once.
"""
from __future__ import annotations

import html as html_lib
import re
import socket
from datetime import date, timedelta
from pathlib import Path

import pytest
from babel.messages.pofile import read_po
from sqlalchemy import func, select

from portal import clock
from portal.extensions import db
from portal.models import (
    ActivityEvent,
    Card,
    ChargeAttempt,
    Customer,
    Estimate,
    Invoice,
    PlanPayment,
    QueuedEmail,
    StaffUser,
)
from portal.services.billing import invoices
from portal.services.crm import messages
from portal.services.payments import cards, charges, declines, refunds
from portal.services.plans import billing as plan_billing
from portal.services.plans import lifecycle as plan_setup
from portal.services.platform import magic_links, mailer
from portal.services.work import estimates
from tests.factories import make_customer, make_estimate, make_invoice, make_plan, make_staff
from tests.helpers import csrf_token_from

ROOT = Path(__file__).resolve().parents[2]
LANGS = ("en", "es", "ru")
NAMES = {"en": ("Emma", "Stone"), "es": ("Elena", "Ruiz"), "ru": ("Olga", "Petrova")}
MANAGER = "manager.n1@brightair.test"
MESSAGE = "Could you come on Friday morning instead of Thursday?"

# label → template; every email of N-1 (plan_payment_failed is also the dunning "retry failed" email)
CUSTOMER_EMAILS = {
    "portal_invitation": "portal_invitation",
    "portal_new_link": "portal_new_link",
    "invoice_sent": "invoice_sent",
    "invoices_sent (batch)": "invoices_sent",
    "invoices_sent (automatic)": "invoices_sent",
    "invoice_reminder": "invoice_reminder",
    "payment_receipt": "payment_receipt",
    "payment_failed": "payment_failed",
    "plan_payment_failed (retry failed, next retry set)": "plan_payment_failed",
    "plan_payment_failed (retries exhausted)": "plan_payment_failed",
    "refund_receipt": "refund_receipt",
    "card_request": "card_request",
    "estimate_sent": "estimate_sent",
    "plan_sent": "plan_sent",
}
STAFF_EMAILS = {
    "payment_failed_staff": "payment_failed_staff",
    "plan_payment_failed_staff (retry failed)": "plan_payment_failed_staff",
    "plan_payment_failed_staff (retries exhausted)": "plan_payment_failed_staff",
    "message_received": "message_received",
}


def _new_emails(since: int) -> list[QueuedEmail]:
    return list(db.session.scalars(select(QueuedEmail).where(QueuedEmail.id > since).order_by(QueuedEmail.id)))


def _last_id() -> int:
    return db.session.scalar(select(func.coalesce(func.max(QueuedEmail.id), 0)))


def queue_every_email(lang: str, manager_id: int) -> dict:
    """Every N-1 email for one customer speaking `lang`. Returns {"customer": id, "emails": {label: email id},
    "invoices": {name: number}}. Call in an app context with the clock frozen."""
    first, last = NAMES[lang]
    c = make_customer(first, last, email=f"{first}.{last}@example.com".lower(), language=lang,
                      manager_id=manager_id)
    customer = db.session.get(Customer, c.id)
    staff = db.session.get(StaffUser, manager_id)
    emails: dict[str, int] = {}

    def expect(*labels):
        """Run the next action; it queues exactly these emails, in this order."""
        def wrap(action):
            since = _last_id()
            action()
            db.session.commit()
            rows = _new_emails(since)
            templates = {**CUSTOMER_EMAILS, **STAFF_EMAILS}
            assert [r.template for r in rows] == [templates[label] for label in labels], (labels, rows)
            emails.update({label: row.id for label, row in zip(labels, rows)})
        return wrap

    def invoice(cents, **kw):
        return db.session.get(Invoice, make_invoice(c, cents, **kw).id)

    @expect("portal_invitation")
    def _():
        magic_links.send_invitation(customer, staff)

    @expect("portal_new_link")  # what the login page sends when an expired link is used
    def _():
        mailer.queue_email("portal_new_link", customer.primary_email, {"link": magic_links.portal_link(customer)},
                           customer=customer)

    single = invoice(25_000)

    @expect("invoice_sent")
    def _():
        invoices.send(single, staff)
        db.session.commit()

    batch = [invoice(12_000), invoice(8_050)]

    @expect("invoices_sent (batch)")
    def _():
        invoices.send_many(customer, batch, staff)

    auto = invoice(4_500)

    @expect("invoices_sent (automatic)")
    def _():
        invoices.send_many(customer, [auto], None, automatic=True)

    overdue = invoice(9_900, due_date=clock.today() - timedelta(days=7))

    @expect("invoice_reminder")  # what reminders.run() queues, 7 days after the due date
    def _():
        mailer.queue_email("invoice_reminder", customer.primary_email,
                           {"invoice": overdue, "days_overdue": (clock.today() - overdue.due_date).days,
                            "link": magic_links.portal_link(customer, f"/portal/invoices/{overdue.id}"),
                            "subject_args": {"number": overdue.number}}, customer=customer)

    paid_in_cash = invoice(5_000)
    payment = []

    @expect("payment_receipt")
    def _():
        payment.append(charges.record_manual(customer, method="cash", amount_cents=5_000, reference=None,
                                             actor=staff, invoice=paid_in_cash, commit=False))

    @expect("refund_receipt")
    def _():
        refunds.refund(payment[0], 1_000, "Goodwill", staff, token=None)

    autopay_invoice = invoice(7_500)
    card = Card(customer_id=customer.id, stripe_payment_method_id=f"pm_n1_{lang}", brand="visa", last4="4242",
                exp_month=12, exp_year=2030, is_default=True, added_by="customer", created_at=clock.now())
    db.session.add(card)
    db.session.commit()

    @expect("payment_failed", "payment_failed_staff")  # an AutoPay charge declined at the bank
    def _():
        attempt = ChargeAttempt(idempotency_key=f"autopay_{autopay_invoice.id}_1", customer_id=customer.id,
                                card_id=card.id, amount_cents=7_500, currency="USD", status="pending", purpose="autopay",
                                off_session=True, invoice_id=autopay_invoice.id, initiated_by="system",
                                created_at=clock.now())
        db.session.add(attempt)
        db.session.commit()
        assert charges.settle_failed(attempt, "insufficient_funds", "Your card has insufficient funds.")

    plan = make_plan(c, status="active", price_cents=2_500, card_id=card.id,
                     payments=[(date(2026, 2, 1), "failed"), (date(2026, 3, 1), "failed")])
    rows = list(db.session.scalars(select(PlanPayment).where(PlanPayment.plan_id == plan.id)
                                   .order_by(PlanPayment.due_date)))
    plan = rows[0].plan

    @expect("plan_payment_failed (retry failed, next retry set)", "plan_payment_failed_staff (retry failed)")
    def _():
        row = rows[1]
        row.failure_code, row.attempt_count = "insufficient_funds", 2
        row.first_failed_at = clock.now() - timedelta(days=1)
        row.next_retry_at = clock.now() + timedelta(hours=48)
        plan_billing._notify_failure(plan, row, declines.explain("insufficient_funds"), False)

    @expect("plan_payment_failed (retries exhausted)", "plan_payment_failed_staff (retries exhausted)")
    def _():
        row = rows[0]
        row.failure_code, row.attempt_count, row.retries_exhausted, row.next_retry_at = \
            "card_declined", 4, True, None
        plan_billing._notify_failure(plan, row, declines.explain("card_declined"), False)

    @expect("card_request")
    def _():
        cards.request_card_on_file(customer, staff)

    estimate = db.session.get(Estimate, make_estimate(c, status="draft").id)

    @expect("estimate_sent")
    def _():
        estimates.send(estimate, staff)

    offer = make_plan(c, status="draft", price_cents=3_900)

    @expect("plan_sent")
    def _():
        plan_setup.send(db.session.get(type(plan), offer.id), staff)

    @expect("message_received")
    def _():
        messages.send(customer, name=f"{first} {last}", phone=None, body=MESSAGE)
        db.session.commit()

    assert set(emails) == set(CUSTOMER_EMAILS) | set(STAFF_EMAILS)
    return {"customer": c.id, "emails": emails,
            "invoices": [single.number, auto.number, overdue.number] + [i.number for i in batch]}


@pytest.fixture
def every_email(app, frozen_clock):
    """Every N-1 email, queued for an English, a Spanish and a Russian speaking customer."""
    with app.app_context():
        manager = make_staff("office", email=MANAGER, name="Mona Manager")
        made = {lang: queue_every_email(lang, manager.id) for lang in LANGS}
    return {"manager": manager, **made}


# --- reading the emails ----------------------------------------------------------------------------------------

URL = re.compile(r"https?://\S+")


def visible(html: str) -> str:
    """The words a reader sees in the HTML part."""
    html = re.sub(r"(?is)<(style|script)\b.*?</\1>", " ", html)
    return re.sub(r"\s+", " ", html_lib.unescape(re.sub(r"<[^>]+>", " ", html))).strip()


def readable(email: QueuedEmail) -> str:
    """Subject, text part and the HTML part's visible text, without links."""
    return URL.sub(" ", "\n".join([email.subject, email.body_text, visible(email.body_html)]))


def _catalog(lang: str):
    with open(ROOT / f"portal/translations/{lang}/LC_MESSAGES/messages.po", "rb") as f:
        return read_po(f, locale=lang)


PLACEHOLDER = re.compile(r"%\(\w+\)[sd]|%%")
EDGES = " \t\n.,:;!?·—–-“”\"'()«»/"


def english_fragments(lang: str) -> dict[str, str]:
    """Every piece of English text of the customer catalog (a msgid, or its static parts between placeholders)
    that the `lang` translation does not also contain, e.g. "Total" stays "Total" in Spanish. → {piece: msgid}"""
    pieces = {}
    for message in _catalog(lang):
        if not message.id:
            continue
        ids = message.id if isinstance(message.id, tuple) else (message.id,)
        translations = message.string if isinstance(message.string, tuple) else (message.string,)
        translated = " ".join(t or "" for t in translations)
        if message.fuzzy:
            translated = ""  # a fuzzy entry is not compiled: the English shows
        for msgid in ids:
            for piece in PLACEHOLDER.split(msgid):
                piece = piece.strip(EDGES)
                words = re.findall(r"[A-Za-z]+", piece)
                if not words or (len(words) == 1 and len(piece) < 4) or piece in translated:
                    continue
                pieces[piece] = msgid
    return pieces


def found(piece: str, text: str) -> bool:
    return re.search(rf"(?<![\w]){re.escape(piece)}(?![\w])", text) is not None


def english_lines(text: str) -> set[str]:
    """Lines of a text part that are sentences (three words or more once links are dropped)."""
    lines = set()
    for line in text.splitlines():
        line = URL.sub(" ", line).strip()
        if len(re.findall(r"[A-Za-z]{2,}", line)) >= 3:
            lines.add(line)
    return lines


def _emails(made: dict, lang: str, labels) -> dict[str, QueuedEmail]:
    return {label: db.session.get(QueuedEmail, made[lang]["emails"][label]) for label in labels}


# --- 1. Rendering: both parts, the customer's language, nothing left in English --------------------------------

def test_every_email_has_a_subject_and_both_parts_in_the_recipients_language(app, every_email):
    with app.app_context():
        for lang in LANGS:
            customer = db.session.get(Customer, every_email[lang]["customer"])
            for label, email in _emails(every_email, lang, list(CUSTOMER_EMAILS) + list(STAFF_EMAILS)).items():
                where = f"{label} [{lang}]"
                assert email.subject.strip() and email.body_text.strip() and email.body_html.strip(), where
                assert "<html" in email.body_html.lower() and "<html" not in email.body_text.lower(), where
                assert "{{" not in email.body_text + email.body_html and "%(" not in email.subject + email.body_text, \
                    where
                if label in CUSTOMER_EMAILS:
                    assert email.to_address == customer.primary_email and email.language == lang, where
                    assert customer.first_name in email.body_text, where  # greeted by name
                else:
                    assert email.to_address == MANAGER and email.language == "en", where
        # the dunning emails: a failed retry names the next one; the last one says there is none
        english = _emails(every_email, "en", CUSTOMER_EMAILS)
        retry = english["plan_payment_failed (retry failed, next retry set)"].body_text
        exhausted = english["plan_payment_failed (retries exhausted)"].body_text
        assert "We will try again on" in retry and "We will not try this card again" not in retry
        assert "We will not try this card again" in exhausted and "We will try again on" not in exhausted
        assert "Update my card" in retry and "/portal/magic/" in retry
        assert "$25.00" in retry and "Comfort Club" in retry


@pytest.mark.parametrize("lang", ["es", "ru"])
def test_customer_emails_contain_no_english_left_in_spanish_and_russian(app, every_email, lang):
    pieces = english_fragments(lang)
    assert "Hello" in pieces and "Thank you! We received your payment" in pieces
    with app.app_context():
        english = _emails(every_email, "en", CUSTOMER_EMAILS)
        translated = _emails(every_email, lang, CUSTOMER_EMAILS)
        checked = 0
        for label in CUSTOMER_EMAILS:
            en, other = english[label], translated[label]
            en_text, other_text = readable(en), readable(other)
            # the catalog's English text that the English email shows must not show in the translated one
            shown = [p for p in pieces if found(p, en_text)]
            assert len(shown) >= 3, (label, shown)  # the check has something to bite on
            left = sorted(p for p in shown if found(p, other_text))
            assert not left, f"{label} [{lang}]: untranslated {left}"
            # nor any English sentence of the English rendering (text hard-coded outside the catalog)
            lines = english_lines(en.body_text)
            assert lines, label
            same = sorted(lines & {URL.sub(" ", line).strip() for line in other.body_text.splitlines()})
            assert not same, f"{label} [{lang}]: English lines {same}"
            assert other.subject != en.subject and not found("Hello", other_text), label
            checked += len(shown)
        assert checked > 60
        if lang == "ru":  # Cyrillic in every Russian email, in both parts and the subject
            for email in translated.values():
                for part in (email.subject, email.body_text, visible(email.body_html)):
                    assert re.search("[А-Яа-яЁё]", part), email.template
        # samples a reader would notice first
        assert translated["invoice_sent"].body_text.startswith({"es": "Hola Elena:", "ru": "Здравствуйте, Olga,"}[lang])
        reminder = translated["invoice_reminder"].body_text
        assert {"es": "hace 7 días", "ru": "7 дней назад"}[lang] in reminder
        batch = translated["invoices_sent (batch)"]
        assert {"es": "Sus facturas de Bright Air", "ru": "Ваши счета от Bright Air"}[lang] == batch.subject
        assert {"es": "Pagarlas todas de una vez", "ru": "Оплатить все счета сразу"}[lang] in batch.body_text


def test_staff_emails_are_english_whatever_the_customer_speaks(app, every_email):
    def same_shape(email: QueuedEmail, lang: str) -> str:
        first, last = NAMES[lang]
        text = "\n".join([email.subject, email.body_text, visible(email.body_html)])
        text = URL.sub("<link>", text).replace(f"{first} {last}", "<name>").replace(first, "<first>")
        text = re.sub(r"[\w.+-]+@example\.com", "<email>", text)
        return re.sub(r"\bINV-\d+\b", "<invoice>", text)

    with app.app_context():
        english = _emails(every_email, "en", STAFF_EMAILS)
        assert "AutoPay could not charge Emma Stone" in english["payment_failed_staff"].body_text
        assert "The card does not have enough funds for this amount." in english["payment_failed_staff"].body_text
        assert english["plan_payment_failed_staff (retries exhausted)"].body_text.startswith("Retries exhausted")
        assert "Next retry:" in english["plan_payment_failed_staff (retry failed)"].body_text
        assert MESSAGE in english["message_received"].body_text
        for lang in ("es", "ru"):
            for label, email in _emails(every_email, lang, STAFF_EMAILS).items():
                assert same_shape(email, lang) == same_shape(english[label], "en"), f"{label} [{lang}]"
                if lang == "ru":
                    assert not re.search("[А-Яа-яЁё]", same_shape(email, lang)), label


# --- 2. Delivery: SMTP with both parts, the outbox, the activity feed ----------------------------------------

def _outbox_rows(client) -> dict[int, str]:
    """/admin/outbox, every page: email id → its status as listed."""
    rows, page = {}, 1
    while True:
        html = client.get(f"/admin/outbox?page={page}").get_data(True)
        for row in re.findall(r"<tr>(.*?)</tr>", html, re.DOTALL):
            m = re.search(r'href="/admin/outbox/(\d+)"', row)
            if m:
                rows[int(m.group(1))] = re.search(r'class="status status-(\w+)"', row).group(1)
        if "Older →" not in html:
            return rows
        page += 1


def test_every_email_is_delivered_with_both_parts_listed_as_sent_and_on_the_activity_feed(
        app, every_email, smtp, login_staff):
    with app.app_context():
        total = db.session.scalar(select(func.count()).select_from(QueuedEmail))
        assert total == len(LANGS) * (len(CUSTOMER_EMAILS) + len(STAFF_EMAILS))
        assert mailer.deliver_pending() == {"sent": total, "failed": 0, "console": 0}
        assert mailer.deliver_pending() == {"sent": 0, "failed": 0, "console": 0}  # nothing twice
    assert len(smtp.messages) == total

    with app.app_context():
        admin = make_staff("admin")
    staff = login_staff(admin)
    listed = _outbox_rows(staff)
    pool = list(smtp.messages)
    with app.app_context():
        for lang in LANGS:
            customer_id = every_email[lang]["customer"]
            feed = staff.get(f"/admin/customers/{customer_id}/activity?type=email").get_data(True)
            for label, email in _emails(every_email, lang, list(CUSTOMER_EMAILS) + list(STAFF_EMAILS)).items():
                where = f"{label} [{lang}]"
                assert email.status == "sent" and email.sent_at is not None and email.last_error is None, where
                # through SMTP: one message with this subject and text, a text/plain and a text/html part
                matches = [m for m in pool if email.to_address in str(m["To"]) and str(m["Subject"]) == email.subject
                           and smtp.text(m).replace("\r\n", "\n").strip() == email.body_text.strip()]
                assert len(matches) == 1, where
                msg = matches[0]
                pool.remove(msg)
                types = [part.get_content_type() for part in msg.walk() if not part.is_multipart()]
                assert "text/plain" in types and "text/html" in types, (where, types)
                assert visible(smtp.html(msg)) == visible(email.body_html), where
                pdfs = sorted(part.get_filename() for part in msg.iter_attachments())
                if email.template == "invoices_sent":
                    assert pdfs and all(re.fullmatch(r"invoice-INV-\d+\.pdf", p) for p in pdfs), where
                    assert len(pdfs) == (2 if "batch" in label else 1), where
                else:
                    assert pdfs == [], where
                # the admin outbox lists it as sent
                assert listed.get(email.id) == "sent", where
                # the customer's activity feed
                if label == "message_received":  # a staff inbox email: the feed shows the message itself
                    assert db.session.scalar(select(ActivityEvent.id).where(
                        ActivityEvent.customer_id == customer_id,
                        ActivityEvent.summary == f"Message from the portal: {MESSAGE}"))
                    continue
                event = db.session.scalars(select(ActivityEvent).where(ActivityEvent.email_id == email.id)).one()
                assert event.customer_id == customer_id and event.event_type == "email", where
                assert event.summary == f"Email: {email.subject} → {email.to_address}", where
                assert f'href="/admin/outbox/{email.id}"' in feed, where
                assert html_lib.escape(email.subject, quote=False) in feed or email.subject in \
                    html_lib.unescape(feed), where
    assert pool == []  # nothing else was sent
    page = staff.get(f"/admin/outbox/{every_email['es']['emails']['invoices_sent (batch)']}").get_data(True)
    assert re.findall(r"invoice-INV-\d+\.pdf", page)  # the outbox shows the attachments


# --- 3. N-3: SMTP down never loses the email nor rolls back the action ------------------------------------------

def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens once the socket is closed


def test_smtp_unreachable_the_action_commits_the_email_waits_with_its_error_and_is_sent_once_later(
        app, smtp, frozen_clock):
    with app.app_context():
        staff = make_staff("office")
        c = make_customer("Ana", "Diaz", email="ana.diaz@example.com", language="es")
        invoice = make_invoice(c, 25_000, number="INV-9301")

    # Flask-Mail reads MAIL_PORT once, into its state, when the app starts: point both at a closed port
    state = app.extensions["mail"]
    saved = app.config["MAIL_PORT"], state.port
    app.config["MAIL_PORT"] = state.port = _closed_port()
    try:
        with app.app_context():
            invoices.send(db.session.get(Invoice, invoice.id), db.session.get(StaffUser, staff.id))
            db.session.commit()
            assert mailer.deliver_pending() == {"sent": 0, "failed": 1, "console": 0}
            db.session.remove()
        with app.app_context():
            row = db.session.get(Invoice, invoice.id)  # the business action stands
            assert row.status == "open" and row.sent_at is not None
            assert db.session.scalar(select(ActivityEvent.id).where(ActivityEvent.summary == "Invoice INV-9301 sent"))
            [email] = db.session.scalars(select(QueuedEmail)).all()
            assert email.status == "queued" and email.attempts == 1 and email.template == "invoice_sent"
            assert "refused" in email.last_error.lower() or "errno" in email.last_error.lower(), email.last_error
            assert email.subject == "Factura INV-9301 de Bright Air"
            assert email.next_attempt_at > clock.now()
            assert mailer.deliver_pending() == {"sent": 0, "failed": 0, "console": 0}  # not due again yet
    finally:
        app.config["MAIL_PORT"], state.port = saved
    assert smtp.messages == []

    frozen_clock.advance(minutes=app.config["MAIL_RETRY_MINUTES"] + 1)
    with app.app_context():
        assert mailer.deliver_pending() == {"sent": 1, "failed": 0, "console": 0}
        frozen_clock.advance(hours=1)
        assert mailer.deliver_pending() == {"sent": 0, "failed": 0, "console": 0}
        email = db.session.scalars(select(QueuedEmail)).one()
        assert email.status == "sent" and email.attempts == 2 and email.last_error is None
    [msg] = smtp.to("ana.diaz@example.com")
    assert msg["Subject"] == "Factura INV-9301 de Bright Air" and "INV-9301" in smtp.text(msg)


def test_smtp_outage_during_a_staff_batch_send_keeps_the_send_and_the_page_works(app, smtp, frozen_clock,
                                                                                 login_staff):
    """The same through the page: the after-request delivery fails, the staff still see success."""
    with app.app_context():
        staff = make_staff("admin")
        c = make_customer("Ana", "Diaz", email="ana.diaz@example.com")
        a, b = make_invoice(c, 1_000, number="INV-9401"), make_invoice(c, 2_000, number="INV-9402")
    client = login_staff(staff)
    card = client.get(f"/admin/customers/{c.id}").get_data(True)
    state = app.extensions["mail"]
    saved = app.config["MAIL_PORT"], state.port
    app.config["MAIL_PORT"] = state.port = _closed_port()
    try:
        r = client.post(f"/admin/customers/{c.id}/invoices/send",
                        data={"csrf_token": csrf_token_from(card), "invoice_id": [str(a.id), str(b.id)]})
        assert r.status_code == 302
        assert "2 invoices sent to ana.diaz@example.com" in html_lib.unescape(client.get(r.headers["Location"])
                                                                              .get_data(True))
        outbox = client.get("/admin/outbox").get_data(True)
        assert "status-queued" in outbox and "Your invoices from Bright Air" in outbox
    finally:
        app.config["MAIL_PORT"], state.port = saved
    assert smtp.messages == []
    with app.app_context():
        assert {i.status for i in db.session.scalars(select(Invoice))} == {"open"}
        assert all(i.sent_at is not None for i in db.session.scalars(select(Invoice)))
    frozen_clock.advance(minutes=app.config["MAIL_RETRY_MINUTES"] + 1)
    with app.app_context():
        assert mailer.deliver_pending()["sent"] == 1
        assert mailer.deliver_pending()["sent"] == 0
    [msg] = smtp.to("ana.diaz@example.com")
    assert sorted(p.get_filename() for p in msg.iter_attachments()) == ["invoice-INV-9401.pdf",
                                                                       "invoice-INV-9402.pdf"]
