"""The migrations build exactly the models' schema on an empty database; downgrade to base empties it."""
import os
import uuid

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask_migrate import downgrade, upgrade
from sqlalchemy import CheckConstraint, create_engine, inspect, select, text, update
from sqlalchemy.exc import IntegrityError, StatementError

from portal import create_app
from portal.extensions import db
from portal.models import Customer, CustomerPlan, CustomerStatus, PlanStatus
from tests.conftest import BACKEND


@pytest.fixture
def empty_database_url(tmp_path):
    """An empty database of the backend under test: a new SQLite file, or a new PostgreSQL schema."""
    if BACKEND != "postgres":
        yield f"sqlite:///{tmp_path / 'migrated.sqlite3'}"
        return
    base = os.environ["TEST_DATABASE_URL"]
    schema = f"mig_{uuid.uuid4().hex[:8]}"
    engine = create_engine(base.replace("postgresql://", "postgresql+psycopg://", 1))
    with engine.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in base else "?"
    yield f"{base}{sep}options=-csearch_path%3D{schema}"
    with engine.begin() as conn:
        conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    engine.dispose()


def test_upgrade_builds_the_models_schema_and_downgrade_returns_to_base(empty_database_url, tmp_path, monkeypatch):
    monkeypatch.setenv("PORTAL_INSTANCE_PATH", str(tmp_path))
    app = create_app({"SQLALCHEMY_DATABASE_URI": empty_database_url, "SECRET_KEY": "x"})
    with app.app_context():
        upgrade()
        with db.engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), db.metadata)
            tables = set(inspect(conn).get_table_names())
        assert diff == [], f"migrations differ from the models: {diff}"
        assert {t.name for t in db.metadata.sorted_tables} <= tables
        # The rules' unique keys exist in the migrated schema.
        with db.engine.connect() as conn:
            insp = inspect(conn)
            uniques = {tuple(u["column_names"]) for u in insp.get_unique_constraints("plan_payments")}
            assert ("plan_id", "due_date") in uniques
            assert any(u["column_names"] == ["stripe_event_id"]
                       for u in insp.get_unique_constraints("processed_webhook_events"))
            assert any(i["name"] == "uq_cards_one_default" and i["unique"] for i in insp.get_indexes("cards"))

        downgrade(revision="base")
        with db.engine.connect() as conn:
            assert set(inspect(conn).get_table_names()) <= {"alembic_version"}
        db.engine.dispose()


def test_status_columns_are_checked_by_the_migrated_database(empty_database_url, tmp_path, monkeypatch):
    """Every status column has the models' CHECK constraint (same name) after `upgrade`, and the database itself
    refuses a value outside the column's enum, even from raw SQL that bypasses the model types."""
    monkeypatch.setenv("PORTAL_INSTANCE_PATH", str(tmp_path))
    app = create_app({"SQLALCHEMY_DATABASE_URI": empty_database_url, "SECRET_KEY": "x"})
    with app.app_context():
        upgrade()
        expected = {t.name: {c.name for c in t.constraints if isinstance(c, CheckConstraint)}
                    for t in db.metadata.sorted_tables}
        expected = {table: names for table, names in expected.items() if names}
        with db.engine.connect() as conn:
            insp = inspect(conn)
            migrated = {table: {ck["name"] for ck in insp.get_check_constraints(table)} for table in expected}
        assert migrated == expected
        assert len(expected) == 13 and all(names == {f"ck_{table}_status"} for table, names in expected.items())

        customer = Customer(first_name="Ana", status="active")
        db.session.add(customer)
        db.session.flush()
        db.session.add(CustomerPlan(customer_id=customer.id, name="Comfort Club", status="pending"))
        db.session.commit()
        assert db.session.scalar(select_status(Customer)) is CustomerStatus.ACTIVE
        assert db.session.scalar(select_status(CustomerPlan)) is PlanStatus.PENDING

        for table in ("customers", "customer_plans"):
            with pytest.raises(IntegrityError) as refused:
                db.session.execute(text(f"UPDATE {table} SET status = 'bogus'"))
                db.session.flush()
            assert f"ck_{table}_status" in str(refused.value)
            db.session.rollback()
        with pytest.raises(StatementError):  # the model type refuses it before the database is asked
            db.session.execute(update(Customer).values(status="bogus"))
        db.session.rollback()
        with pytest.raises(ValueError):
            customer.status = "bogus"
        db.session.rollback()
        assert db.session.scalar(select_status(Customer)) == "active"
        db.session.remove()
        downgrade(revision="base")
        db.engine.dispose()


def select_status(model):
    return select(model.status).limit(1)
