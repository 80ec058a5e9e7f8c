"""Issue 15 on PostgreSQL only: statements stay prepared from one request to the next (portal/prepared.py), and a
request that wrote anything still ends with a rollback."""

from __future__ import annotations

import pytest
from sqlalchemy import select, text, update

from portal.extensions import db, execute_dml
from tests.factories import make_customer, make_staff


def _prepared_statements() -> list[str]:
    """The statements prepared on the connection the next application context gets (the pool holds one)."""
    with db.engine.connect() as conn:
        return list(conn.execute(text("SELECT statement FROM pg_prepared_statements")).scalars())


def test_a_pages_statements_stay_prepared_across_requests(app, client, login_staff):
    """The client card viewed again and again on one connection: its queries become prepared statements (psycopg
    prepares a statement on its fifth run) and stay prepared, so PostgreSQL stops parsing and planning them.
    Ending every request with a rollback, psycopg forgot them each time and nothing was ever prepared."""
    from portal.models import Customer

    with app.app_context():
        admin = make_staff("admin")
        customer = make_customer("Prep", "Ared")
        db.session.commit()
        db.engine.dispose()  # one connection from here on: each request gets the one the last one used
    login_staff(admin)
    for _ in range(7):
        assert client.get(f"/admin/customers/{customer.id}").status_code == 200
    with app.app_context():
        prepared = _prepared_statements()
    assert any("FROM customers" in s for s in prepared)
    assert any("FROM payments" in s and "sum(" in s for s in prepared)  # the card's figures
    assert len(prepared) >= 10

    with app.app_context():  # the same through plain application contexts (jobs, the CLI)
        db.engine.dispose()
    for _ in range(6):
        with app.app_context():
            assert db.session.scalars(select(Customer).where(Customer.last_name == "Ared")).one().id == customer.id
    with app.app_context():
        assert any("customers.last_name = " in s for s in _prepared_statements())


def test_a_request_that_wrote_anything_still_ends_with_a_rollback(app):
    """Only a transaction that wrote nothing ends with COMMIT: an UPDATE, a data-modifying WITH, a flushed insert,
    a dirty or pending object, a write through the driver's own connection and an error all end as before, and
    nothing they did stays."""
    from portal.models import Customer

    with app.app_context():
        customer = make_customer("Keep", "Me")
        db.session.commit()
        cid = customer.id
    with app.app_context():
        execute_dml(update(Customer).where(Customer.id == cid).values(first_name="Updated"))
    with app.app_context():
        db.session.execute(text("WITH changed AS (UPDATE customers SET last_name = 'Changed' WHERE id = :id "
                                "RETURNING 1) SELECT count(*) FROM changed"), {"id": cid}).scalar_one()
    with app.app_context():
        db.session.get(Customer, cid)
        db.session.add(Customer(first_name="Flushed", last_name="Row", status="active", preferred_language="en"))
        db.session.flush()
    with app.app_context():
        db.session.get(Customer, cid).first_name = "Dirty"  # changed, never flushed
    with app.app_context():
        db.session.get(Customer, cid)
        db.session.add(Customer(first_name="Pending", last_name="Row", status="active", preferred_language="en"))
    with app.app_context():  # a write SQLAlchemy never saw: the server gave the transaction an id
        db.session.get(Customer, cid)
        db.session.connection().connection.driver_connection.execute(
            "UPDATE customers SET first_name = 'Raw' WHERE id = %s", (cid,))
    with pytest.raises(RuntimeError), app.app_context():
        db.session.get(Customer, cid)
        raise RuntimeError("the view failed")
    with app.app_context():
        row = db.session.get(Customer, cid)
        assert (row.first_name, row.last_name) == ("Keep", "Me")
        assert db.session.scalar(select(Customer).where(Customer.last_name == "Row")) is None
