"""The demo business for `make run`: staff, customers, jobs, visits, estimates, invoices,
a plan with a failed payment."""
from __future__ import annotations

import random
from datetime import datetime, time, timedelta

from sqlalchemy import select
from werkzeug.security import generate_password_hash

from portal import clock
from portal.extensions import db
from portal.models import (
    ActivityEvent,
    Address,
    ContactLog,
    ContactTask,
    Customer,
    CustomerEmail,
    CustomerNote,
    CustomerPhone,
    CustomerPlan,
    CustomFieldDefinition,
    CustomFieldValue,
    Estimate,
    EstimateLineItem,
    Invoice,
    InvoiceLineItem,
    Job,
    JobLineItem,
    Payment,
    PaymentAllocation,
    PlanPayment,
    PlanPaymentLine,
    PlanTemplate,
    StaffUser,
    Tag,
    Visit,
)
from portal.services.platform import settings

DEMO_ADMIN_EMAIL = "owner@demo.test"
DEMO_PASSWORD = "demo-password-1"
DEMO_CUSTOMER_EMAIL = "maria.lopez@example.com"

FIRST = ["Maria", "James", "Olga", "Chen", "Priya", "Lucas", "Amara", "Noah", "Sofia", "Ivan", "Grace", "Mateo",
         "Hannah", "Omar", "Elena", "Daniel", "Aisha", "Liam", "Yuki", "Carlos", "Nina", "Samuel", "Zoe", "Pedro",
         "Irina", "Ethan", "Leila", "Tom"]
LAST = ["Lopez", "Carter", "Petrova", "Wei", "Nair", "Silva", "Okafor", "Brooks", "Garcia", "Smirnov", "Kim",
        "Torres", "Weber", "Haddad", "Popova", "Reyes", "Bello", "Murphy", "Tanaka", "Ruiz", "Volkova", "Adams",
        "Clarke", "Alves", "Sokolova", "Hughes", "Farah", "Baker"]
STREETS = ["Oak St", "Maple Ave", "Cedar Ln", "Pine Rd", "Elm Dr", "Birch Ct", "Willow Way", "Sunset Blvd"]
SERVICES = [("AC tune-up", 12900), ("Furnace inspection", 9900), ("Filter replacement", 4500),
            ("Duct cleaning", 34900), ("Thermostat install", 18900), ("Water heater flush", 11900),
            ("Emergency call-out", 15000), ("Refrigerant recharge", 22000)]


def demo_customer() -> Customer | None:
    return db.session.scalars(select(Customer).join(CustomerEmail)
                              .where(CustomerEmail.email == DEMO_CUSTOMER_EMAIL)).first()


def seed() -> None:
    rng = random.Random(42)
    now = clock.now()
    today = clock.today()
    biz = settings.ensure()
    biz.name = "Bright Air Heating & Cooling"
    biz.email = "office@brightair.example"
    biz.phone = "(555) 010-2030"
    biz.address = "400 Market St, Springfield"

    owner = _staff(DEMO_ADMIN_EMAIL, "Olivia Owner", "admin")
    office = _staff("frank.office@demo.test", "Frank Office", "office")
    tech = _staff("tina.tech@demo.test", "Tina Technician", "technician")
    managers = [owner, office]

    tags = {name: Tag(name=name) for name in ("VIP", "maintenance plan", "commercial", "referral", "pets")}
    db.session.add_all(tags.values())

    statuses = ["active"] * 18 + ["lead"] * 5 + ["inactive"] * 3 + ["archived", "blacklisted"]
    customers: list[Customer] = []
    for i, status in enumerate(statuses):
        first, last = FIRST[i], LAST[i]
        business = i in (6, 13)
        c = Customer(kind="business" if business else "individual", first_name=first, last_name=last,
                     company_name=f"{last} Dental Clinic" if business else None, status=status,
                     blacklist_reason="Repeated no-shows and abusive calls" if status == "blacklisted" else None,
                     archived_at=now - timedelta(days=40) if status == "archived" else None,
                     category=rng.choice(["A", "B", "C", "VIP", None]),
                     preferred_language=rng.choice(["en"] * 6 + ["es", "ru"]),
                     discount_bp=rng.choice([0, 0, 0, 500, 1000]), lead_source=rng.choice(
                         ["Google", "Referral", "Yelp", "Door hanger", None]),
                     manager=managers[i % 2], created_at=now - timedelta(days=rng.randint(5, 700)))
        email = DEMO_CUSTOMER_EMAIL if i == 0 else f"{first}.{last}@example.com".lower()
        c.emails.append(CustomerEmail(email=email, is_primary=True))
        c.phones.append(CustomerPhone(number=f"(555) {rng.randint(200, 899)}-{rng.randint(1000, 9999)}",
                                      kind="mobile"))
        c.addresses.append(Address(kind="service", line1=f"{rng.randint(10, 999)} {rng.choice(STREETS)}",
                                   city="Springfield", region="CA", postal_code=f"9{rng.randint(1000, 9999)}"))
        c.tags = rng.sample(list(tags.values()), k=rng.randint(0, 2))
        db.session.add(c)
        customers.append(c)
    customers[0].tags = [tags["maintenance plan"], tags["VIP"]]
    db.session.flush()

    for c in customers[:10]:
        db.session.add(CustomerNote(customer_id=c.id, author_id=owner.id,
                                    body=rng.choice(["Gate code 4512. Dog in the yard.", "Prefers morning visits.",
                                                     "Ask for the side entrance.", "Pays promptly."])))
        db.session.add(ContactLog(customer_id=c.id, staff_id=office.id, channel=rng.choice(["call", "email", "sms"]),
                                  outcome="Confirmed next visit.",
                                  contacted_at=now - timedelta(days=rng.randint(1, 30))))
    for c in customers[1:6]:
        db.session.add(ContactTask(customer_id=c.id, assignee_id=owner.id if c.id % 2 else office.id,
                                   due_at=now + timedelta(days=rng.randint(-5, 10)), note="Follow up on the estimate."))

    numbers = {"job": 0, "invoice": 1000, "estimate": 0}
    for idx, c in enumerate(customers[:20]):
        for j in range(rng.randint(1, 3)):
            numbers["job"] += 1
            desc, price = rng.choice(SERVICES)
            finished = (j > 0 or idx % 3 == 0) and not (idx == 0 and j == 0)  # Maria has a visit coming up
            start_day = (today - timedelta(days=rng.randint(3, 90)) if finished
                         else today + timedelta(days=rng.randint(1, 21)))
            start = datetime.combine(start_day, time(rng.choice([8, 10, 13, 15]))).replace(tzinfo=clock.business_tz())
            job = Job(customer_id=c.id, number=f"J-{numbers['job']:04d}", title=desc,
                      address=c.address_of("service").one_line(), technician_id=tech.id,
                      status="finished" if finished else "scheduled",
                      finished_at=start + timedelta(hours=2) if finished else None)
            job.line_items.append(JobLineItem(description=desc, quantity=1, unit_price_cents=price))
            job.visits.append(Visit(starts_at=start, ends_at=start + timedelta(hours=2), technician_id=tech.id,
                                    status="completed" if finished else "scheduled"))
            db.session.add(job)
            if finished:
                numbers["invoice"] += 1
                paid = rng.random() < 0.5
                due = start_day + timedelta(days=14)
                inv = Invoice(customer_id=c.id, number=f"INV-{numbers['invoice']}",
                              status="paid" if paid else "open", issue_date=start_day, due_date=due,
                              subtotal_cents=price, total_cents=price, paid_cents=price if paid else 0,
                              sent_at=start + timedelta(hours=3), last_sent_at=start + timedelta(hours=3),
                              reminder_anchor_date=due)
                inv.line_items.append(InvoiceLineItem(description=desc, quantity=1, unit_price_cents=price))
                inv.jobs.append(job)
                db.session.add(inv)
                if paid:  # paid by check or cash on site: a real payment row, so reports add up
                    db.session.flush()
                    method = "check" if numbers["invoice"] % 2 else "cash"
                    pay = Payment(customer_id=c.id, kind="payment", method=method, status="succeeded",
                                  amount_cents=price, fee_cents=0, net_cents=price, refunded_cents=0,
                                  allocated_cents=price,
                                  reference=f"{4100 + numbers['invoice']}" if method == "check" else None,
                                  recorded_by_id=office.id, received_at=start + timedelta(hours=4),
                                  created_at=start + timedelta(hours=4))
                    pay.allocations.append(PaymentAllocation(invoice_id=inv.id, amount_cents=price))
                    db.session.add(pay)
        if idx % 4 == 0:
            numbers["estimate"] += 1
            est = Estimate(customer_id=c.id, number=f"E-{numbers['estimate']:04d}", title="New heat pump system",
                           status="sent", sent_at=now - timedelta(days=2), deposit_cents=50000,
                           valid_until=today + timedelta(days=30))
            est.line_items.append(EstimateLineItem(description="Heat pump, 3 ton, installed", quantity=1,
                                                   unit_price_cents=689000))
            est.line_items.append(EstimateLineItem(description="Permit and haul-away", quantity=1,
                                                   unit_price_cents=35000))
            db.session.add(est)
    biz.next_job_number = numbers["job"] + 1
    biz.next_invoice_number = numbers["invoice"] + 1
    biz.next_estimate_number = numbers["estimate"] + 1

    template = PlanTemplate(name="Comfort Club", description="Two tune-ups a year, priority service, 15% off repairs.",
                            visits_per_year=2, price_monthly_cents=1999, price_quarterly_cents=5799,
                            price_yearly_cents=21900)
    db.session.add(template)
    db.session.flush()
    from portal.services.plans.billing import add_period

    last_due = today - timedelta(days=5)
    first_due = add_period(last_due, "monthly", last_due.day, -2)
    plan = CustomerPlan(customer_id=customers[0].id, template_id=template.id, name=template.name, status="active",
                        description=template.description, visits_per_year=2, price_monthly_cents=1999,
                        price_quarterly_cents=5799, price_yearly_cents=21900,
                        offered_frequencies="monthly,quarterly,yearly", frequency="monthly", price_cents=1999,
                        payment_method="card", start_date=first_due, billing_anchor_day=last_due.day,
                        accepted_at=now - timedelta(days=(today - first_due).days), sent_at=now - timedelta(days=70),
                        next_billing_date=add_period(last_due, "monthly", last_due.day))
    db.session.add(plan)
    db.session.flush()
    for months_ago, status in ((2, "paid"), (1, "paid"), (0, "failed")):
        due = add_period(last_due, "monthly", last_due.day, -months_ago)
        pp = PlanPayment(plan_id=plan.id, due_date=due, amount_cents=1999, status=status, method="card",
                         attempt_count=1, is_first_payment=months_ago == 2)
        pp.lines.append(PlanPaymentLine(description="Comfort Club (Monthly)", amount_cents=1999))
        if status == "failed":
            pp.failure_code = "insufficient_funds"
            pp.failure_message = "The card does not have enough funds for this amount."
            pp.first_failed_at = now - timedelta(days=5)
            pp.attempt_count = 4
            pp.retries_exhausted = True
        db.session.add(pp)
        db.session.flush()
        if status == "paid":  # collected by check, so the ledger and reports add up
            paid = Payment(customer_id=customers[0].id, kind="payment", method="check", status="succeeded",
                           amount_cents=1999, fee_cents=0, net_cents=1999, refunded_cents=0,
                           allocated_cents=1999, reference=str(4100 + months_ago),
                           received_at=datetime.combine(due, time(15), now.tzinfo))
            db.session.add(paid)
            db.session.flush()
            pp.payment_id = paid.id
            pp.method = "check"
            db.session.add(PaymentAllocation(payment_id=paid.id, plan_payment_id=pp.id, amount_cents=1999))
    # A second plan waiting for "Pay and accept" in the demo customer's portal (SP-3).
    duct = CustomerPlan(customer_id=customers[0].id, name="Clean Air Duct Plan", status="pending",
                        description="Yearly duct cleaning and filter changes.", visits_per_year=1,
                        price_quarterly_cents=4500, price_yearly_cents=16500,
                        offered_frequencies="quarterly,yearly", payment_method="card", sent_at=now - timedelta(days=1))
    db.session.add(duct)
    db.session.add(ActivityEvent(customer_id=customers[0].id, event_type="failure", plan_id=plan.id,
                                 summary="Comfort Club payment of $19.99 failed: insufficient funds.",
                                 created_at=now - timedelta(days=5)))
    for c in customers:
        db.session.add(ActivityEvent(customer_id=c.id, event_type="customer", summary="Customer created.",
                                     created_at=c.created_at))
    # INV-3, INV-6: monthly automatic invoicing for the second customer (work finished from now on is emailed on
    # the 1st); AutoPay switched on for the business (customers are enrolled on their card once they have a card).
    customers[1].auto_invoice_cadence = "monthly"
    customers[1].auto_invoice_enabled_at = now
    customers[1].auto_invoice_last_run_on = today
    biz.autopay_enabled = True

    gate = CustomFieldDefinition(label="Gate code", field_type="text", position=1)
    age = CustomFieldDefinition(label="Equipment age (years)", field_type="number", position=2)
    contact = CustomFieldDefinition(label="Preferred contact", field_type="list", options="Phone\nText\nEmail",
                                    position=3)
    db.session.add_all([gate, age, contact])
    db.session.flush()
    for i, c in enumerate(customers[:6]):
        db.session.add_all([CustomFieldValue(customer_id=c.id, field_id=gate.id, value=f"#{1200 + i * 7}"),
                            CustomFieldValue(customer_id=c.id, field_id=age.id, value=str(3 + i * 2)),
                            CustomFieldValue(customer_id=c.id, field_id=contact.id,
                                             value=("Phone", "Text", "Email")[i % 3])])


def _staff(email: str, name: str, role: str) -> StaffUser:
    user = StaffUser(email=email, name=name, role=role, is_active_account=True,
                     password_hash=generate_password_hash(DEMO_PASSWORD))
    db.session.add(user)
    return user
