"""DATA-1, DATA-2: customer CSV import (encodings, delimiters, refused rows with line numbers, no duplicates on
re-import, bad files, all or nothing) and the customer export, imported back into an empty business."""
from __future__ import annotations

import io
import re

import pytest
from sqlalchemy import func, select

from portal.extensions import db
from portal.models import ActivityEvent, Customer, CustomerNote
from portal.models.customers import CustomerImport
from tests.factories import make_customer, make_staff
from tests.helpers import csrf_token_from

HEADER = "First Name,Last Name,Email,Mobile Number,Company,Street,City,State,Zip,Tags,Notes,Lead Source"


@pytest.fixture
def office(app, client, login_staff):
    with app.app_context():
        user = make_staff("office", name="Frank Office")
    login_staff(user)
    return client


@pytest.fixture
def owner(app, client, login_staff):
    with app.app_context():
        user = make_staff("admin", name="Olga Owner")
    login_staff(user)
    return client


def upload(client, content: bytes | str, name: str = "customers.csv"):
    """Upload a file on /admin/customers/import; returns the response (a redirect to the preview when read)."""
    raw = content.encode("utf-8") if isinstance(content, str) else content
    token = csrf_token_from(client.get("/admin/customers/import").get_data(True))
    return client.post("/admin/customers/import", data={"csrf_token": token, "file": (io.BytesIO(raw), name)},
                       content_type="multipart/form-data")


def preview(client, content, name="customers.csv") -> tuple[str, str]:
    r = upload(client, content, name)
    assert r.status_code == 302, r.get_data(True)[:2000]
    page = client.get(r.headers["Location"])
    assert page.status_code == 200
    return r.headers["Location"], page.get_data(True)


def form_of(html: str) -> dict:
    """The preview form as a browser would post it: the token, every column's selected target, the radio."""
    data = {"csrf_token": csrf_token_from(html)}
    for select_html in re.findall(r'<select id="(col-\d+)" name="col-\d+">(.*?)</select>', html, re.S):
        chosen = re.search(r'<option value="([^"]*)" selected>', select_html[1])
        data[select_html[0]] = chosen.group(1) if chosen else ""
    data["existing"] = re.search(r'name="existing" value="(\w+)" checked', html).group(1)
    return data


def confirm(client, url, html, **changes):
    r = client.post(url, data={**form_of(html), **changes, "action": "confirm"})
    assert r.status_code == 302, r.get_data(True)[:3000]
    return client.get(r.headers["Location"]).get_data(True)


def counts(html: str) -> dict[str, int]:
    return {k: int(v) for k, v in re.findall(r'<dd data-count="(\w+)">(\d+)</dd>', html)}


def refused(html: str) -> list[tuple[int, str]]:
    table = re.search(r'<table id="refused">(.*?)</table>', html, re.S)
    if not table:
        return []
    return [(int(line), reason) for line, reason in re.findall(r"<tr><td>(\d+)</td><td>(.*?)</td></tr>",
                                                               table.group(1))]


def customers(app) -> dict[str, Customer]:
    from sqlalchemy.orm import selectinload

    with app.app_context():
        rows = db.session.scalars(select(Customer).options(
            selectinload(Customer.emails), selectinload(Customer.phones), selectinload(Customer.addresses),
            selectinload(Customer.tags))).all()
        for c in rows:
            db.session.expunge(c)
        return {c.display_name: c for c in rows}


def count(app, model) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(model))


@pytest.mark.parametrize("encoding,delimiter", [("utf-8", ","), ("utf-8-sig", ";"), ("cp1252", ";"),
                                                ("cp1252", ",")])
def test_each_encoding_and_delimiter_is_detected_and_accents_survive(app, office, encoding, delimiter):
    text = "\r\n".join([
        "First Name{d}Last Name{d}Email{d}Phone{d}City",
        "José{d}Núñez{d}jose@example.com{d}(555) 201-0001{d}Düsseldorf",
        "Zoë{d}Ångström{d}zoe@example.com{d}555-201-0002{d}Besançon",
    ]).format(d=delimiter) + "\r\n"
    url, html = preview(office, text.encode(encoding), name="old tool.csv")
    assert {"UTF-8": "utf-8", "UTF-8 with BOM": "utf-8-sig", "Windows-1252": "cp1252"}[
        re.search(r"rows · ([^·]+) ·", html).group(1).strip()] == encoding
    assert ("semicolon" if delimiter == ";" else "comma") + " separated" in html
    assert counts(html) == {"created": 2, "updated": 0, "skipped": 0, "refused": 0}
    done = confirm(office, url, html)
    assert "Imported old tool.csv: 2 created, 0 updated, 0 skipped, 0 refused." in done
    found = customers(app)
    assert set(found) == {"José Núñez", "Zoë Ångström"}
    assert found["José Núñez"].primary_email == "jose@example.com"
    assert found["Zoë Ångström"].address_of("service") is None  # a city without a street is not an address
    with app.app_context():
        feed = db.session.scalars(select(ActivityEvent.summary)).all()
    assert feed == ["Imported from old tool.csv", "Imported from old tool.csv"]


def test_refused_rows_are_listed_with_their_line_numbers_and_never_imported(app, office):
    with app.app_context():
        make_customer("Existing", "Person", email="taken@example.com", phone="(555) 100-0000")
    lines = [
        HEADER,                                                                               # 1
        "Ana,Diaz,ana@example.com,555-201-3344,,12 Oak St,Springfield,CA,90210,VIP;plan,Gate code 1234,Google",  # 2
        "Bob,Stone,not-an-email,,,,,,,,,",                                                    # 3
        ",,,555-201-9999,,,,,,,,",                                                            # 4
        "Ana,Again,ANA@example.com,,,,,,,,,",                                                 # 5
        "Carl," + "x" * 81 + ",carl@example.com,,,,,,,,,",                                   # 6
        "Dora,Card,dora@example.com,,,,,,,,Card 4242 4242 4242 4242 exp 12/30,",              # 7
        "",                                                                                   # 8 (blank)
        '"Eve","Quote","eve@example.com","555-201-7777","","1 Long',                          # 9
        'Road, Apt 2","Springfield","CA","90210","","",""',                                  # 10
        "Fay,Phone,fay@example.com,call me,,,,,,,,",                                          # 11
    ]
    url, html = preview(office, "\n".join(lines) + "\n")
    assert counts(html) == {"created": 2, "updated": 0, "skipped": 0, "refused": 6}
    assert refused(html) == [
        (3, "“not-an-email” is not an email address."),
        (4, "No name and no email."),
        (5, "Same email as line 2."),
        (6, "Last name is longer than 80 characters."),
        (7, "The “Notes” column looks like a card number. Card numbers are never stored; the row was not read."),
        (11, "“call me” is not a phone number."),
    ]
    with app.app_context():
        stored = db.session.scalars(select(CustomerImport.rows)).one()
    assert "4242" not in stored  # the card row was emptied before anything was stored
    done = confirm(office, url, html)
    assert "2 created" in done
    found = customers(app)
    assert set(found) == {"Existing Person", "Ana Diaz", "Eve Quote"}
    ana = found["Ana Diaz"]
    assert sorted(t.name for t in ana.tags) == ["VIP", "plan"]
    assert ana.lead_source == "Google" and ana.address_of("service").one_line() == "12 Oak St, Springfield, CA 90210"
    assert found["Eve Quote"].address_of("service").line1 == "1 Long\nRoad, Apt 2"
    with app.app_context():
        assert db.session.scalars(select(CustomerNote.body)).all() == ["Gate code 1234"]
        assert db.session.scalars(select(CustomerImport.rows)).one() is None  # not kept after the import


def test_unknown_status_language_and_no_name_column(app, office):
    url, html = preview(office, "Name;E-mail;Status;Language\nAna Diaz;ana@example.com;Active;Español\n"
                                "Bo Li;bo@example.com;gold;en\nCy Ro;cy@example.com;lead;klingon\n")
    assert refused(html) == [(3, "Unknown status “gold” (use active, archived, blacklisted, inactive, lead)."),
                             (4, "Unknown language “klingon” (use en, es, ru).")]
    confirm(office, url, html)
    ana = customers(app)["Ana Diaz"]
    assert (ana.status, ana.preferred_language, ana.first_name, ana.last_name) == ("active", "es", "Ana", "Diaz")

    r = upload(office, "Colour,Size\nred,XL\n")
    assert r.status_code == 400
    assert "No column holds a name or an email" in r.get_data(True)


def test_reimporting_the_same_file_creates_nothing_and_existing_customers_update_or_skip(app, office):
    content = (HEADER + "\n"
               "Ana,Diaz,ana@example.com,(555) 201-3344,,12 Oak St,Springfield,CA,90210,VIP,First visit\n"
               "Ben,Ortiz,,+1 555 201 5555,,,,,,,\n")
    url, html = preview(office, content)
    confirm(office, url, html)
    before = (count(app, Customer), count(app, CustomerNote), count(app, ActivityEvent))

    url, html = preview(office, content)
    assert counts(html) == {"created": 0, "updated": 0, "skipped": 2, "refused": 0}
    confirm(office, url, html)
    assert (count(app, Customer), count(app, CustomerNote)) == before[:2]

    # A changed file: Ben is found by his phone written differently; Ana by her email.
    changed = (HEADER + "\n"
               "Ana,Diaz,ANA@example.com,(555) 201-3344,,14 Elm St,Springfield,CA,90210,VIP,Second visit\n"
               "Benjamin,Ortiz,,555.201.5555,,,,,,,\n")
    url, html = preview(office, changed)
    assert counts(html) == {"created": 0, "updated": 2, "skipped": 0, "refused": 0}
    assert "Updated: service address, 1 new note" in html and "Updated: first name" in html
    skip = office.post(url, data={**form_of(html), "existing": "skip", "action": "preview"}).get_data(True)
    assert counts(skip) == {"created": 0, "updated": 0, "skipped": 2, "refused": 0}
    r = office.post(url, data={**form_of(skip), "existing": "update", "action": "confirm"})
    assert r.status_code == 409 and count(app, CustomerNote) == before[1]  # changed since that preview: asked again
    html = office.get(url).get_data(True)
    done = confirm(office, url, html)
    assert "0 created, 2 updated" in done
    found = customers(app)
    assert set(found) == {"Ana Diaz", "Benjamin Ortiz"} and count(app, Customer) == 2
    assert found["Ana Diaz"].address_of("service").line1 == "14 Elm St"
    with app.app_context():
        assert sorted(db.session.scalars(select(CustomerNote.body))) == ["First visit", "Second visit"]
        summaries = db.session.scalars(select(ActivityEvent.summary).order_by(ActivityEvent.id)).all()
    assert summaries[-2:] == ["Imported from customers.csv: updated service address",
                              "Imported from customers.csv: updated first name"]


def test_confirm_refused_when_the_mapping_changed_and_twice(app, office):
    url, html = preview(office, "Full Name,Handy\nAna Diaz,555-201-3344\n")
    data = form_of(html)
    assert data == {**data, "col-0": "full_name", "col-1": ""}  # "Handy" is not a header we know
    r = office.post(url, data={**data, "col-1": "phone", "action": "confirm"})
    assert r.status_code == 409 and "changed since this preview" in r.get_data(True)
    assert count(app, Customer) == 0
    html = r.get_data(True)
    assert form_of(html)["col-1"] == "phone"
    confirm(office, url, html)
    assert customers(app)["Ana Diaz"].mobile_phone == "555-201-3344"
    again = office.post(url, data={**form_of(html), "action": "confirm"})
    assert again.status_code == 200 and "Imported Ana" not in again.get_data(True)
    assert count(app, Customer) == 1

    r = office.post(url.replace(url.rsplit("/", 1)[1], "999999"), data=form_of(html))
    assert r.status_code == 404


@pytest.mark.parametrize("content,message", [
    (b"", "The file is empty."),
    (b"PK\x03\x04\x14\x00\x00\x00" + b"\x00" * 200, "This file is an Excel workbook or a ZIP archive, not a CSV"),
    (b"\x00\x01\x02binary\x00" * 20, "This file is not a CSV file."),
    (b"Email\n" + b"a@example.com\n" * 50_001, "The file has more than 50,000 customers."),
    (b"Email,Notes\n" + b"a@example.com," + b"x" * (20 * 1024 * 1024) + b"\n", "The file is larger than 20 MB."),
    (b"Colour;Size\nred;XL\n", "No column holds a name or an email."),
    (b"\xef\xbb\xbfFirst Name,Email\r\n\r\n", "The file has a header row but no customers under it."),
], ids=["empty", "xlsx", "binary", "too-many-rows", "too-large", "no-name-column", "header-only"])
def test_a_bad_file_gets_one_clear_message_and_changes_nothing(app, office, content, message):
    r = upload(office, content)
    assert r.status_code == 400
    page = r.get_data(True)
    assert message in page and page.count('role="alert"') == 1
    assert count(app, CustomerImport) == 0 and count(app, Customer) == 0


def test_a_database_error_mid_import_leaves_nothing(app, office, monkeypatch):
    from portal.services.crm import importing

    url, html = preview(office, HEADER + "\nAna,Diaz,ana@example.com,,,,,,,a tag,a note,\n"
                                         "Ben,Ortiz,ben@example.com,,,,,,,,,\n")

    def broken(links):
        raise RuntimeError("the database went away")

    monkeypatch.setattr(importing, "_link_tags", broken)  # after customers, emails and notes were inserted
    with app.app_context():  # what the confirming request does: the service flushes, the view commits once
        imp = db.session.scalars(select(CustomerImport)).one()
        with pytest.raises(RuntimeError):
            importing.confirm(imp, None)
        assert db.session.scalar(select(func.count()).select_from(Customer)) == 2  # written, not committed
        db.session.rollback()
    monkeypatch.undo()
    assert (count(app, Customer), count(app, CustomerNote), count(app, ActivityEvent)) == (0, 0, 0)
    with app.app_context():
        assert db.session.scalars(select(CustomerImport.imported_at)).one() is None
    confirm(office, url, office.get(url).get_data(True))  # the same preview can still be confirmed
    assert count(app, Customer) == 2


def test_who_may_import_and_export(app, client, login_staff):
    with app.app_context():
        tech, office_user = make_staff("technician"), make_staff("office")
    login_staff(tech)
    assert client.get("/admin/customers/import").status_code == 403
    assert client.get("/admin/customers/export.csv").status_code == 403
    other = app.test_client()
    login_staff(office_user, c=other)
    assert other.get("/admin/customers/import").status_code == 200
    assert other.get("/admin/customers/export.csv").status_code == 403


def test_export_imported_into_an_empty_business_reproduces_the_customers(app, owner):
    from sqlalchemy import delete

    from portal.models import (
        Address,
        CustomerEmail,
        CustomerPhone,
        CustomFieldDefinition,
        CustomFieldValue,
        Tag,
        customer_tags,
    )

    with app.app_context():
        staff_id = make_staff("admin").id
        gate = CustomFieldDefinition(label="Gate code", field_type="text", position=1)
        units = CustomFieldDefinition(label="Units", field_type="number", position=2)
        pets = CustomFieldDefinition(label="Pets", field_type="multi_list", options="Dog\nCat\nBird", position=3)
        vip = CustomFieldDefinition(label="Newsletter", field_type="checkbox", position=4)
        db.session.add_all([gate, units, pets, vip])
        db.session.flush()
        field_ids = [gate.id, units.id, pets.id, vip.id]
        first = make_customer("Zoë", "Núñez-Ångström", email="zoe@example.com", phone="+1 (555) 201-0001",
                              status="active", language="es", category="VIP", lead_source="Feria de Sevilla")
        business = Customer(kind="business", company_name="Crème Brûlée Café", status="lead",
                            lead_source="=HYPERLINK(1)")
        business.emails.append(CustomerEmail(email="cafe@example.com", is_primary=True))
        business.phones.append(CustomerPhone(number="+420 555 201 002", kind="mobile"))
        business.addresses.append(Address(kind="service", line1="Čapkova 7", line2="2º piso", city="Brno",
                                          region="JM", postal_code="602 00"))
        business.tags = [Tag(name="Commercial"), Tag(name="Ünïcode")]
        db.session.add(business)
        db.session.flush()
        db.session.add_all([CustomerNote(customer_id=business.id, author_id=staff_id, body="Back door; ask Jürgen"),
                            CustomerNote(customer_id=business.id, author_id=staff_id, body="Pays by check\n=SUM(A1)"),
                            CustomFieldValue(customer_id=business.id, field_id=gate.id, value="#4512, ñ"),
                            CustomFieldValue(customer_id=business.id, field_id=units.id, value="3.5"),
                            CustomFieldValue(customer_id=business.id, field_id=pets.id, value="Dog\nBird"),
                            CustomFieldValue(customer_id=first.id, field_id=vip.id, value="1")])
        db.session.commit()
    r = owner.get("/admin/customers/export.csv")
    assert r.status_code == 200 and r.mimetype == "text/csv" and r.is_streamed
    exported = r.get_data()
    assert exported.startswith(b"\xef\xbb\xbf") and "'=HYPERLINK(1)" in exported.decode("utf-8")
    assert ",custom: Gate code,custom: Units,custom: Pets,custom: Newsletter" in exported.decode("utf-8").splitlines()[0]
    before = {name: _facts(c) for name, c in customers(app).items()}
    before_fields = _field_values(app)
    assert len(before_fields) == 4
    assert set(before) == {"Zoë Núñez-Ångström", "Crème Brûlée Café"} and first.id

    with app.app_context():  # an empty business: the same app with no customers
        for model in (CustomerNote, ActivityEvent, CustomerImport, CustomerEmail, CustomerPhone, Address,
                      customer_tags, CustomFieldValue, Customer, Tag):
            db.session.execute(model.delete() if model is customer_tags else delete(model))
        db.session.commit()
    url, html = preview(owner, exported, name="export.csv")
    assert counts(html) == {"created": 2, "updated": 0, "skipped": 0, "refused": 0}
    confirm(owner, url, html)
    assert [form_of(html)[f"col-{i}"] for i in range(20, 24)] == [f"field:{i}" for i in field_ids]
    after = {name: _facts(c) for name, c in customers(app).items()}
    assert after == before
    assert _field_values(app) == before_fields
    with app.app_context():
        assert sorted(db.session.scalars(select(CustomerNote.body))) == ["Back door; ask Jürgen",
                                                                          "Pays by check\n=SUM(A1)"]


def _field_values(app) -> set[tuple]:
    from portal.models import CustomFieldDefinition, CustomFieldValue

    with app.app_context():
        return set(db.session.execute(
            select(Customer.company_name, Customer.first_name, CustomFieldDefinition.label, CustomFieldValue.value)
            .join(CustomFieldValue, CustomFieldValue.customer_id == Customer.id)
            .join(CustomFieldDefinition, CustomFieldDefinition.id == CustomFieldValue.field_id)).tuples())


def _facts(c: Customer) -> tuple:
    address = c.address_of("service")
    return (c.kind, c.first_name, c.last_name, c.company_name, c.primary_email, c.mobile_phone, c.status,
            c.preferred_language, c.category, c.lead_source, sorted(t.name for t in c.tags),
            address.one_line() if address else None)


def test_the_import_accepts_exactly_the_emails_the_staff_form_accepts():
    """The fast path for plain addresses never accepts what email_validator (the form's rule) refuses."""
    from email_validator import EmailNotValidError, validate_email

    from portal.services.crm.importing import valid_email

    samples = ["ana@example.com", "a.b-c+tag@mail.example.co.uk", "x@example.test", "x@localhost", "a..b@example.com",
               ".a@example.com", "a.@example.com", "a@-example.com", "a@example.c", "a@example.123", "a@ex_ample.com",
               "josé@example.com", "a@exämple.com", "a b@example.com", "a@b@example.com", "@example.com", "a@",
               "a@example..com", "a" * 65 + "@example.com", "a@" + "b" * 64 + ".com", "o'brien@example.com"]

    def library(email: str) -> bool:
        try:
            validate_email(email, check_deliverability=False)
        except EmailNotValidError:
            return False
        return True

    assert {e: valid_email(e) for e in samples} == {e: library(e) for e in samples}


def test_no_file_and_a_card_number_in_the_header_row(app, office):
    token = csrf_token_from(office.get("/admin/customers/import").get_data(True))
    r = office.post("/admin/customers/import", data={"csrf_token": token}, content_type="multipart/form-data")
    assert r.status_code == 400 and "Choose a CSV file to upload." in r.get_data(True)

    url, html = preview(office, "Email,4111 1111 1111 1111\nana@example.com,x\n")
    assert "Column 2" in html and "4111" not in html
    with app.app_context():
        stored = db.session.scalars(select(CustomerImport)).one()
        assert "4111" not in stored.headers + (stored.rows or "")


def test_custom_fields_are_recognised_by_label_and_checked_by_their_type(app, office):
    from portal.models import CustomFieldDefinition, CustomFieldValue

    with app.app_context():
        db.session.add_all([CustomFieldDefinition(label="Gate code", field_type="text", position=1),
                            CustomFieldDefinition(label="Filter size", field_type="list", options="16x25\n20x25",
                                                  position=2),
                            CustomFieldDefinition(label="Install date", field_type="date", position=3)])
        db.session.commit()
    content = ("Email,Name,GATE CODE,Filter Size,Install date\n"
               "ana@example.com,Ana Diaz,1234#,20x25,2021-05-04\n"
               "bo@example.com,Bo Li,,30x30,yesterday\n")
    url, html = preview(office, content)
    assert refused(html) == [(3, "Filter size: “30x30” is not one of the choices; Install date: enter a date as "
                                 "YYYY-MM-DD.")]
    confirm(office, url, html)
    with app.app_context():
        assert sorted(db.session.scalars(select(CustomFieldValue.value))) == ["1234#", "2021-05-04", "20x25"]
    # The same customer again with one value changed: an update of that custom field only.
    url, html = preview(office, content.replace("20x25", "16x25"))
    assert "Updated: custom fields" in html
    confirm(office, url, html)
    with app.app_context():
        assert sorted(db.session.scalars(select(CustomFieldValue.value))) == ["1234#", "16x25", "2021-05-04"]


def test_an_existing_business_keeps_its_kind_without_a_kind_column(app, office):
    from portal.models import CustomerEmail

    with app.app_context():
        acme = Customer(kind="business", company_name="Acme Heating", first_name="Ann", last_name="Lee",
                        status="active")
        acme.emails.append(CustomerEmail(email="ann@acme.example", is_primary=True))
        db.session.add(acme)
        db.session.commit()
    url, html = preview(office, "First Name,Last Name,Company,Email\nAnn,Lee,Acme Heating,ann@acme.example\n"
                                "Bo,Li,Li Plumbing,bo@li.example\n,,Solo Air,solo@solo.example\n")
    assert counts(html) == {"created": 2, "updated": 0, "skipped": 1, "refused": 0}
    confirm(office, url, html)
    found = customers(app)
    assert (found["Acme Heating"].kind, found["Bo Li"].kind, found["Solo Air"].kind) == (
        "business", "individual", "business")


def test_a_custom_field_switched_off_after_the_upload(app, office):
    from portal.models import CustomFieldDefinition

    with app.app_context():
        gate = CustomFieldDefinition(label="Gate code", field_type="text", position=1)
        db.session.add(gate)
        db.session.commit()
        gate_id = gate.id
    url, html = preview(office, "Email,Gate code\nana@example.com,1234#\n")
    assert form_of(html)["col-1"] == f"field:{gate_id}"
    with app.app_context():
        db.session.get(CustomFieldDefinition, gate_id).is_active = False
        db.session.commit()
    r = office.get(url)
    assert r.status_code == 409 and "Choose what each column holds from the list." in r.get_data(True)
    r = office.post(url, data={**form_of(r.get_data(True)), "col-1": "", "action": "preview"})
    assert r.status_code == 200 and counts(r.get_data(True))["created"] == 1
