"""S-1 … S-3: staff login, roles, rate limits, invitations, deactivation."""
import re

from sqlalchemy import func, select

from portal.extensions import db
from portal.models import StaffUser
from tests.factories import PASSWORD, make_staff
from tests.helpers import csrf_token_from


def _post_login(client, email, password):
    token = csrf_token_from(client.get("/admin/login").get_data(True))
    return client.post("/admin/login", data={"email": email, "password": password, "csrf_token": token})


def test_right_password_logs_in_and_passwords_are_hashed(app, client):
    with app.app_context():
        user = make_staff("admin", email="owner@brightair.test")
        assert PASSWORD not in (user.password_hash or "")
    r = _post_login(client, "OWNER@brightair.test", PASSWORD)
    assert r.status_code == 302 and r.headers["Location"].endswith("/admin/")
    assert "Good day" in client.get("/admin/").get_data(True)


def test_wrong_password_and_unknown_email_get_the_same_message(app, client):
    with app.app_context():
        make_staff("office", email="frank@brightair.test")
    wrong = _post_login(client, "frank@brightair.test", "not the password")
    unknown = _post_login(client, "nobody@brightair.test", "not the password")
    assert wrong.status_code == unknown.status_code == 401
    message = "That email and password do not match an active staff account."
    assert message in wrong.get_data(True) and message in unknown.get_data(True)
    strip = lambda html: re.sub(r'value="[^"]*"', "", html)  # the typed email and CSRF token differ
    assert strip(wrong.get_data(True)) == strip(unknown.get_data(True))


def test_sixth_failed_login_within_a_minute_is_refused_with_429(app, client, frozen_clock):
    with app.app_context():
        make_staff("admin", email="owner@brightair.test")
    for _ in range(5):
        assert _post_login(client, "owner@brightair.test", "guess").status_code == 401
    sixth = _post_login(client, "owner@brightair.test", "guess")
    assert sixth.status_code == 429
    assert "Too many attempts" in sixth.get_data(True)
    # Even the right password waits until the window passes.
    assert _post_login(client, "owner@brightair.test", PASSWORD).status_code == 429


def test_successful_logins_are_not_counted_against_the_limit(app, client):
    with app.app_context():
        make_staff("admin", email="owner@brightair.test")
    for _ in range(7):
        assert _post_login(client, "owner@brightair.test", PASSWORD).status_code == 302
        client.post("/admin/logout", data={"csrf_token": csrf_token_from(client.get("/admin/").get_data(True))})


def test_technician_gets_403_on_staff_admin_and_money_pages_but_sees_customers(app, client, login_staff):
    with app.app_context():
        tech = make_staff("technician")
    login_staff(tech)
    assert client.get("/admin/staff").status_code == 403
    assert client.get("/admin/outbox").status_code == 403
    assert client.get("/admin/customers/new").status_code == 403
    assert client.get("/admin/customers").status_code == 200
    assert client.get("/admin/").status_code == 200
    assert 'class="admin"' in client.get("/admin/staff").get_data(True)


def test_office_cannot_manage_staff(app, client, login_staff):
    with app.app_context():
        office = make_staff("office")
    login_staff(office)
    assert client.get("/admin/staff").status_code == 403
    assert client.get("/admin/customers/new").status_code == 200


def test_anonymous_visitor_is_sent_to_the_login(client):
    r = client.get("/admin/customers")
    assert r.status_code == 302 and "/admin/login" in r.headers["Location"]


def test_deactivated_staff_members_open_session_is_logged_out(app, client, login_staff):
    with app.app_context():
        admin = make_staff("admin")
        office = make_staff("office", email="frank@brightair.test")
        office_id = office.id
    office_client = app.test_client()
    login_staff(office, c=office_client)
    assert office_client.get("/admin/customers").status_code == 200

    login_staff(admin)
    page = client.get("/admin/staff").get_data(True)
    r = client.post(f"/admin/staff/{office_id}/deactivate", data={"csrf_token": csrf_token_from(page)})
    assert r.status_code == 302
    assert "deactivated" in client.get("/admin/staff").get_data(True)

    after = office_client.get("/admin/customers")
    assert after.status_code == 302 and "/admin/login" in after.headers["Location"]
    assert _post_login(office_client, "frank@brightair.test", PASSWORD).status_code == 401


def test_admin_invites_staff_who_sets_a_password_and_logs_in(app, client, login_staff, smtp):
    with app.app_context():
        admin = make_staff("admin")
    login_staff(admin)
    page = client.get("/admin/staff").get_data(True)
    r = client.post("/admin/staff", data={"name": "Tina Tech", "email": "tina@brightair.com", "role": "technician",
                                          "csrf_token": csrf_token_from(page)})
    assert r.status_code == 302
    [email] = smtp.to("tina@brightair.com")
    link = re.search(r"http://portal\.test(/admin/invitation/\S+)", smtp.text(email)).group(1)

    invitee = app.test_client()
    form = invitee.get(link)
    assert form.status_code == 200 and "Choose a password" in form.get_data(True)
    short = invitee.post(link, data={"password": "short", "confirm": "short",
                                     "csrf_token": csrf_token_from(form.get_data(True))})
    assert short.status_code == 400 and "Use 10 to 200 characters." in short.get_data(True)
    done = invitee.post(link, data={"password": "a long enough secret", "confirm": "a long enough secret",
                                    "csrf_token": csrf_token_from(form.get_data(True))})
    assert done.status_code == 302
    assert invitee.get(link).status_code == 400  # used once
    assert _post_login(invitee, "tina@brightair.com", "a long enough secret").status_code == 302


def test_admin_changes_a_role_but_never_removes_the_last_admin(app, client, login_staff):
    with app.app_context():
        admin = make_staff("admin")
        office = make_staff("office")
        admin_id, office_id = admin.id, office.id
    login_staff(admin)
    token = csrf_token_from(client.get("/admin/staff").get_data(True))
    client.post(f"/admin/staff/{office_id}/role", data={"role": "technician", "csrf_token": token})
    client.post(f"/admin/staff/{admin_id}/role", data={"role": "office", "csrf_token": token})
    page = client.get("/admin/staff").get_data(True)
    assert "The last active admin cannot lose the admin role." in page
    with app.app_context():
        roles = dict(db.session.execute(select(StaffUser.id, StaffUser.role)).all())
    assert roles == {admin_id: "admin", office_id: "technician"}


def test_create_staff_command(app, runner):
    result = runner.invoke(args=["create-staff", "--email", "boss@brightair.test", "--name", "Boss",
                                 "--role", "admin", "--password", "a long enough secret"])
    assert result.exit_code == 0, result.output
    assert "Created admin boss@brightair.test" in result.output
    client = app.test_client()
    assert _post_login(client, "boss@brightair.test", "a long enough secret").status_code == 302
    again = runner.invoke(args=["create-staff", "--email", "boss@brightair.test", "--name", "Boss",
                                "--role", "admin", "--password", "a long enough secret"])
    assert again.exit_code != 0 and "already exists" in again.output



def test_bad_invitations_get_a_message_and_create_nothing(app, client, login_staff):
    with app.app_context():
        admin = make_staff("admin", email="owner@brightair.com")
    login_staff(admin)
    cases = [({"name": "", "email": "x@brightair.com"}, "Enter a name."),
             ({"name": "X", "email": "not-an-email"}, "Enter a valid email address."),
             ({"name": "X", "email": "owner@brightair.com"}, "A staff account with this email already exists."),
             ({"name": "X" * 121, "email": "x@brightair.com"}, "Field cannot be longer than 120 characters."),
             ({"name": "X", "email": "x@brightair.com", "role": "emperor"}, "Not a valid choice")]
    for data, message in cases:
        token = csrf_token_from(client.get("/admin/staff").get_data(True))
        r = client.post("/admin/staff", data={"role": "office", **data, "csrf_token": token})
        assert r.status_code == 400 and message in r.get_data(True), message
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(StaffUser)) == 1


def test_jobs_run_rejects_a_malformed_as_of(runner):
    result = runner.invoke(args=["jobs", "run", "--as-of", "next tuesday"])
    assert result.exit_code == 2 and "use an ISO date" in result.output
