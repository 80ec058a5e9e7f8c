"""C-1, C-2, C-11: creating, editing and finding customers; bad input changes nothing."""
import pytest
from sqlalchemy import func, select

from portal.extensions import db
from portal.models import ActivityEvent, Customer
from tests.factories import make_customer, make_staff
from tests.helpers import csrf_token_from

VALID = {"kind": "individual", "first_name": "Ana", "last_name": "Diaz", "email": "ana.diaz@example.com",
         "phone": "+1 (555) 201-3344", "service_line1": "12 Oak St", "service_city": "Springfield",
         "service_region": "CA", "service_postal_code": "90210", "preferred_language": "es", "status": "active",
         "category": "VIP", "discount_percent": "10", "tags": "VIP, maintenance plan", "manager_id": ""}


@pytest.fixture
def staff_client(app, client, login_staff):
    with app.app_context():
        user = make_staff("office", name="Frank Office")
    login_staff(user)
    client.staff_id = user.id
    return client


def _post(client, url, data):
    token = csrf_token_from(client.get(url).get_data(True))
    return client.post(url, data={**data, "csrf_token": token})


def _count(app):
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(Customer))


def test_staff_create_a_customer_and_see_the_card(app, staff_client):
    r = _post(staff_client, "/admin/customers/new", {**VALID, "manager_id": str(staff_client.staff_id)})
    assert r.status_code == 302
    card = staff_client.get(r.headers["Location"]).get_data(True)
    for text in ("Ana Diaz", "ana.diaz@example.com", "+1 (555) 201-3344", "12 Oak St", "VIP", "maintenance plan",
                 "10.00 %", "Frank Office", "active"):
        assert text in card
    with app.app_context():
        c = db.session.scalars(select(Customer)).one()
        assert c.discount_bp == 1000 and c.preferred_language == "es" and c.manager_id == staff_client.staff_id
        assert db.session.scalar(select(ActivityEvent).where(ActivityEvent.customer_id == c.id)).actor_staff_id \
            == staff_client.staff_id


@pytest.mark.parametrize("field,value,message", [
    ("first_name", "", "Enter a first or last name."),
    ("first_name", "A" * 81, "Field cannot be longer than 80 characters."),
    ("email", "not-an-email", "Enter a valid email address"),
    ("email", "a" * 250 + "@example.com", "That email address is too long."),
    ("phone", "call me maybe", "Enter a phone number"),
    ("phone", "12-34", "Enter a phone number"),
    ("discount_percent", "-5", "Enter a discount between 0 and 100."),
    ("discount_percent", "abc", "Not a valid decimal value."),
    ("discount_percent", "150", "Enter a discount between 0 and 100."),
    ("manager_id", "999999", "Not a valid choice"),
    ("status", "emperor", "Not a valid choice"),
    ("preferred_language", "xx", "Not a valid choice"),
])
def test_bad_input_gets_a_message_and_saves_nothing(app, staff_client, field, value, message):
    if field == "first_name" and value == "":
        data = {**VALID, "first_name": "", "last_name": ""}
    else:
        data = {**VALID, field: value}
    r = _post(staff_client, "/admin/customers/new", data)
    assert r.status_code == 400
    assert message in r.get_data(True)
    assert "Nothing was saved" in r.get_data(True) or message in r.get_data(True)
    assert _count(app) == 0


def test_blacklisting_needs_a_reason(app, staff_client):
    r = _post(staff_client, "/admin/customers/new", {**VALID, "status": "blacklisted"})
    assert r.status_code == 400 and "Say why this customer is blacklisted." in r.get_data(True)
    assert _count(app) == 0


def test_an_email_can_belong_to_one_customer_only(app, staff_client):
    with app.app_context():
        make_customer("Ben", "Beta", email="ana.diaz@example.com")
    r = _post(staff_client, "/admin/customers/new", VALID)
    assert r.status_code == 400 and "This email already belongs to Ben Beta." in r.get_data(True)
    assert _count(app) == 1


def test_edit_changes_the_record_and_bad_edit_changes_nothing(app, staff_client):
    with app.app_context():
        customer = make_customer("Ana", "Diaz", email="ana@example.com")
    url = f"/admin/customers/{customer.id}/edit"
    form = staff_client.get(url).get_data(True)
    assert 'value="ana@example.com"' in form
    bad = _post(staff_client, url, {**VALID, "email": "broken@", "last_name": "Changed"})
    assert bad.status_code == 400
    with app.app_context():
        assert db.session.get(Customer, customer.id).last_name == "Diaz"
    ok = _post(staff_client, url, {**VALID, "last_name": "Diaz-Lopez", "status": "archived"})
    assert ok.status_code == 302
    with app.app_context():
        c = db.session.get(Customer, customer.id)
        assert c.last_name == "Diaz-Lopez" and c.status == "archived" and c.archived_at is not None
        assert c.primary_email == "ana.diaz@example.com"
    card = staff_client.get(f"/admin/customers/{customer.id}").get_data(True)
    assert "Status changed from active to archived." in card


def test_unknown_customer_ids_answer_404(staff_client):
    assert staff_client.get("/admin/customers/424242").status_code == 404
    assert staff_client.get("/admin/customers/424242/edit").status_code == 404
    assert staff_client.get("/admin/customers/abc").status_code == 404


def test_list_searches_name_email_phone_tag_and_manager_and_hides_archived(app, staff_client):
    with app.app_context():
        manager = make_staff("office", name="Grace Manager")
        make_customer("Ana", "Diaz", email="ana@example.com", phone="(555) 111-2222", manager_id=manager.id)
        make_customer("Ben", "Brown", email="ben@example.com", phone="(555) 333-4444")
        make_customer("Cleo", "Archived", email="cleo@example.com", status="archived")
        from portal.services.crm import customers
        c = db.session.scalars(select(Customer).where(Customer.first_name == "Ben")).one()
        c.tags = customers._tags(["gold"])
        db.session.commit()

    def names(query):
        html = staff_client.get("/admin/customers" + query).get_data(True)
        return {n for n in ("Ana Diaz", "Ben Brown", "Cleo Archived") if n in html}

    assert names("") == {"Ana Diaz", "Ben Brown"}
    assert names("?q=diaz") == {"Ana Diaz"}
    assert names("?q=ben%40example") == {"Ben Brown"}
    assert names("?q=5553334444") == {"Ben Brown"}
    assert names("?q=333-4444") == {"Ben Brown"}
    assert names("?q=gold") == {"Ben Brown"}
    assert names("?tag=gold") == {"Ben Brown"}
    assert names("?q=grace") == {"Ana Diaz"}
    assert names("?status=archived") == {"Cleo Archived"}
    assert names("?q=nobody") == set()


def test_list_is_paginated(app, staff_client):
    with app.app_context():
        for i in range(30):
            make_customer("Zed", f"Person{i:02d}", email=f"zed{i}@example.com")
    first = staff_client.get("/admin/customers").get_data(True)
    assert "Page 1 of 2" in first and first.count("Zed Person") == 25
    second = staff_client.get("/admin/customers?page=2").get_data(True)
    assert second.count("Zed Person") == 5
    assert staff_client.get("/admin/customers?page=99").status_code == 200
    assert staff_client.get("/admin/customers?page=-3").status_code == 200


def test_customer_list_loads_in_a_bounded_number_of_queries(app, staff_client):
    from sqlalchemy import event

    with app.app_context():
        for i in range(12):
            make_customer("Q", f"Count{i:02d}", email=f"q{i}@example.com")
        statements = []
        listener = lambda *args: statements.append(1)
        event.listen(db.engine, "before_cursor_execute", listener)
        try:
            staff_client.get("/admin/customers")
        finally:
            event.remove(db.engine, "before_cursor_execute", listener)
    assert len(statements) <= 12  # not one per row


def test_invitation_needs_an_email_address(app, staff_client, smtp):
    with app.app_context():
        customer = make_customer(email=None)
    page = staff_client.get(f"/admin/customers/{customer.id}").get_data(True)
    r = staff_client.post(f"/admin/customers/{customer.id}/portal-invitation",
                          data={"csrf_token": csrf_token_from(page)})
    assert r.status_code == 302
    assert "Add an email address to this customer first." in staff_client.get(r.headers["Location"]).get_data(True)
    assert smtp.messages == []
