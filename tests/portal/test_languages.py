"""P-9: portal pages and customer emails in English, Spanish and Russian.

The language follows the customer's preference, then the browser's Accept-Language; the switcher sticks.
The catalogs must cover every customer-facing string of the templates and code (extracted with the
project's babel.cfg, as `make i18n-update` does), so no page is left half in English.
"""
from __future__ import annotations

from pathlib import Path

from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po
from sqlalchemy import select

from portal.extensions import db
from portal.models import Customer, Invoice, StaffUser
from portal.services.billing import invoices
from portal.services.platform import mailer
from tests.factories import make_customer, make_invoice, make_staff

ROOT = Path(__file__).resolve().parents[2]
KEYWORDS = {"_": None, "gettext": None, "ngettext": (1, 2), "pgettext": ((1, "c"), 2), "_l": None,
            "lazy_gettext": None}


def _method_map():
    """babel.cfg as (pattern, method) pairs."""
    pairs, method = [], None
    for line in (ROOT / "babel.cfg").read_text().splitlines():
        line = line.strip()
        if line.startswith("[") and line.endswith("]"):
            method, pattern = line[1:-1].split(":", 1)
            pairs.append((pattern.strip(), method.strip()))
    return pairs


def _extracted() -> set[tuple[str, str | None]]:
    """(msgid, context) of every customer-facing string."""
    found = set()
    for _filename, _lineno, message, _comments, context in extract_from_dir(
            str(ROOT), method_map=_method_map(), keywords=KEYWORDS,
            options_map={"**.html": {"extensions": "jinja2.ext.do"}}):
        found.add((message[0] if isinstance(message, tuple) else message, context))
    return found


def test_every_customer_facing_string_is_translated_in_spanish_and_russian():
    extracted = _extracted()
    ids = {msgid for msgid, _context in extracted}
    assert len(extracted) > 250 and "Upcoming charges" in ids and "Request a different time" in ids
    for lang in ("es", "ru"):
        with open(ROOT / f"portal/translations/{lang}/LC_MESSAGES/messages.po", "rb") as f:
            catalog = read_po(f, locale=lang)
        missing = sorted(m for m, context in extracted if catalog.get(m, context=context) is None)
        assert not missing, f"{lang}: run `make i18n-update` and translate: {missing[:20]}"
        untranslated = sorted(m.id if isinstance(m.id, str) else m.id[0] for m in catalog
                              if m.id and (m.fuzzy or not all(m.string if isinstance(m.string, tuple)
                                                              else [m.string])))
        assert not untranslated, f"{lang}: untranslated or fuzzy: {untranslated[:20]}"


def test_browser_language_spanish_home_page(app, client, login_customer):
    with app.app_context():
        c = make_customer("Ana", "Diaz", language="")
        make_invoice(c, 123_456)
    login_customer(c)
    page = client.get("/portal/", headers={"Accept-Language": "es-MX,es;q=0.9,en;q=0.5"}).get_data(True)
    assert '<html lang="es">' in page
    for text in ("Saldo pendiente", "Próximos cargos", "Próxima cita", "Hola, Ana"):
        assert text in page, text
    assert "Upcoming charges" not in page and "Balance due" not in page
    assert "1234,56" in page.replace("\xa0", "").replace(".", "")  # the locale's decimal comma


def test_customer_preference_russian_beats_the_browser_and_reaches_the_invoice_email(app, client, login_customer,
                                                                                     smtp):
    with app.app_context():
        c = make_customer("Olga", "Petrova", email="olga@example.com", language="ru")
        invoice = make_invoice(c, 50_000, number="INV-88001")
        staff = make_staff("office")
    login_customer(c)
    page = client.get("/portal/", headers={"Accept-Language": "en-US,en"}).get_data(True)
    for text in ("К оплате", "Предстоящие списания", "Следующий визит"):
        assert text in page, text
    with app.app_context():
        invoices.send(db.session.get(Invoice, invoice.id), db.session.get(StaffUser, staff.id))
        db.session.commit()
        mailer.deliver_pending()
    [msg] = smtp.to("olga@example.com")
    assert msg["Subject"] == "Счёт INV-88001 от Bright Air" or msg["Subject"].startswith("Счёт INV-88001")
    text, html = smtp.text(msg), smtp.html(msg)
    assert "Направляем вам счёт INV-88001" in text and "Посмотреть и оплатить счёт" in html
    assert "Here is your invoice" not in text


def test_switcher_sticks_and_becomes_the_customers_preference(app, client, login_customer):
    with app.app_context():
        c = make_customer("Ana", "Diaz", language="en")
    login_customer(c)
    assert "Próximos cargos" in client.get("/portal/?lang=es").get_data(True)
    assert "Próximos cargos" in client.get("/portal/invoices").get_data(True) or \
        "Facturas" in client.get("/portal/invoices").get_data(True)
    with app.app_context():
        assert db.session.scalars(select(Customer.preferred_language).where(Customer.id == c.id)).one() == "es"
    assert "Upcoming charges" in client.get("/portal/?lang=en").get_data(True)
    assert client.get("/portal/?lang=xx").status_code == 200  # unknown codes are ignored


def test_login_page_follows_the_browser_before_login(client):
    page = client.get("/portal/login", headers={"Accept-Language": "ru"}).get_data(True)
    assert '<html lang="ru">' in page
