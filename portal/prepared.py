"""Statements that stay prepared from one request to the next (PostgreSQL).

psycopg prepares a statement on a connection once the connection has run it `prepare_threshold` (5) times;
PostgreSQL then no longer parses and plans it. But psycopg forgets a connection's prepared statements on every
ROLLBACK, and every request ended with one (Flask-SQLAlchemy closes the session, which rolls back), so no
statement was ever prepared: each of the client card's 18 queries was parsed and planned again on every view,
~5 ms of its ~23 ms at scale.

A request (an application context) whose transaction wrote nothing now ends it with COMMIT, which for such a
transaction is the same as ROLLBACK, and psycopg keeps the statements. "Wrote nothing": every statement sent
through SQLAlchemy since the transaction began was a SELECT, the session holds no pending change, the server gave
the transaction no id (nothing written, whatever the path: one more round trip, a safety net), and no exception
left the request (an error page's handler rolls back itself: portal/errors.py). Anything else ends with a
rollback, as before. Not covered, as nothing here does it: a SELECT with a side effect that needs no transaction
id (set_config(..., false), pg_notify) would now last.
"""
from __future__ import annotations

import logging
import re

from flask import Flask
from psycopg import pq
from sqlalchemy import event

from portal.extensions import db

logger = logging.getLogger(__name__)
_READ = re.compile(r"\s*SELECT\b", re.IGNORECASE)
_WROTE = "portal_wrote"  # in the connection's info: a statement other than SELECT ran in this transaction


def init_app(app: Flask) -> None:
    """Wires the engine's events and the teardown; PostgreSQL only (nothing to keep on SQLite). Call after
    `db.init_app`: teardowns run in reverse order, so this one runs before the session is closed."""
    if not str(app.config["SQLALCHEMY_DATABASE_URI"]).startswith("postgresql"):
        return
    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", _note)
    for name in ("begin", "commit", "rollback"):
        event.listen(engine, name, _forget)
    app.teardown_appcontext(_end_reads)


def _note(conn, cursor, statement, parameters, context, executemany) -> None:
    if executemany or not _READ.match(statement):
        conn.info[_WROTE] = True


def _forget(conn) -> None:
    conn.info.pop(_WROTE, None)


def _end_reads(exc: BaseException | None) -> None:
    """Commits the transaction on the driver's connection: the session's close, next, rolls back a transaction that
    is no longer there (psycopg sends nothing, and keeps the statements). Never raises: a failure leaves the
    transaction to that close, which rolls it back."""
    if exc is not None:
        return
    try:
        session = db.session()
        transaction = session.get_transaction()
        if (transaction is None or not getattr(transaction, "_connections", None) or not session.is_active
                or session.new or session.dirty or session.deleted):
            return  # nothing to keep (no connection taken), or a change pending: the close rolls back
        connection = session.connection()
        if connection.info.get(_WROTE):
            return
        driver = connection.connection.driver_connection
        if driver is None or driver.info.transaction_status != pq.TransactionStatus.INTRANS:
            return
        row = driver.execute(_NO_XID).fetchone()  # with the COMMIT, this ends the transaction (not a page query)
        if row is not None and row[0] is True:
            driver.commit()
    except Exception:
        logger.warning("could not end a read-only transaction with COMMIT", exc_info=True)


_NO_XID = "SELECT txid_current_if_assigned() IS NULL"  # PostgreSQL 10+: no id, nothing written
