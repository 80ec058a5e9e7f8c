"""The staff client card (C-2, C-4 … C-11): custom fields, internal notes, contact log and tasks, manager
reassignment, archive and delete, "Invoice all unpaid work", the activity feed, role gates and list filters.

Every test drives the pages a staff member uses (POST with the page's CSRF token, then GET what they would see)
and checks the page HTML, the database rows and, where it matters, the emails.
"""
from __future__ import annotations

import html as htmllib
import io
import re
from datetime import date, datetime, timedelta
from types import SimpleNamespace

import pytest
from sqlalchemy import func, select, update

from portal import clock
from portal.extensions import db
from portal.models import (
    ActivityEvent,
    ContactLog,
    ContactTask,
    Customer,
    CustomerNote,
    CustomerPlan,
    CustomFieldDefinition,
    CustomFieldValue,
    Estimate,
    Invoice,
    Job,
    JobLineItem,
    MessageRequest,
    Payment,
    QueuedEmail,
)
from tests.factories import make_card, make_customer, make_estimate, make_invoice, make_job, make_plan, make_staff
from tests.helpers import csrf_token_from, staff_client

# --- helpers -----------------------------------------------------------------------------------------------

@pytest.fixture
def as_staff(app, login_staff):
    """A fresh browser logged in as `user`, carrying a CSRF token for its POSTs."""
    return lambda user: staff_client(app, login_staff, user)


def _post(c, url: str, data: dict | None = None, follow: bool = False):
    return c.post(url, data={"csrf_token": c.csrf, **(data or {})}, follow_redirects=follow)


def _text(r) -> str:
    """The page as a reader sees it (entities decoded: flash messages escape apostrophes)."""
    return htmllib.unescape(r.get_data(True))


def _count(app, model, *where) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(model).where(*where))


def _local(app, dt: datetime) -> str:
    """What a staff member types into a datetime-local box: business-local time (America/Los_Angeles here)."""
    with app.app_context():
        tz = clock.business_tz()
    assert str(tz) != "UTC", "the business time zone must differ from UTC for these tests to mean anything"
    return dt.astimezone(tz).strftime("%Y-%m-%dT%H:%M")


def _listed_ids(html: str) -> set[int]:
    """Customer ids linked from the customer list table."""
    return {int(i) for i in re.findall(r'href="/admin/customers/(\d+)"', html)}


def _facts(html: str) -> dict[str, str]:
    """<dt>label</dt><dd>value</dd> pairs (the read-only custom field block a technician sees)."""
    return {dt.strip(): re.sub(r"\s+", " ", dd).strip()
            for dt, dd in re.findall(r"<dt>(.*?)</dt><dd>(.*?)</dd>", html, re.DOTALL)}


# --- 1. Custom fields (C-4) ----------------------------------------------------------------------------------

FIELDS = [  # label, type, required, choices
    ("Equipment age", "number", False, ""),
    ("Gate code", "text", True, ""),
    ("Tier", "list", False, "Gold\nSilver"),
    ("Systems", "multi_list", False, "Furnace\nAC\nHeat pump"),
    ("Install date", "date", False, ""),
    ("Has pets", "checkbox", False, ""),
]


def test_custom_fields_are_validated_by_type_saved_and_shown(app, as_staff):
    with app.app_context():
        admin = make_staff("admin", name="Ada Admin")
        office = make_staff("office", name="Oscar Office")
        tech = make_staff("technician", name="Tess Tech")
        cid = make_customer("Field", "Tester").id
    a = as_staff(admin)

    for label, kind, required, options in FIELDS:
        data = {"label": label, "field_type": kind, "options": options}
        if required:
            data["required"] = "y"
        r = _post(a, "/admin/settings/fields", data)
        assert r.status_code == 302, r.get_data(True)[-800:]
    # a list without choices is refused on the settings page
    r = _post(a, "/admin/settings/fields", {"label": "Broken list", "field_type": "list", "options": ""})
    assert r.status_code == 400 and "Enter the choices, one per line." in r.get_data(True)

    with app.app_context():
        defs = {d.label: d for d in db.session.scalars(select(CustomFieldDefinition))}
    assert set(defs) == {f[0] for f in FIELDS}
    assert defs["Gate code"].required and not defs["Equipment age"].required
    assert defs["Tier"].options == "Gold\nSilver" and defs["Equipment age"].options is None
    settings_page = a.get("/admin/settings/fields").get_data(True)
    assert "Gold, Silver" in settings_page and "Multi-list (several choices)" in settings_page

    key = {label: f"cf_{d.id}" for label, d in defs.items()}
    good = {key["Equipment age"]: "1,250.50", key["Gate code"]: "#4512", key["Tier"]: "Gold",
            key["Systems"]: ["AC", "Furnace"], key["Install date"]: "2024-05-01", key["Has pets"]: "1"}
    card = f"/admin/customers/{cid}"

    bad_inputs = [
        ("Equipment age", "abc", "Equipment age: enter a number, like 12 or 3.5."),
        ("Gate code", "", "Gate code is required."),
        ("Gate code", "   ", "Gate code is required."),
        ("Tier", "Bronze", "Tier: “Bronze” is not one of the choices."),
        ("Install date", "31/12/2026", "Install date: enter a date as YYYY-MM-DD."),
        ("Systems", ["AC", "Solar"], "Systems: “Solar” is not one of the choices."),
    ]
    for label, value, message in bad_inputs:
        r = _post(a, card + "/fields", {**good, key[label]: value}, follow=True)
        assert r.status_code == 200
        html = r.get_data(True)
        assert message in html, (label, value)
        assert 'class="flash error"' in html
        assert _count(app, CustomFieldValue) == 0, f"{label}={value!r} saved something"

    r = _post(a, card + "/fields", good, follow=True)
    assert "Fields saved." in r.get_data(True)
    with app.app_context():
        stored = {row.field_id: row.value for row in db.session.scalars(select(CustomFieldValue))}
    assert stored == {defs["Equipment age"].id: "1250.5", defs["Gate code"].id: "#4512", defs["Tier"].id: "Gold",
                      defs["Systems"].id: "Furnace\nAC", defs["Install date"].id: "2024-05-01",
                      defs["Has pets"].id: "1"}

    # the admin sees them in the edit form…
    html = a.get(card).get_data(True)
    assert f'id="{key["Equipment age"]}" name="{key["Equipment age"]}" value="1250.5"' in html
    assert f'id="{key["Gate code"]}" name="{key["Gate code"]}" value="#4512"' in html
    assert "<option selected>Gold</option>" in html and "<option >Silver</option>" in html
    assert f'name="{key["Systems"]}" value="AC" checked' in html
    assert f'name="{key["Systems"]}" value="Heat pump" >' in html
    assert f'name="{key["Has pets"]}" value="1" checked' in html
    # …and a technician (read-only) sees the values as text
    t = as_staff(tech)
    facts = _facts(t.get(card).get_data(True))
    assert facts["Equipment age"] == "1250.5" and facts["Gate code"] == "#4512" and facts["Tier"] == "Gold"
    assert facts["Systems"] == "Furnace, AC" and facts["Install date"] == "2024-05-01" and facts["Has pets"] == "Yes"
    # a technician cannot change them
    assert _post(t, card + "/fields", {**good, key["Tier"]: "Silver"}).status_code == 403

    # saving the same values again changes nothing
    assert "Nothing changed." in _post(a, card + "/fields", good, follow=True).get_data(True)

    # office staff cannot open the field settings
    o = as_staff(office)
    assert o.get("/admin/settings/fields").status_code == 403
    assert _post(o, "/admin/settings/fields", {"label": "Sneaky", "field_type": "text"}).status_code == 403
    edit = f"/admin/settings/fields/{defs['Equipment age'].id}"
    assert o.get(edit).status_code == 403
    assert _post(o, edit, {"label": "Renamed by office", "active": "y"}).status_code == 403
    assert _count(app, CustomFieldDefinition) == len(FIELDS)


def _browser_form(page: str, marker: str) -> dict:
    """What a browser submits for the <form> whose opening tag contains `marker`: hidden and text inputs,
    checked checkboxes, textareas, selected options."""
    form = re.search(r"<form[^>]*" + re.escape(marker) + r"[^>]*>.*?</form>", page, re.DOTALL).group(0)
    data: dict = {}
    for tag in re.findall(r"<input[^>]*>", form):
        name = re.search(r'name="([^"]+)"', tag)
        if not name:
            continue
        kind = (re.search(r'type="([^"]+)"', tag) or [None, "text"])[1]
        value = htmllib.unescape((re.search(r'value="([^"]*)"', tag) or [None, ""])[1])
        if kind == "checkbox" and "checked" not in tag:
            continue
        data[name.group(1)] = value or ("y" if kind == "checkbox" else "")
    for name, body in re.findall(r'<textarea[^>]*name="([^"]+)"[^>]*>(.*?)</textarea>', form, re.DOTALL):
        data[name] = htmllib.unescape(body).lstrip("\n")
    for name, options in re.findall(r'<select[^>]*name="([^"]+)"[^>]*>(.*?)</select>', form, re.DOTALL):
        chosen = re.search(r'<option[^>]*value="([^"]*)"[^>]*selected', options)
        data[name] = chosen.group(1) if chosen else ""
    return data


# Regression: the edit page does not send `field_type`; saving it once answered 400 with no message (the view
# validated the whole add-field form). Posting exactly what the page's form sends keeps that covered.
def test_renaming_a_field_keeps_its_values_under_the_new_label(app, as_staff):
    with app.app_context():
        admin = make_staff("admin")
        tech = make_staff("technician")
        cid = make_customer("Rena", "Ming").id
    a, t = as_staff(admin), as_staff(tech)
    assert _post(a, "/admin/settings/fields", {"label": "Equipment age", "field_type": "number"}).status_code == 302
    with app.app_context():
        field_id = db.session.scalar(select(CustomFieldDefinition.id))
    card = f"/admin/customers/{cid}"
    assert "Fields saved." in _post(a, card + "/fields", {f"cf_{field_id}": "12"}, follow=True).get_data(True)
    assert _facts(t.get(card).get_data(True)).get("Equipment age") == "12"

    edit = f"/admin/settings/fields/{field_id}"
    page = a.get(edit).get_data(True)
    data = _browser_form(page, 'class="card narrow"')  # exactly what the page's form sends
    assert data["label"] == "Equipment age" and data.get("active") == "y"
    data["label"] = "Furnace age (years)"
    r = a.post(edit, data=data)
    assert r.status_code == 302, f"saving the edit form answered {r.status_code}; it sent {sorted(data)}"
    assert "Field saved; values on client cards are kept." in _text(a.get(r.headers["Location"]))

    facts = _facts(t.get(card).get_data(True))
    assert facts.get("Furnace age (years)") == "12" and "Equipment age" not in facts
    assert f'<label for="cf_{field_id}">Furnace age (years)</label>' in a.get(card).get_data(True)
    with app.app_context():
        assert db.session.scalar(select(CustomFieldValue.value).where(CustomFieldValue.field_id == field_id)) == "12"


# --- 2. Internal notes stay internal (C-5) ---------------------------------------------------------------

NOTE_MARKER = "QZX-internal-note-7731"
CONTACT_MARKER = "QZX-contact-outcome-4410"
TASK_MARKER = "QZX-task-note-9052"
MARKERS = (NOTE_MARKER, CONTACT_MARKER, TASK_MARKER)
STAFF_TEMPLATES = {"message_received", "estimate_answered", "staff_invitation", "plan_payment_failed_staff",
                   "card_changed_staff", "payment_failed_staff",
                   "payment_disputed_staff"}


def _pdf_text(data: bytes) -> str:
    from pypdf import PdfReader

    return "\n".join(page.extract_text() or "" for page in PdfReader(io.BytesIO(data)).pages)


def _email_contexts(ids: dict, link: str) -> dict:
    """A context that renders each customer email template (read off portal/templates/email/)."""
    from portal.services.payments import declines

    invoice, estimate = db.session.get(Invoice, ids["invoice"]), db.session.get(Estimate, ids["estimate"])
    payment = db.session.get(Payment, ids["payment"])
    message = db.session.get(MessageRequest, ids["message"])
    plan = db.session.get(CustomerPlan, ids["plan"])
    return {
        "portal_invitation": {"link": link},
        "portal_login_link": {"link": link},
        "portal_new_link": {"link": link},
        "card_request": {"link": link},
        "payment_receipt": {"payment": payment, "invoice": invoice, "link": link},
        "payment_failed": {"amount_cents": 1999, "currency": "USD", "card": None, "invoice": invoice,
                           "explanation": declines.explain("insufficient_funds"), "link": link},
        "refund_receipt": {"refund": SimpleNamespace(amount_cents=1000, reason="Goodwill"), "payment": payment,
                           "link": link},
        "invoice_sent": {"invoice": invoice, "link": link, "subject_args": {"number": invoice.number}},
        "message_reply": {"message": message, "reply": "We can come at 8.", "staff_name": "Ada Admin",
                          "link": link},
        "estimate_sent": {"estimate": estimate, "link": link, "subject_args": {"number": estimate.number}},
        "plan_sent": {"plan": plan, "link": link, "subject_args": {"plan": plan.name}},
        "plan_payment_failed": {"plan": plan, "row": plan.payments[0], "card": None, "hard": False, "link": link,
                                "explanation": declines.explain("expired_card"), "subject_args": {"plan": plan.name}},
        "card_expiring": {"card": SimpleNamespace(label="Visa •••• 4242"), "expires": date(2026, 12, 31),
                          "link": link},
        "invoices_sent": {"items": [(invoice, link)], "automatic": False, "total_cents": invoice.balance_cents,
                          "currency": invoice.currency, "pay_all_link": link},
        "invoice_reminder": {"invoice": invoice, "days_overdue": 3, "link": link,
                             "subject_args": {"number": invoice.number}},
    }


def test_internal_notes_never_reach_the_portal_or_customer_emails(app, as_staff, login_customer, smtp):
    from portal.services.crm import messages
    from portal.services.payments import charges
    from portal.services.platform import mailer

    with app.app_context():
        admin = make_staff("admin", name="Ada Admin")
        cust = make_customer("Nora", "Private", email="nora.private@example.com")
        invoice = make_invoice(cust, total_cents=30_000)
        estimate = make_estimate(cust)  # sent
        job = make_job(cust, "Furnace repair", visit_in_days=3)
        plan = make_plan(cust, payments=[(date(2026, 2, 1), "paid")])
        payment = charges.record_manual(db.session.get(Customer, cust.id), method="cash", amount_cents=5_000,
                                        reference=None, actor=admin, invoice=db.session.get(Invoice, invoice.id))
        message = messages.send(db.session.get(Customer, cust.id), name="Nora", phone=None,
                                body="Could you come earlier in the day?")
        db.session.commit()
        ids = {"customer": cust.id, "invoice": invoice.id, "estimate": estimate.id, "job": job.id,
               "visit": job.visits[0].id, "plan": plan.id, "payment": payment.id, "message": message.id}
    a = as_staff(admin)
    card = f"/admin/customers/{cust.id}"
    assert "Note added." in _post(a, card + "/notes", {"body": f"Alarm code is {NOTE_MARKER}"}, follow=True) \
        .get_data(True)
    _post(a, card + "/contacts", {"channel": "call", "outcome": f"Said {CONTACT_MARKER}"})
    _post(a, card + "/task", {"due_at": _local(app, clock.now() + timedelta(days=2)), "note": TASK_MARKER})
    assert _count(app, CustomerNote) == 1 and _count(app, ContactLog) == 1 and _count(app, ContactTask) == 1

    # staff see it: pinned on the card, and in the activity feed as a note by its author
    html = a.get(card).get_data(True)
    pinned = re.search(r'<p class="banner pinned" id="pinned-note">(.*?)</p>', html, re.DOTALL)
    assert pinned and NOTE_MARKER in pinned.group(1) and "Ada Admin" in pinned.group(1)
    feed = a.get(card + "/activity").get_data(True)
    assert re.search(r'<li data-type="note">[^\n]*Internal note by Ada Admin: Alarm code is ' + NOTE_MARKER, feed)
    assert "Ada Admin" in re.search(r'<li data-type="note">.*?</li>', feed, re.DOTALL).group(0)

    # staff send the customer the usual emails (these go out over SMTP)
    _post(a, f"/admin/invoices/{ids['invoice']}/send")
    _post(a, f"/admin/estimates/{ids['estimate']}/send")
    _post(a, card + "/portal-invitation")
    _post(a, card + "/card-request")
    r = _post(a, f"/admin/messages/{ids['message']}/reply", {"body": "Yes, 8 am works."})
    assert r.status_code == 302

    # the customer walks every portal page
    p = app.test_client()
    login_customer(cust, c=p)
    args = {"invoice_id": ids["invoice"], "estimate_id": ids["estimate"], "visit_id": ids["visit"],
            "plan_id": ids["plan"], "payment_id": ids["payment"]}
    rules = sorted((r for r in app.url_map.iter_rules()
                    if r.endpoint.startswith("portal.") and "GET" in r.methods and r.endpoint != "portal.auth.magic"),
                   key=lambda r: (r.endpoint.startswith("portal.auth."), r.endpoint))
    assert len(rules) >= 15
    seen: dict[str, object] = {}
    with app.test_request_context():
        from flask import url_for
        urls = []
        for rule in rules:
            missing = set(rule.arguments) - set(args)
            assert not missing, f"{rule.endpoint}: the walk does not know {missing}; add the customer's object"
            urls.append((rule.endpoint, url_for(rule.endpoint, **{k: args[k] for k in rule.arguments})))
    for endpoint, url in urls:
        r = p.get(url)
        assert r.status_code < 500, (url, r.status_code)
        body = r.get_data()
        text = body.decode("utf-8", "replace")
        if r.mimetype == "application/pdf":
            text += _pdf_text(body)
        for marker in MARKERS:
            assert marker.encode() not in body and marker not in text, f"{marker} leaked on {url}"
        seen[endpoint] = (r.status_code, r.mimetype, text)
    # the walk saw the customer's real pages, not login redirects
    for endpoint, needle in [("portal.home.index", "Nora"), ("portal.invoices.detail", invoice.number),
                             ("portal.invoices.invoice_pdf", invoice.number),
                             ("portal.estimates.detail", estimate.number),
                             ("portal.appointments.index", "Furnace repair"),
                             ("portal.appointments.ics", "Furnace repair"), ("portal.plans.detail", "Comfort Club"),
                             ("portal.invoices.receipt", "$50.00"), ("portal.invoices.receipt_pdf", "50.00"),
                             ("portal.messages.index", "Could you come earlier")]:
        status, _, text = seen[endpoint]
        assert status == 200 and needle in text, (endpoint, status)
    assert seen["portal.invoices.invoice_pdf"][1] == "application/pdf"

    # every customer email template, rendered for this customer, carries none of it
    customer_templates = set(mailer.SUBJECTS) - STAFF_TEMPLATES
    with app.app_context():
        customer = db.session.get(Customer, cust.id)
        contexts = _email_contexts(ids, "http://portal.test/portal/magic/abc")
        assert set(contexts) == customer_templates, "a customer email template is not covered here"
        for name in sorted(customer_templates):
            email = mailer.queue_email(name, customer.primary_email, contexts[name], customer=customer)
            assert email.body_text.strip() and email.body_html.strip()
            for marker in MARKERS:
                assert marker not in email.subject and marker not in email.body_text \
                    and marker not in email.body_html, f"{marker} in the {name} email"
        db.session.rollback()
        # the emails the staff actions really queued for the customer
        sent = db.session.scalars(select(QueuedEmail).where(QueuedEmail.to_address == customer.primary_email)).all()
        assert {"invoice_sent", "estimate_sent", "portal_invitation", "card_request", "message_reply",
                "payment_receipt"} <= {e.template for e in sent}
        for e in sent:
            for marker in MARKERS:
                assert marker not in (e.subject + e.body_text + e.body_html), f"{marker} in {e.template}"
    delivered = smtp.to("nora.private@example.com")
    assert len(delivered) >= 5
    for msg in delivered:
        for marker in MARKERS:
            assert marker not in str(msg["Subject"]) and marker not in smtp.text(msg) and marker not in smtp.html(msg)


# --- 3. Invoice all unpaid work (C-8) ---------------------------------------------------------------------

def _finished_job(customer, title, lines, days_ago):
    job = make_job(customer, title, visit_in_days=-days_ago, status="finished")
    row = db.session.get(Job, job.id)
    row.finished_at = clock.now() - timedelta(days=days_ago)
    row.line_items.clear()
    for i, (description, qty, cents) in enumerate(lines):
        row.line_items.append(JobLineItem(description=description, quantity=qty, unit_price_cents=cents, position=i))
    db.session.commit()
    return job.id


def test_invoice_all_unpaid_work_bills_each_finished_uninvoiced_job_once(app, as_staff):
    with app.app_context():
        admin = make_staff("admin")
        cust = make_customer("Ivan", "Billing")
        other = make_customer("Olga", "Other")
        j1 = _finished_job(cust, "Furnace repair", [("Labor", 2, 9_500), ("Igniter", 1, 4_250)], 5)
        j2 = _finished_job(cust, "Duct sealing", [("Duct sealing", 1, 32_000)], 3)
        j3 = make_job(cust, "AC tune-up", visit_in_days=4).id  # scheduled: not billable
        j4 = _finished_job(cust, "Thermostat install", [("Thermostat", 1, 18_900)], 8)
        other_job = _finished_job(other, "Other's job", [("Other", 1, 7_000)], 2)
    a = as_staff(admin)
    card = f"/admin/customers/{cust.id}"

    # j4 goes on its own invoice through the job page's "Invoice this job" button
    r = _post(a, f"/admin/jobs/{j4}/invoice")
    assert r.status_code == 302 and "/admin/invoices/" in r.headers["Location"]
    j4_invoice = int(r.headers["Location"].rsplit("/", 1)[1])
    assert _count(app, Invoice) == 1

    assert "Invoice all unpaid work (2 jobs)" in a.get(card).get_data(True)
    r = _post(a, card + "/invoice-unpaid-work")
    assert r.status_code == 302
    new_id = int(r.headers["Location"].rsplit("/", 1)[1])
    page = a.get(r.headers["Location"]).get_data(True)
    assert "created for all finished, un-invoiced work" in page
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Invoice)) == 2
        inv = db.session.get(Invoice, new_id)
        assert inv.customer_id == cust.id and inv.status == "draft"
        assert {j.id for j in inv.jobs} == {j1, j2}
        assert inv.total_cents == 2 * 9_500 + 4_250 + 32_000 == sum(li.amount_cents for li in inv.line_items)
        assert len(inv.line_items) == 3
        assert db.session.get(Job, j3).status == "scheduled"
        assert {j.id for j in db.session.get(Invoice, j4_invoice).jobs} == {j4}
    assert "$552.50" in page  # 2 × 95.00 + 42.50 + 320.00, no discount or tax
    assert "No finished, un-invoiced work." in a.get(card).get_data(True)

    # a second click finds nothing left
    r = _post(a, card + "/invoice-unpaid-work", follow=True)
    assert "There is no finished, un-invoiced work" in r.get_data(True)
    assert _count(app, Invoice) == 2

    # voiding j4's invoice puts j4 back in the un-invoiced pile
    r = _post(a, f"/admin/invoices/{j4_invoice}/void", {"reason": "Wrong thermostat model"}, follow=True)
    assert "voided" in r.get_data(True)
    assert "Invoice all unpaid work (1 job)" in a.get(card).get_data(True)
    r = _post(a, card + "/invoice-unpaid-work")
    assert r.status_code == 302 and "/admin/invoices/" in r.headers["Location"]
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Invoice)) == 3
        again = db.session.get(Invoice, int(r.headers["Location"].rsplit("/", 1)[1]))
        assert {j.id for j in again.jobs} == {j4} and again.total_cents == 18_900
        assert other_job not in {j.id for i in db.session.scalars(select(Invoice)) for j in i.jobs}


# --- 4. Archive and delete (C-2) --------------------------------------------------------------------------

def test_archive_hides_from_the_list_keeps_history_and_restores(app, as_staff):
    from portal.services.payments import charges

    with app.app_context():
        admin = make_staff("admin", name="Ada Admin")
        cust = make_customer("Archie", "Vedder")
        invoice = make_invoice(cust, total_cents=20_000)
        charges.record_manual(db.session.get(Customer, cust.id), method="check", amount_cents=20_000,
                              reference="1042", actor=admin, invoice=db.session.get(Invoice, invoice.id))
    a = as_staff(admin)
    card = f"/admin/customers/{cust.id}"
    _post(a, card + "/notes", {"body": "Keep this note"})
    before = {m: _count(app, m, m.customer_id == cust.id) for m in (Payment, Invoice, ActivityEvent, CustomerNote)}
    assert before[Payment] == 1 and before[Invoice] == 1 and before[ActivityEvent] >= 2

    assert cust.id in _listed_ids(a.get("/admin/customers").get_data(True))
    r = _post(a, card + "/archive", follow=True)
    assert "Customer archived" in r.get_data(True)
    with app.app_context():
        row = db.session.get(Customer, cust.id)
        assert row.status == "archived" and row.archived_at is not None
    for model, n in before.items():
        assert _count(app, model, model.customer_id == cust.id) >= n, model.__name__
    assert _count(app, ActivityEvent, ActivityEvent.customer_id == cust.id,
                  ActivityEvent.summary.like("Archived by Ada Admin%")) == 1
    assert cust.id not in _listed_ids(a.get("/admin/customers").get_data(True))
    assert cust.id not in _listed_ids(a.get("/admin/customers?q=Vedder").get_data(True))
    assert cust.id in _listed_ids(a.get("/admin/customers?status=archived").get_data(True))
    html = a.get(card).get_data(True)
    assert "hidden from lists; every record is kept" in html and "Restore from archive" in html

    r = _post(a, card + "/archive", {"restore": "1"}, follow=True)
    assert "Customer restored." in r.get_data(True)
    with app.app_context():
        row = db.session.get(Customer, cust.id)
        assert row.status == "inactive" and row.archived_at is None
    assert cust.id in _listed_ids(a.get("/admin/customers").get_data(True))
    assert cust.id not in _listed_ids(a.get("/admin/customers?status=archived").get_data(True))


def test_hard_delete_only_without_financial_records_by_an_admin_who_types_the_name(app, as_staff):
    from portal.services.payments import charges

    with app.app_context():
        admin = make_staff("admin")
        office = make_staff("office")
        paid = make_customer("Paula", "Payer")
        charges.record_manual(db.session.get(Customer, paid.id), method="cash", amount_cents=4_000, reference=None,
                              actor=admin)
        clean = make_customer("Carl", "Clean")
    a, o = as_staff(admin), as_staff(office)

    # a customer with a payment cannot be deleted: not offered, and refused when posted anyway
    html = a.get(f"/admin/customers/{paid.id}").get_data(True)
    assert "Delete for good" not in html and "archive instead of deleting" in html
    r = _post(a, f"/admin/customers/{paid.id}/delete", {"confirm_name": "Paula Payer"}, follow=True)
    assert "cannot be deleted" in r.get_data(True)
    assert _count(app, Customer, Customer.id == paid.id) == 1
    assert _count(app, Payment, Payment.customer_id == paid.id) == 1

    # a clean customer with notes, a contact, a task and a scheduled job
    card = f"/admin/customers/{clean.id}"
    _post(a, card + "/notes", {"body": "Wants a quote"})
    _post(a, card + "/contacts", {"channel": "email", "outcome": "Sent brochure"})
    _post(a, card + "/task", {"due_at": _local(app, clock.now() + timedelta(days=1))})
    with app.app_context():
        make_job(db.session.get(Customer, clean.id), "Quote visit")
    assert "Delete for good" in a.get(card).get_data(True)

    # office staff may not delete
    assert _post(o, card + "/delete", {"confirm_name": "Carl Clean"}).status_code == 403
    assert _count(app, Customer, Customer.id == clean.id) == 1
    # a wrong name deletes nothing
    r = _post(a, card + "/delete", {"confirm_name": "Carl Klean"}, follow=True)
    assert "Type “Carl Clean” to confirm the deletion." in r.get_data(True)
    assert _count(app, Customer, Customer.id == clean.id) == 1
    assert _count(app, CustomerNote, CustomerNote.customer_id == clean.id) == 1

    # the right name (spacing and case do not matter) deletes the customer and everything of theirs
    r = _post(a, card + "/delete", {"confirm_name": "  carl   CLEAN "})
    assert r.status_code == 302 and r.headers["Location"].endswith("/admin/customers")
    assert "Carl Clean deleted." in a.get(r.headers["Location"]).get_data(True)
    assert _count(app, Customer, Customer.id == clean.id) == 0
    for model in (CustomerNote, ContactLog, ContactTask, Job, ActivityEvent):
        assert _count(app, model, model.customer_id == clean.id) == 0, model.__name__
    assert a.get(card).status_code == 404
    assert _count(app, Customer, Customer.id == paid.id) == 1


# --- 5. Next-contact task, dashboard and reassignment (C-7, C-10) -----------------------------------------

def _overdue_on_dashboard(c, customer_id) -> bool:
    html = c.get("/admin/").get_data(True)
    return bool(re.search(rf'<li class="overdue" data-overdue-task="{customer_id}">', html))


def test_overdue_task_follows_the_manager_on_the_dashboard(app, as_staff, frozen_clock):
    with app.app_context():
        m1 = make_staff("office", name="Mona First")
        m2 = make_staff("office", name="Mark Second")
        cust = make_customer("Tasha", "Followup", manager_id=m1.id)
    c1, c2 = as_staff(m1), as_staff(m2)
    card = f"/admin/customers/{cust.id}"

    due = frozen_clock.now() + timedelta(hours=1)
    r = _post(c1, card + "/task", {"due_at": _local(app, due), "note": "Call about the estimate"}, follow=True)
    assert "Next contact scheduled." in r.get_data(True)
    with app.app_context():
        task = db.session.scalars(select(ContactTask)).one()
        assert task.assignee_id == m1.id and task.done_at is None
        assert task.due_at == due.replace(second=0, microsecond=0)
    # not overdue yet
    assert not _overdue_on_dashboard(c1, cust.id)
    html = c1.get(card).get_data(True)
    assert 'id="task-banner"' in html and "data-overdue" not in html

    frozen_clock.advance(hours=2)
    assert _overdue_on_dashboard(c1, cust.id)
    assert "1 overdue contact task for you." in c1.get("/admin/").get_data(True)
    assert not _overdue_on_dashboard(c2, cust.id)
    html = c1.get(card).get_data(True)
    banner = re.search(r'<p class="banner danger" id="task-banner" data-overdue>(.*?)</p>', html, re.DOTALL)
    assert banner and "Overdue: " in banner.group(1) and "Mona First" in banner.group(1)

    r = _post(c1, card + "/manager", {"manager_id": str(m2.id)}, follow=True)
    assert "Manager changed." in r.get_data(True)
    with app.app_context():
        assert db.session.get(Customer, cust.id).manager_id == m2.id
        assert db.session.scalars(select(ContactTask)).one().assignee_id == m2.id
    assert _count(app, ActivityEvent, ActivityEvent.summary.like("Manager changed from Mona First to Mark Second%")) == 1
    assert _overdue_on_dashboard(c2, cust.id)
    assert not _overdue_on_dashboard(c1, cust.id)
    assert f'href="/admin/customers/{cust.id}"' in c2.get("/admin/").get_data(True)  # "My customers"

    # a task in the past is refused; the open task is untouched
    r = _post(c2, card + "/task", {"due_at": _local(app, frozen_clock.now() - timedelta(hours=1)), "note": "Too late"},
              follow=True)
    assert "The task's date is in the past; choose a future date and time." in _text(r)
    assert _count(app, ContactTask) == 1
    assert _count(app, ContactTask, ContactTask.note == "Too late") == 0


# --- 6. Activity feed (C-9) -------------------------------------------------------------------------------

def _feed_items(html: str) -> list[tuple[str, str, str]]:
    """(data-type, ISO timestamp, whole <li>) in page order."""
    return [(t, ts, li) for li, t, ts in
            [(m.group(0), m.group(1), m.group(2)) for m in
             re.finditer(r'<li data-type="([a-z]+)"><time datetime="([^"]+)">.*?</li>', html, re.DOTALL)]]


def test_activity_feed_newest_first_by_type_with_actors_and_pages(app, as_staff, frozen_clock):
    from portal import demo
    from portal.services.crm import records

    with app.app_context():
        demo.seed()
        db.session.commit()
        maria = demo.demo_customer()
        cid = maria.id
        admin = make_staff("admin", name="Ada Admin")
    a = as_staff(admin)
    card = f"/admin/customers/{cid}"
    # a few staff actions over time, on top of the seeded "created" and "failure" events
    _post(a, card + "/notes", {"body": "Prefers mornings"})
    frozen_clock.advance(minutes=10)
    _post(a, card + "/contacts", {"channel": "call", "outcome": "Confirmed"})
    frozen_clock.advance(minutes=10)
    html = a.get(f"/admin/customers/{cid}/payments/new").get_data(True)
    r = a.post(f"/admin/customers/{cid}/payments/new", data={
        "csrf_token": csrf_token_from(html), "method": "cash", "amount": "25.00", "reference": "", "invoice_id": "",
        "token": re.search(r'name="token" type="hidden" value="([^"]+)"', html).group(1)})
    assert r.status_code == 302, r.get_data(True)[-500:]
    frozen_clock.advance(minutes=10)
    _post(a, card + "/notes", {"body": "Latest word"})

    with app.app_context():
        db_events = db.session.scalars(select(ActivityEvent).where(ActivityEvent.customer_id == cid)
                                       .order_by(ActivityEvent.created_at.desc(), ActivityEvent.id.desc())).all()
        expected = [(e.event_type, e.created_at.isoformat(), e.actor.name if e.actor else e.actor_kind)
                    for e in db_events]
    assert len(expected) >= 5
    assert {"customer", "failure", "note", "contact", "payment"} <= {t for t, _, _ in expected}

    html = a.get(card + "/activity").get_data(True)
    items = _feed_items(html)
    assert [(t, ts) for t, ts, _ in items] == [(t, ts) for t, ts, _ in expected]
    stamps = [datetime.fromisoformat(ts) for _, ts, _ in items]
    assert stamps == sorted(stamps, reverse=True)
    assert items[0][0] == "note" and "Latest word" in items[0][2]
    for (_, _, li), (_, _, actor) in zip(items, expected):
        assert f"— {actor}" in li
    assert any("— system" in li for _, _, li in items) and any("— Ada Admin" in li for _, _, li in items)
    assert f"{len(expected)} events." in html

    # filter by type
    html = a.get(card + "/activity?type=payment").get_data(True)
    items = _feed_items(html)
    n_payments = sum(1 for t, _, _ in expected if t == "payment")
    assert n_payments >= 1 and len(items) == n_payments
    assert {t for t, _, _ in items} == {"payment"}
    assert "Cash payment $25.00" in html and "Prefers mornings" not in html
    assert 'aria-current="page">Payment</a>' in html
    assert _feed_items(a.get(card + "/activity?type=refund").get_data(True)) == []
    # an unknown type shows everything
    assert len(_feed_items(a.get(card + "/activity?type=bogus").get_data(True))) == len(expected)

    # more than 50 events: pages
    with app.app_context():
        staff = db.session.get(type(admin), admin.id)
        customer = db.session.get(Customer, cid)
        for i in range(60):
            records.add_note(customer, staff, f"Bulk note {i:02d}")
        db.session.commit()
    total = len(expected) + 60
    page1 = a.get(card + "/activity").get_data(True)
    assert len(_feed_items(page1)) == 50
    assert "Page 1 of 2" in page1 and "Older →" in page1 and "← Newer" not in page1
    page2 = a.get(card + "/activity?page=2").get_data(True)
    items2 = _feed_items(page2)
    assert len(items2) == total - 50 and "Page 2 of 2" in page2 and "← Newer" in page2
    assert [ts for _, ts, _ in items2][-1] == expected[-1][1]  # the oldest event ends the last page
    # a page out of range shows the last one instead of an error
    assert a.get(card + "/activity?page=99").status_code == 200
    notes_only = a.get(card + "/activity?type=note&page=2").get_data(True)
    assert {t for t, _, _ in _feed_items(notes_only)} == {"note"}


# --- 7. Role gates ------------------------------------------------------------------------------------------

def test_role_gates_for_technicians_and_office_staff(app, as_staff, frozen_clock):
    # 17:00 UTC on 2 March 2026 is 09:00 in Los Angeles: a visit ~2.4 h later is still today, business time
    with app.app_context():
        assert clock.local_now().date() == date(2026, 3, 2) and clock.local_now().hour == 9
        tech = make_staff("technician", name="Tina Tech")
        other_tech = make_staff("technician", name="Otto Tech")
        office = make_staff("office")
        cust = make_customer("Gina", "Gates")
        mine = make_job(cust, "Heat pump repair", visit_in_days=0.1, technician=tech)
        theirs = make_job(cust, "Boiler check", visit_in_days=0.2, technician=other_tech)
        tomorrow = make_job(cust, "Filter swap", visit_in_days=1, technician=tech)
        assert clock.to_local(mine.visits[0].starts_at).date() == clock.today()
    t = as_staff(tech)
    for url in ("/admin/invoices", f"/admin/customers/{cust.id}/charge", "/admin/reports/transactions",
                "/admin/settings", f"/admin/customers/{cust.id}/invoices/new", "/admin/settings/fields",
                "/admin/staff", f"/admin/customers/{cust.id}/edit", f"/admin/customers/{cust.id}/activity"):
        assert t.get(url).status_code == 403, url
    assert _post(t, f"/admin/customers/{cust.id}/archive").status_code == 403
    assert _post(t, f"/admin/customers/{cust.id}/invoice-unpaid-work").status_code == 403

    dash = t.get("/admin/").get_data(True)
    today = re.search(r'<section class="card" id="today".*?</section>', dash, re.DOTALL).group(0)
    assert "My visits today" in today
    assert f'href="/admin/jobs/{mine.id}"' in today and "Heat pump repair" in today
    assert "Boiler check" not in today and "Filter swap" not in today
    assert 'id="owed"' not in dash  # no money on a technician's dashboard
    assert t.get(f"/admin/jobs/{mine.id}").status_code == 200
    assert "Heat pump repair" in t.get(f"/admin/jobs/{mine.id}").get_data(True)
    assert t.get(f"/admin/jobs/{tomorrow.id}").status_code == 200
    assert t.get(f"/admin/jobs/{theirs.id}").status_code == 404
    # technicians still see the client card and can leave a note
    assert t.get(f"/admin/customers/{cust.id}").status_code == 200
    assert "Note added." in _post(t, f"/admin/customers/{cust.id}/notes", {"body": "Dog is friendly"},
                                  follow=True).get_data(True)

    o = as_staff(office)
    assert o.get("/admin/staff").status_code == 403
    assert o.get("/admin/settings").status_code == 403
    assert o.get("/admin/invoices").status_code == 200
    assert o.get(f"/admin/jobs/{theirs.id}").status_code == 200
    office_today = re.search(r'<section class="card" id="today".*?</section>', o.get("/admin/").get_data(True),
                             re.DOTALL).group(0)
    assert "Heat pump repair" in office_today and "Boiler check" in office_today


# --- 8. Customer list filters (C-11) -------------------------------------------------------------------------

def test_customer_list_filters(app, as_staff, stripe_sandbox):
    from portal.models import Tag

    with app.app_context():
        admin = make_staff("admin")
        manager = make_staff("office", name="Mandy Manager")
        owes = make_customer("Owen", "Owes", category="VIP", manager_id=manager.id)
        make_invoice(owes, total_cents=12_000)  # open, unpaid
        paid_up = make_customer("Pat", "Paidup", category="A")
        make_invoice(paid_up, total_cents=9_000, status="paid")
        draft_only = make_customer("Dora", "Draft")
        make_invoice(draft_only, total_cents=5_000, status="draft")
        carded = make_customer("Cara", "Carded", tags=[Tag(name="pets")], manager_id=manager.id)
        make_card(carded.id)
        plain = make_customer("Paul", "Plain")
        archived_owes = make_customer("Arch", "Ived", status="archived")
        make_invoice(archived_owes, total_cents=3_000)
    a = as_staff(admin)
    everyone = {owes.id, paid_up.id, draft_only.id, carded.id, plain.id}

    assert _listed_ids(a.get("/admin/customers").get_data(True)) == everyone
    assert _listed_ids(a.get("/admin/customers?balance=1").get_data(True)) == {owes.id}
    assert _listed_ids(a.get("/admin/customers?no_card=1").get_data(True)) == everyone - {carded.id}
    assert _listed_ids(a.get("/admin/customers?category=VIP").get_data(True)) == {owes.id}
    assert _listed_ids(a.get("/admin/customers?category=A").get_data(True)) == {paid_up.id}
    assert _listed_ids(a.get("/admin/customers?tag=pets").get_data(True)) == {carded.id}
    assert _listed_ids(a.get("/admin/customers?tag=PETS").get_data(True)) == {carded.id}
    assert _listed_ids(a.get(f"/admin/customers?manager={manager.id}").get_data(True)) == {owes.id, carded.id}
    assert _listed_ids(a.get(f"/admin/customers?manager={manager.id}&no_card=1").get_data(True)) == {owes.id}
    assert _listed_ids(a.get("/admin/customers?balance=1&status=archived").get_data(True)) == {archived_owes.id}
    html = a.get("/admin/customers?balance=1&no_card=1&category=VIP").get_data(True)
    assert _listed_ids(html) == {owes.id} and "1 customer<" in html
    assert 'name="balance" value="1" checked' in html and '<option value="VIP" selected>' in html


# --- 9. Bad input on the card ---------------------------------------------------------------------------------

def test_bad_input_on_the_card_gets_a_message_and_saves_nothing(app, as_staff, frozen_clock):
    with app.app_context():
        admin = make_staff("admin")
        cust = make_customer("Betty", "Badinput")
    a = as_staff(admin)
    card = f"/admin/customers/{cust.id}"
    events = _count(app, ActivityEvent)

    cases = [
        ("contacts", {"channel": "fax", "outcome": "Sent a fax"}, "Check the contact's date and channel.", ContactLog),
        ("contacts", {"channel": "call", "contacted_at": "yesterday"}, "Check the contact's date and channel.",
         ContactLog),
        ("contacts", {"channel": "call", "contacted_at": _local(app, clock.now() + timedelta(days=1))},
         "A contact cannot be in the future; schedule a task instead.", ContactLog),
        ("notes", {"body": ""}, "Write the note.", CustomerNote),
        ("notes", {"body": "   \n  "}, "Write the note.", CustomerNote),
        ("notes", {"body": "x" * 10_001}, "The note is too long or the form expired.", CustomerNote),
        ("task", {"due_at": "", "note": "Call back"}, "Choose when to contact the customer.", ContactTask),
        ("task", {"note": "Call back"}, "Choose when to contact the customer.", ContactTask),
        ("task", {"due_at": "next tuesday"}, "Enter the next contact's date and time as shown.", ContactTask),
        ("task", {"due_at": _local(app, clock.now() + timedelta(days=1)), "assignee_id": "999999"},
         "Choose an active staff member.", ContactTask),
    ]
    for path, data, message, model in cases:
        r = _post(a, f"{card}/{path}", data, follow=True)
        assert r.status_code == 200, (path, data, r.status_code)
        html = _text(r)
        assert message in html, (path, data)
        assert 'class="flash error"' in html
        assert _count(app, model) == 0, (path, data)
    assert _count(app, ActivityEvent) == events

    # a manager that does not exist, and posts for a customer that does not exist
    r = _post(a, card + "/manager", {"manager_id": "999999"}, follow=True)
    assert "Choose an active staff member." in r.get_data(True)
    with app.app_context():
        assert db.session.get(Customer, cust.id).manager_id is None
    for path in ("notes", "contacts", "task", "fields", "manager", "archive", "delete", "invoice-unpaid-work"):
        assert _post(a, f"/admin/customers/999999/{path}", {"body": "x"}).status_code == 404, path
    assert a.get("/admin/customers/999999/activity").status_code == 404
    assert a.get("/admin/settings/fields/999999").status_code == 404
    # a POST without its CSRF token is refused, not half-done
    assert a.post(card + "/notes", data={"body": "no token"}).status_code == 400
    assert _count(app, CustomerNote) == 0
    # and the good path still works afterwards
    assert "Note added." in _post(a, card + "/notes", {"body": "Fine now"}, follow=True).get_data(True)
    assert _count(app, CustomerNote) == 1


# --- Issue 15: the money sections of a long history, bounded ---------------------------------------------------

def test_long_history_card_lists_ten_open_invoices_sums_all_and_shows_only_its_refunds(app, as_staff):
    from portal.models import Refund

    with app.app_context():
        admin = make_staff("admin")
        cust, other = make_customer("Hana", "History"), make_customer("Otto", "Other")
        balances = []
        for k in range(12):
            inv = make_invoice(cust, 10_000 + k, status="partially_paid" if k % 3 == 0 else "open",
                               due_date=date(2025, 1, 1) + timedelta(days=k))
            paid = 1_000 if k % 3 == 0 else 0
            db.session.execute(update(Invoice).where(Invoice.id == inv.id).values(paid_cents=paid))
            balances.append(inv.total_cents - paid)
        make_invoice(cust, 5_000, status="paid")
        when = datetime(2025, 3, 1, 15, tzinfo=clock.UTC)
        payments = [Payment(customer_id=c.id, method="card", amount_cents=5_000, fee_cents=178, net_cents=4_822,
                            received_at=when) for c in (cust, other)]
        db.session.add_all(payments)
        db.session.flush()
        # rows written without the customer (as old code and imports did) get their payment's
        db.session.add_all([Refund(payment_id=p.id, amount_cents=700 + i, reason=f"goodwill {i}",
                                   status="succeeded", idempotency_key=f"rf_card_{p.id}",
                                   created_at=when + timedelta(days=1)) for i, p in enumerate(payments)])
        db.session.commit()
        assert [r.customer_id for r in db.session.scalars(select(Refund).order_by(Refund.id))] == [cust.id,
                                                                                                    other.id]
    html = _text(as_staff(admin).get(f"/admin/customers/{cust.id}"))
    owed = html.split("data-owed-total", 1)[1].split("</dd>", 1)[0]
    assert f"${sum(balances) / 100:,.2f}" in owed
    open_list = html.split("<h3>Open invoices", 1)[1].split("</form>", 1)[0]
    assert "(10 oldest due of 12;" in open_list and open_list.count('name="invoice_id"') == 10
    history = html.split("<h3>Payment history", 1)[1].split("</table>", 1)[0]
    assert "(2)" in history and history.count('data-type="refund"') == 1
    assert "goodwill 0" in history and "goodwill 1" not in history
