"""D-1 … D-7 and SP-14 with the moved clock: retries of failed plan payments, the emails they send (real SMTP),
the charges they make (localstripe sandbox).

The sandbox has no hard-decline test card (it only declines 4000000000000341 with a generic `card_declined`), so
the hard-decline tests put a local HTTP server in front of it that answers exactly as Stripe documents for a
stolen card (HTTP 402, card_error, decline_code `stolen_card`) when a PaymentIntent is created for that one card,
and passes every other request through to the sandbox. The official `stripe` library parses that answer.
"""
from __future__ import annotations

import itertools
import json
import re
from datetime import date, datetime, timedelta
from types import SimpleNamespace
from urllib.parse import parse_qs, urlparse
from zoneinfo import ZoneInfo

import pytest
import requests
from sqlalchemy import func, select
from werkzeug.wrappers import Request, Response

from portal import clock
from portal.extensions import db
from portal.models import Card, ChargeAttempt, CustomerPlan, PlanPayment
from portal.services.payments import declines
from portal.services.plans import billing as plan_billing
from tests.factories import make_active_plan, make_card, make_customer, make_staff
from tests.helpers import run_jobs_at, sandbox_intents

LA = ZoneInfo("America/Los_Angeles")  # the business time zone (config default)
PRICE = 3_000
GOOD, DECLINED = "4242424242424242", "4000000000000341"
T0 = datetime(2026, 3, 2, 10, 0, tzinfo=LA)  # the due date's job run; retries are counted from here
FAILED_SUBJECT = "did not go through"


# --- helpers -----------------------------------------------------------------------------------------------

def row_of(plan_id: int) -> PlanPayment:
    (row,) = db.session.scalars(select(PlanPayment).where(PlanPayment.plan_id == plan_id)
                                .execution_options(populate_existing=True)).all()
    return row


def fresh_plan(plan_id: int) -> CustomerPlan:
    return db.session.scalars(select(CustomerPlan).where(CustomerPlan.id == plan_id)
                              .execution_options(populate_existing=True)).one()


def active_card_plan(customer, card, first_due: date, price: int = PRICE) -> CustomerPlan:
    return make_active_plan(customer, card, first_due, price)


def people(tag: str, card_number: str = DECLINED):
    """A customer managed by a staff member (so staff emails go to that manager), with one card, at T0 - 1 day."""
    clock.set_now(T0 - timedelta(days=1))
    manager = make_staff("office", email=f"manager.{tag}@brightair.test")
    customer = make_customer("Lu", tag.title(), email=f"lu.{tag}@example.com", manager_id=manager.id)
    card = make_card(customer.id, card_number)
    return SimpleNamespace(customer=customer, email=customer.primary_email, manager=manager.email, card=card)


def customer_failures(smtp, who) -> list:
    return [m for m in smtp.to(who.email) if FAILED_SUBJECT in str(m["Subject"])]


def staff_failures(smtp, who) -> list:
    return [m for m in smtp.to(who.manager) if str(m["Subject"]).startswith("Plan payment")]


# --- soft declines (D-1, D-3, SP-14) ------------------------------------------------------------------------

def test_soft_decline_is_retried_at_24_48_72_hours_then_retries_are_exhausted(app, stripe_sandbox, smtp, client):
    with app.app_context():
        who = people("soft")
        plan = active_card_plan(who.customer, who.card, T0.date())

        run_jobs_at(T0)
        row = row_of(plan.id)
        assert (row.status, row.failure_code, row.attempt_count) == ("failed", "card_declined", 1)
        assert row.first_failed_at == T0 and row.next_retry_at == T0 + timedelta(hours=24)
        assert not row.retries_exhausted
        assert len(sandbox_intents()) == 1
        assert (len(customer_failures(smtp, who)), len(staff_failures(smtp, who))) == (1, 1)
        first_mail = smtp.text(customer_failures(smtp, who)[0])
        assert declines.explain("card_declined").reason in first_mail
        assert "We will try again on Mar 3, 2026" in first_mail
        assert "Reason: " + declines.explain("card_declined").reason in smtp.text(staff_failures(smtp, who)[0])
        link = next(word for word in first_mail.split() if "/portal/magic/" in word)

        for n, hours in enumerate((24, 48, 72), start=2):
            run_jobs_at(T0 + timedelta(hours=hours) - timedelta(minutes=1))  # a minute early: nothing happens
            assert len(sandbox_intents()) == n - 1 and row_of(plan.id).attempt_count == n - 1, hours
            assert len(customer_failures(smtp, who)) == n - 1

            run_jobs_at(T0 + timedelta(hours=hours))  # on the dot: the retry
            row = row_of(plan.id)
            assert len(sandbox_intents()) == n and row.attempt_count == n, hours
            assert row.status == "failed" and row.first_failed_at == T0
            assert (len(customer_failures(smtp, who)), len(staff_failures(smtp, who))) == (n, n), hours
            if hours < 72:
                assert row.next_retry_at == T0 + timedelta(hours=hours + 24) and not row.retries_exhausted
            else:
                assert row.next_retry_at is None and row.retries_exhausted

        last_staff = staff_failures(smtp, who)[-1]
        assert "retries exhausted" in str(last_staff["Subject"])
        assert smtp.text(last_staff).startswith("Retries exhausted")
        assert all("retries exhausted" not in str(m["Subject"]) for m in staff_failures(smtp, who)[:-1])
        assert "We will not try this card again" in smtp.text(customer_failures(smtp, who)[-1])

        for hours in (96, 24 * 10):  # no fourth retry
            run_jobs_at(T0 + timedelta(hours=hours))
        assert len(sandbox_intents()) == 4 and len(customer_failures(smtp, who)) == 4
        pis = sandbox_intents()
        assert {pi["payment_method"] for pi in pis} == {who.card.stripe_payment_method_id}
        assert {pi["status"] for pi in pis} == {"requires_payment_method"}
        assert sorted(pi["metadata"]["attempt_key"] for pi in pis) == [f"plan_{row.id}_{n}" for n in (1, 2, 3, 4)]
        # every customer email carries the update-card link
        assert all("/portal/magic/" in smtp.text(m) for m in customer_failures(smtp, who))
        plan_id = plan.id

    clock.set_now(T0 + timedelta(hours=1))  # the customer opens the first email's link (valid for days)
    r = client.get(urlparse(link).path)
    assert r.status_code == 302 and r.headers["Location"].endswith(f"/portal/plans/{plan_id}/card")


def test_retries_count_from_the_first_failure_when_the_runner_was_down(ctx, stripe_sandbox, smtp):
    """D-1: a runner down for two days makes one retry when it comes back, not a burst, and the schedule stays
    anchored on the first failure."""
    who = people("down")
    plan = active_card_plan(who.customer, who.card, T0.date())
    run_jobs_at(T0)
    run_jobs_at(T0 + timedelta(hours=50))
    row = row_of(plan.id)
    assert len(sandbox_intents()) == 2 and row.attempt_count == 2
    assert row.next_retry_at == T0 + timedelta(hours=72) and not row.retries_exhausted
    run_jobs_at(T0 + timedelta(hours=72))
    row = row_of(plan.id)
    assert len(sandbox_intents()) == 3 and row.retries_exhausted
    assert len(customer_failures(smtp, who)) == 3


def test_the_retry_schedule_is_configurable(ctx, stripe_sandbox, smtp):
    from portal.services.platform import settings

    settings.ensure().dunning_retry_hours = "6, 30"
    db.session.commit()
    who = people("custom")
    plan = active_card_plan(who.customer, who.card, T0.date())
    run_jobs_at(T0)
    assert row_of(plan.id).next_retry_at == T0 + timedelta(hours=6)
    run_jobs_at(T0 + timedelta(hours=6))
    row = row_of(plan.id)
    assert len(sandbox_intents()) == 2 and row.next_retry_at == T0 + timedelta(hours=30)
    run_jobs_at(T0 + timedelta(hours=24))
    assert len(sandbox_intents()) == 2
    run_jobs_at(T0 + timedelta(hours=30))
    row = row_of(plan.id)
    assert len(sandbox_intents()) == 3 and row.retries_exhausted and row.next_retry_at is None
    run_jobs_at(T0 + timedelta(hours=72))
    assert len(sandbox_intents()) == 3


def test_soft_decline_then_a_new_card_the_retry_uses_the_new_card(ctx, stripe_sandbox, smtp):
    who = people("newcard")
    plan = active_card_plan(who.customer, who.card, T0.date())
    run_jobs_at(T0)
    assert row_of(plan.id).status == "failed"

    clock.set_now(T0 + timedelta(hours=2))
    new = make_card(who.customer.id, GOOD)  # the customer adds a card in the wallet
    assert not new.is_default  # not even the default: it is used because it arrived after the failure

    run_jobs_at(T0 + timedelta(hours=24))
    row = row_of(plan.id)
    assert (row.status, row.card_id, row.attempt_count) == ("paid", new.id, 2)
    assert fresh_plan(plan.id).card_id == new.id
    pis = sorted(sandbox_intents(), key=lambda pi: pi["metadata"]["attempt_key"])
    assert [(pi["payment_method"], pi["status"]) for pi in pis] == [
        (who.card.stripe_payment_method_id, "requires_payment_method"), (new.stripe_payment_method_id, "succeeded")]
    assert pis[1]["amount"] == PRICE
    assert len(customer_failures(smtp, who)) == 1  # only the first failure
    assert any("receipt" in str(m["Subject"]).lower() for m in smtp.to(who.email))

    run_jobs_at(T0 + timedelta(hours=48))
    assert len(sandbox_intents()) == 2


def test_running_the_job_twice_in_the_same_minute_sends_and_charges_nothing_twice(ctx, stripe_sandbox, smtp):
    who = people("twice")
    plan = active_card_plan(who.customer, who.card, T0.date())
    for moment in (T0, T0 + timedelta(hours=24)):
        run_jobs_at(moment)
        seen = (len(sandbox_intents()), len(smtp.messages), row_of(plan.id).attempt_count)
        run_jobs_at(moment + timedelta(seconds=30))
        run_jobs_at(moment + timedelta(seconds=59))
        assert (len(sandbox_intents()), len(smtp.messages), row_of(plan.id).attempt_count) == seen
    assert len(sandbox_intents()) == 2
    assert (len(customer_failures(smtp, who)), len(staff_failures(smtp, who))) == (2, 2)
    assert db.session.scalar(select(func.count()).select_from(ChargeAttempt)) == 2


# --- hard declines (D-2) -----------------------------------------------------------------------------------

@pytest.fixture
def stripe_front(app, stripe_sandbox, httpserver):
    """The sandbox behind a local server that declines PaymentIntents for the payment methods in `hard` the way
    Stripe does (402 card_error with a decline_code). `creates` lists every PaymentIntent create it saw."""
    state = SimpleNamespace(hard={}, creates=[])
    numbers = itertools.count(1)

    def handler(request: Request) -> Response:
        raw = request.get_data()
        target = request.path + ("?" + request.query_string.decode() if request.query_string else "")
        if request.method == "POST" and request.path == "/v1/payment_intents":
            form = {k: v[0] for k, v in parse_qs(raw.decode()).items()}
            state.creates.append(form)
            code = state.hard.get(form.get("payment_method"))
            if code:
                pi_id = f"pi_hard_{next(numbers)}"
                body = {"error": {"type": "card_error", "code": "card_declined", "decline_code": code,
                                  "message": "Your card was declined.",
                                  "doc_url": "https://stripe.com/docs/error-codes/card-declined",
                                  "payment_intent": {"id": pi_id, "object": "payment_intent",
                                                     "status": "requires_payment_method",
                                                     "amount": int(form["amount"])}}}
                return Response(json.dumps(body), status=402, content_type="application/json")
        headers = {k: v for k, v in request.headers.items() if k.lower() not in ("host", "content-length")}
        upstream = requests.request(request.method, stripe_sandbox["url"] + target, data=raw, headers=headers,
                                    timeout=10)
        return Response(upstream.content, status=upstream.status_code,
                        content_type=upstream.headers.get("Content-Type", "application/json"))

    httpserver.expect_request(re.compile(r"^/.*")).respond_with_handler(handler)
    saved = app.config.get("STRIPE_API_BASE")
    app.config["STRIPE_API_BASE"] = httpserver.url_for("").rstrip("/")
    try:
        yield state
    finally:
        app.config["STRIPE_API_BASE"] = saved


def _hard_declined_plan(stripe_front, tag, code="stolen_card"):
    who = people(tag)
    stripe_front.hard[who.card.stripe_payment_method_id] = code
    plan = active_card_plan(who.customer, who.card, T0.date())
    run_jobs_at(T0)
    row = row_of(plan.id)
    assert (row.status, row.failure_code) == ("failed", code)
    assert row.failure_message == declines.explain(code).reason
    return who, plan


def _creates_on(stripe_front, card) -> int:
    return sum(form.get("payment_method") == card.stripe_payment_method_id for form in stripe_front.creates)


@pytest.mark.parametrize("code, plain_words", [("stolen_card", "reported stolen"), ("expired_card", "has expired")])
def test_hard_decline_is_not_retried_on_the_same_card_and_the_emails_ask_for_a_new_card(ctx, stripe_front, smtp,
                                                                                       code, plain_words):
    who, plan = _hard_declined_plan(stripe_front, "hard", code)
    assert _creates_on(stripe_front, who.card) == 1
    (mail,) = customer_failures(smtp, who)
    text = smtp.text(mail)
    assert declines.explain(code).reason in text and plain_words in text
    assert "Please add a new card" in text and "We will try again" not in text
    (staff_mail,) = staff_failures(smtp, who)
    assert "only if a new card is added" in smtp.text(staff_mail) and f"({code})" in smtp.text(staff_mail)

    for hours in (24, 48):
        run_jobs_at(T0 + timedelta(hours=hours))
        row = row_of(plan.id)
        assert row.status == "failed" and not row.retries_exhausted, hours
        assert row.next_retry_at == T0 + timedelta(hours=hours + 24)
    assert _creates_on(stripe_front, who.card) == 1 and len(stripe_front.creates) == 1
    assert len(customer_failures(smtp, who)) == 1  # a skipped retry is not another failure

    run_jobs_at(T0 + timedelta(hours=72))
    row = row_of(plan.id)
    assert row.status == "failed" and row.retries_exhausted and row.next_retry_at is None
    assert len(stripe_front.creates) == 1  # the stolen card was never charged again
    assert "retries exhausted" in str(staff_failures(smtp, who)[-1]["Subject"])
    last = smtp.text(customer_failures(smtp, who)[-1])
    assert "Please add a new card" in last and "We will not try this card again" in last
    assert sandbox_intents() == []  # nothing ever reached the sandbox


def test_hard_decline_then_a_new_card_the_next_retry_succeeds_on_it(ctx, stripe_front, smtp):
    who, plan = _hard_declined_plan(stripe_front, "replaced")
    run_jobs_at(T0 + timedelta(hours=24))  # no new card yet: skipped
    assert len(stripe_front.creates) == 1 and row_of(plan.id).status == "failed"

    clock.set_now(T0 + timedelta(hours=30))
    new = make_card(who.customer.id, GOOD)
    run_jobs_at(T0 + timedelta(hours=48) - timedelta(minutes=1))
    assert len(stripe_front.creates) == 1

    run_jobs_at(T0 + timedelta(hours=48))
    row = row_of(plan.id)
    assert (row.status, row.card_id) == ("paid", new.id)
    assert fresh_plan(plan.id).card_id == new.id
    assert _creates_on(stripe_front, who.card) == 1 and _creates_on(stripe_front, new) == 1
    (pi,) = sandbox_intents()
    assert (pi["status"], pi["amount"], pi["payment_method"]) == ("succeeded", PRICE, new.stripe_payment_method_id)
    assert len(customer_failures(smtp, who)) == 1

    run_jobs_at(T0 + timedelta(hours=72))
    assert len(stripe_front.creates) == 2


def test_hard_decline_then_the_plan_card_is_replaced_and_the_new_card_declines_softly_retries_go_on_with_it(
        ctx, stripe_front, smtp):
    """SP-11 then D-2: after a stolen card, the customer picks another card for the plan in the portal; charging it
    at once is declined (a soft decline). The next retries use the plan's new card, never the stolen one."""
    who, plan = _hard_declined_plan(stripe_front, "swapped")
    clock.set_now(T0 + timedelta(hours=2))
    other = make_card(who.customer.id, DECLINED)  # declined with a generic (soft) code by the sandbox
    assert plan_billing.set_card(fresh_plan(plan.id), db.session.get(Card, other.id), actor=None)
    db.session.commit()
    outcome = plan_billing.charge_outstanding(fresh_plan(plan.id), db.session.get(Card, other.id), token=None,
                                              initiated_by="customer")
    assert outcome.status == "failed"
    assert row_of(plan.id).status == "failed" and fresh_plan(plan.id).card_id == other.id
    assert (_creates_on(stripe_front, who.card), _creates_on(stripe_front, other)) == (1, 1)

    run_jobs_at(T0 + timedelta(hours=24))
    assert (_creates_on(stripe_front, who.card), _creates_on(stripe_front, other)) == (1, 2)
    row = row_of(plan.id)
    assert (row.status, row.card_id, row.failure_code) == ("failed", other.id, "card_declined")
    assert row.next_retry_at == T0 + timedelta(hours=48)
    run_jobs_at(T0 + timedelta(hours=48))
    run_jobs_at(T0 + timedelta(hours=72))
    assert (_creates_on(stripe_front, who.card), _creates_on(stripe_front, other)) == (1, 4)
    assert row_of(plan.id).retries_exhausted


# --- D-4 first payments ------------------------------------------------------------------------------------

def test_a_first_payment_never_gets_a_retry(ctx, stripe_sandbox, smtp):
    """A failed first payment whose retry time has come is left alone, while the same row that is not a first
    payment is retried (and succeeds on the good card)."""
    clock.set_now(T0)
    plans = {}
    for first in (True, False):
        c = make_customer("Mo", "First" if first else "Later")
        card = make_card(c.id, GOOD)
        plan = active_card_plan(c, card, date(2026, 4, 2))
        db.session.add(PlanPayment(plan_id=plan.id, due_date=T0.date(), amount_cents=PRICE, status="failed",
                                   method="card", card_id=card.id, failure_code="card_declined",
                                   failure_message="The bank declined the card without giving a reason.",
                                   first_failed_at=T0 - timedelta(hours=25), attempt_count=1,
                                   next_retry_at=T0 - timedelta(hours=1), retries_exhausted=False,
                                   is_first_payment=first))
        db.session.commit()
        plans[first] = plan
    assert plan_billing.next_retry_after(row_of(plans[True].id), T0 - timedelta(hours=25)) is None

    for hours in (0, 24, 48, 72):
        run_jobs_at(T0 + timedelta(hours=hours))
    first_row, later_row = row_of(plans[True].id), row_of(plans[False].id)
    assert (first_row.status, first_row.attempt_count) == ("failed", 1)
    assert (later_row.status, later_row.attempt_count) == ("paid", 2)
    (pi,) = sandbox_intents()
    assert pi["metadata"]["plan_id"] == str(plans[False].id)


# --- D-7 card expiry warnings ------------------------------------------------------------------------------

def test_card_expiring_within_30_days_is_warned_once_and_one_60_days_out_is_not(ctx, stripe_sandbox, smtp):
    today = datetime(2026, 3, 1, 10, 0, tzinfo=LA)
    clock.set_now(today)
    soon = make_customer("Nia", "Soon", email="nia.soon@example.com")
    soon_card = make_card(soon.id, GOOD, exp_month=3, exp_year=2026)  # works through Mar 31: 30 days
    active_card_plan(soon, soon_card, date(2026, 5, 15))
    later = make_customer("Oz", "Later", email="oz.later@example.com")
    later_card = make_card(later.id, GOOD, exp_month=4, exp_year=2026)  # Apr 30: 60 days
    active_card_plan(later, later_card, date(2026, 5, 15))
    idle = make_customer("Pia", "Idle", email="pia.idle@example.com")
    make_card(idle.id, GOOD, exp_month=3, exp_year=2026)  # expiring, but it backs no plan nor AutoPay

    def warnings(address):
        return [m for m in smtp.to(address) if "expires soon" in str(m["Subject"])]

    run_jobs_at(today)
    run_jobs_at(today + timedelta(minutes=1))
    run_jobs_at(today + timedelta(days=1))
    (mail,) = warnings("nia.soon@example.com")
    text = smtp.text(mail)
    assert "Visa •••• 4242" in text and "/portal/magic/" in text
    assert warnings("oz.later@example.com") == [] and warnings("pia.idle@example.com") == []
    assert db.session.get(Card, soon_card.id).expiry_warning_sent_at == today
    assert db.session.get(Card, later_card.id).expiry_warning_sent_at is None

    run_jobs_at(datetime(2026, 3, 31, 10, 0, tzinfo=LA))  # 30 days before Apr 30: now the second card is due
    assert len(warnings("oz.later@example.com")) == 1 and len(warnings("nia.soon@example.com")) == 1
    assert sandbox_intents() == []
