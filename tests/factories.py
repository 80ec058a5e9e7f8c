"""Callable factories (ARCHITECTURE rule 10). Each adds, commits and returns the object; call inside an app context."""
from __future__ import annotations

import itertools

from werkzeug.security import generate_password_hash

from portal.extensions import db
from portal.models import Address, Customer, CustomerEmail, CustomerPhone, StaffUser

PASSWORD = "correct horse battery"
_seq = itertools.count(1)
# One cheap hash for every factory user: the KDF is the slow part of a test otherwise.
_HASH = generate_password_hash(PASSWORD, method="pbkdf2:sha256:1000")


def _detached(obj, *relationships):
    """Commit, load what tests read, and detach: the object stays readable after its app context ends."""
    db.session.commit()
    db.session.refresh(obj)
    for name in relationships:
        getattr(obj, name)
    db.session.expunge(obj)
    return obj


def make_staff(role: str = "admin", email: str | None = None, name: str | None = None, active: bool = True,
               password_hash: str | None = _HASH) -> StaffUser:
    n = next(_seq)
    user = StaffUser(email=email or f"staff{n}@brightair.test", name=name or f"Staff {n}", role=role,
                     password_hash=password_hash, is_active_account=active)
    db.session.add(user)
    return _detached(user)


def make_customer(first_name: str = "Maria", last_name: str | None = None, email: str | None = "auto",
                  status: str = "active", language: str = "en", phone: str | None = "(555) 201-3344",
                  **fields) -> Customer:
    n = next(_seq)
    last_name = last_name or f"Lopez{n}"
    customer = Customer(first_name=first_name, last_name=last_name, status=status, preferred_language=language,
                        **fields)
    if email == "auto":
        email = f"{first_name}.{last_name}@example.com".lower()
    if email:
        customer.emails.append(CustomerEmail(email=email.lower(), is_primary=True))
    if phone:
        customer.phones.append(CustomerPhone(number=phone, kind="mobile"))
    customer.addresses.append(Address(kind="service", line1=f"{n} Oak St", city="Springfield", region="CA",
                                      postal_code="90210"))
    db.session.add(customer)
    return _detached(customer, "emails", "phones", "addresses", "tags")
