"""N-2, N-3: queued in the transaction, delivered after commit, never lost."""
from sqlalchemy import select

from portal.extensions import db
from portal.models import ActivityEvent, Customer, QueuedEmail
from portal.services.platform import mailer
from tests.factories import make_customer, make_staff
from tests.helpers import csrf_token_from


def test_smtp_outage_keeps_the_action_and_the_email_then_the_job_runner_delivers_once(
        app, client, login_staff, smtp, runner):
    with app.app_context():
        customer = make_customer("Ana", email="ana@example.com")
        staff = make_staff("office")
    login_staff(staff)
    page = client.get(f"/admin/customers/{customer.id}").get_data(True)

    smtp.stop()
    r = client.post(f"/admin/customers/{customer.id}/portal-invitation", data={"csrf_token": csrf_token_from(page)})
    assert r.status_code == 302  # the action is not broken by the outage
    with app.app_context():
        [email] = db.session.scalars(select(QueuedEmail)).all()
        assert email.status == "queued" and email.attempts == 1
        assert "Connection refused" in email.last_error or "Errno" in email.last_error
        assert db.session.scalar(select(ActivityEvent).where(ActivityEvent.summary.like("Portal invitation%")))
    outbox = client.get("/admin/outbox").get_data(True)
    assert "queued" in outbox and "ana@example.com" in outbox

    smtp.start()
    result = runner.invoke(args=["jobs", "run", "--as-of", "2099-01-01T00:00"])  # past the retry time
    assert result.exit_code == 0, result.output
    assert len(smtp.to("ana@example.com")) == 1
    runner.invoke(args=["jobs", "run", "--as-of", "2099-01-02T00:00"])
    assert len(smtp.to("ana@example.com")) == 1  # exactly once
    with app.app_context():
        email = db.session.scalars(select(QueuedEmail)).one()
        assert email.status == "sent" and email.last_error is None and email.attempts == 2


def test_a_rolled_back_action_sends_no_email(app, smtp):
    with app.app_context():
        customer = make_customer(email="ana@example.com")
        with app.test_request_context():
            mailer.queue_email("portal_login_link", "ana@example.com", {"link": "http://x/"},
                               customer=db.session.get(Customer, customer.id))
            db.session.rollback()
            assert mailer.deliver_pending() == {"sent": 0, "failed": 0, "console": 0}
    assert smtp.messages == []


def test_each_email_has_text_and_html_in_the_customers_language(app, smtp):
    with app.app_context():
        customer = make_customer("Olga", email="olga@example.com", language="ru")
        mailer.queue_email("portal_login_link", "olga@example.com", {"link": "http://portal.test/portal/magic/x"},
                           customer=db.session.get(Customer, customer.id))
        db.session.commit()
        mailer.deliver_pending()
    [msg] = smtp.to("olga@example.com")
    assert "http://portal.test/portal/magic/x" in smtp.text(msg)
    assert "http://portal.test/portal/magic/x" in smtp.html(msg)


def test_without_smtp_settings_emails_stay_in_the_outbox_and_print_to_the_console(app, capsys, client, login_staff):
    with app.app_context():
        customer = make_customer(email="ana@example.com")
        staff = make_staff("admin")
    server = app.config["MAIL_SERVER"]
    app.config["MAIL_SERVER"] = None
    try:
        with app.app_context():
            mailer.queue_email("portal_login_link", "ana@example.com", {"link": "http://portal.test/portal/magic/x"},
                               customer=db.session.get(Customer, customer.id))
            db.session.commit()
            assert mailer.deliver_pending()["console"] == 1
    finally:
        app.config["MAIL_SERVER"] = server
    assert "http://portal.test/portal/magic/x" in capsys.readouterr().out
    login_staff(staff)
    with app.app_context():
        email_id = db.session.scalar(select(QueuedEmail.id))
    page = client.get(f"/admin/outbox/{email_id}").get_data(True)
    assert '<a href="http://portal.test/portal/magic/x"' in page  # clickable from the outbox
    assert "console" in page


def test_two_runners_never_send_the_same_email_twice(app, smtp):
    with app.app_context():
        customer = make_customer(email="ana@example.com")
        mailer.queue_email("portal_login_link", "ana@example.com", {"link": "http://x/"},
                           customer=db.session.get(Customer, customer.id))
        db.session.commit()
        ids = mailer.due_email_ids()
    # Both runners saw the same due email; only one may claim it.
    with app.app_context():
        first = mailer.deliver(ids)
    with app.app_context():
        second = mailer.deliver(ids)
    assert first["sent"] == 1 and second["sent"] == 0
    assert len(smtp.to("ana@example.com")) == 1
