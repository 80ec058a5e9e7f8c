"""Q-2: with no Stripe keys the gateway talks to the local sandbox over HTTP."""
import requests

from portal.extensions import db
from portal.models import Customer
from portal.services.payments import gateway
from tests.factories import make_customer


def test_stripe_customer_is_created_lazily_in_the_sandbox_and_kept(app, stripe_sandbox):
    with app.app_context():
        customer = db.session.get(Customer, make_customer("Ana", "Diaz", email="ana@example.com").id)
        assert gateway.using_sandbox()
        assert customer.stripe_customer_id is None
        stripe_id = gateway.ensure_customer(customer)
        db.session.commit()
        assert gateway.ensure_customer(customer) == stripe_id  # kept, not created twice
        fetched = gateway.retrieve_customer(stripe_id)
    assert fetched.email == "ana@example.com" and fetched.metadata["portal_customer_id"] == str(customer.id)
    listed = requests.get(f"{stripe_sandbox['url']}/v1/customers", headers={"Authorization": "Bearer sk_test_x"},
                          timeout=5).json()
    assert [c["id"] for c in listed["data"]] == [stripe_id]


def test_real_stripe_is_chosen_when_keys_are_configured(app):
    with app.app_context():
        app.config["STRIPE_SECRET_KEY"] = "sk_test_configured"
        try:
            assert not gateway.using_sandbox()
            assert gateway.stripe_js_url() == "https://js.stripe.com/v3/"
        finally:
            app.config["STRIPE_SECRET_KEY"] = None
        assert gateway.stripe_js_url().endswith("/js.stripe.com/v3/")
        assert gateway.stripe_js_url().startswith("http://127.0.0.1:")


def test_the_sandbox_listens_on_loopback_only(stripe_sandbox):
    """localstripe's own CLI binds every interface; ours must answer on 127.0.0.1 alone."""
    port = stripe_sandbox["port"]
    listening = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as f:
            for line in f.readlines()[1:]:
                local, state = line.split()[1], line.split()[3]
                address, hexport = local.rsplit(":", 1)
                if state == "0A" and int(hexport, 16) == port:
                    listening.add(address)
    assert listening == {"0100007F"}  # 127.0.0.1, and nothing on 0.0.0.0 or ::


def test_sandbox_serves_the_fake_stripe_js(stripe_sandbox):
    r = requests.get(f"{stripe_sandbox['url']}/js.stripe.com/v3/", timeout=5)
    assert r.status_code == 200 and "confirmCardSetup" in r.text
