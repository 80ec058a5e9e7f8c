"""P-8: a customer's service plans as the portal shows them (paying and accepting come with SP-3)."""
from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import selectinload

from portal.extensions import db
from portal.models import Customer, CustomerPlan, Job, PlanPayment, Visit
from portal.services.errors import found

VISIBLE = ("pending", "active", "cancelled", "expired")
OUTSTANDING = ("failed", "overdue")


def for_customer(customer: Customer) -> list[CustomerPlan]:
    return list(db.session.scalars(select(CustomerPlan).where(CustomerPlan.customer_id == customer.id,
                                                              CustomerPlan.status.in_(VISIBLE))
                                   .options(selectinload(CustomerPlan.card), selectinload(CustomerPlan.payments))
                                   .order_by(CustomerPlan.created_at.desc())))


def plan_of(customer: Customer, plan_id: int) -> CustomerPlan:
    """One of the customer's plans they may see, or NotFound."""
    return found(db.session.scalars(select(CustomerPlan).where(CustomerPlan.id == plan_id,
                                                               CustomerPlan.customer_id == customer.id,
                                                               CustomerPlan.status.in_(VISIBLE))).first(),
                 "Plan not found.")


@dataclass
class PlanDetail:
    plan: CustomerPlan
    payments: list[PlanPayment]
    visits: list[Visit]

    @property
    def outstanding_cents(self) -> int:
        return sum(p.amount_cents for p in self.payments if p.status in OUTSTANDING)


def detail(plan: CustomerPlan) -> PlanDetail:
    payments = db.session.scalars(select(PlanPayment).where(PlanPayment.plan_id == plan.id)
                                  .options(selectinload(PlanPayment.card))
                                  .order_by(PlanPayment.due_date.desc())).all()
    visits = db.session.scalars(select(Visit).join(Job)
                                .where(Job.plan_id == plan.id, Job.customer_id == plan.customer_id)
                                .options(selectinload(Visit.technician), selectinload(Visit.job))
                                .order_by(Visit.starts_at.desc())).all()
    return PlanDetail(plan, list(payments), list(visits))
