"""The initial migration builds exactly the models' schema on an empty database; downgrade to base empties it."""
import os
import uuid

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask_migrate import downgrade, upgrade
from sqlalchemy import create_engine, inspect, text

from portal import create_app
from portal.extensions import db
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
