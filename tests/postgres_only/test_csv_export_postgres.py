"""Issue 15 on PostgreSQL only: the transactions CSV cut into pieces written on several connections at once
(platform.pg_copy), on one snapshot, in order, and cleaned up when the reader stops or a piece fails."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta

import psycopg
import pytest

from portal.extensions import db
from tests.postgres_only.test_reports_postgres import TEXTS, hostile_ledger, python_writers_csv


def _copy_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("pg-copy-")]


@pytest.fixture
def pieces_seen(monkeypatch):
    """How many pieces and connections each parallel export used."""
    from portal.services.platform import pg_copy

    seen: list[tuple[int, int]] = []
    parallel = pg_copy._parallel

    def spy(copies, n):
        seen.append((len(copies), n))
        return parallel(copies, n)

    monkeypatch.setattr(pg_copy, "_parallel", spy)
    return seen


def test_csv_in_pieces_on_several_connections_has_the_python_writers_bytes(app, client, login_staff,
                                                                            monkeypatch, pieces_seen):
    """A range cut into pieces of a few rows each, written on 2 and 3 connections at once, gives the very bytes
    of the Python writer: every row once, in order, across the pieces' seams; local times right across the
    daylight-saving changes of the range (one change: a CASE per row; forced to the array lookup too)."""
    from portal import clock
    from portal.services.payments import ledger

    zone = clock.business_tz()
    with app.app_context():
        # payments every 14 hours from Oct 20, 2025: over the end of daylight saving time (Nov 2)
        admin = hostile_ledger(datetime(2025, 10, 20, 22, 45, tzinfo=zone), timedelta(hours=14))
    login_staff(admin)
    monkeypatch.setattr(ledger, "CSV_PIECE_ROWS", (4, 12))
    urls = [f"/admin/reports/transactions?from={a}&to={b}&format=csv{t}"
            for a, b in (("2025-10-20", "2025-11-20"), ("2025-03-01", "2025-12-31"), ("2025-10-25", "2025-11-05"))
            for t in ("", "&type=payment&type=declined")]
    expected = {url: python_writers_csv(client, monkeypatch, url) for url in urls}
    assert expected[urls[0]].count(b"\r\n") > 5 * len(TEXTS)
    for connections in (2, 3):
        app.config["CSV_EXPORT_CONNECTIONS"] = connections
        for url in urls:
            assert client.get(url).get_data() == expected[url], (connections, url)
        with monkeypatch.context() as m:
            m.setattr(ledger, "_TZ_CASES", 1)  # every range with a change: the arrays
            for url in urls:
                assert client.get(url).get_data() == expected[url], (connections, url, "arrays")
    assert all(pieces > 1 and n in (2, 3) for pieces, n in pieces_seen)
    assert len(pieces_seen) == 2 * 2 * len(urls)
    app.config["CSV_EXPORT_CONNECTIONS"] = 1  # the request's own connection, one piece: the same bytes
    assert client.get(urls[0]).get_data() == expected[urls[0]]
    assert len(pieces_seen) == 2 * 2 * len(urls)


def test_every_piece_reads_the_snapshot_the_export_started_on(app, monkeypatch, pieces_seen):
    """Payments committed while the export runs, in the time of the last two pieces (one on each connection, not
    yet started), are not in the file: every connection reads the first one's snapshot (READ COMMITTED would
    show them). The next export has them."""
    from datetime import date

    from portal import clock
    from portal.models import Payment
    from portal.services.payments import ledger
    from portal.services.platform import pg_copy

    zone = clock.business_tz()
    first_day, last_day = date(2025, 10, 20), date(2025, 11, 20)
    with app.app_context():
        hostile_ledger(datetime(2025, 10, 20, 22, 45, tzinfo=zone), timedelta(hours=14))
        who = db.session.scalars(db.select(Payment.customer_id).limit(1)).one()
    monkeypatch.setattr(ledger, "CSV_PIECE_ROWS", (4, 12))
    monkeypatch.setattr(pg_copy, "BLOCK_BYTES", 1)  # a block per row ...
    monkeypatch.setattr(pg_copy, "QUEUE_BLOCKS", 1)  # ... and one waiting: the connections stay at their first pieces
    app.config["CSV_EXPORT_CONNECTIONS"] = 2
    with app.app_context():
        lo, hi = ledger._range(first_day, last_day)
        pieces = ledger._csv_pieces(ledger.TYPES, lo, hi, 2)
    assert len(pieces) > 4
    late = [a + (b - a) / 2 for a, b in pieces[-2:]]  # the last piece of each connection

    def export() -> bytes:
        with app.app_context():
            lines = ledger.csv_lines(first_day, last_day, ledger.TYPES, currency="USD", places=2, tz_name=zone.key)
            first = next(lines)
            with app.app_context():  # another request commits two payments now
                db.session.add_all([Payment(customer_id=who, method="cash", amount_cents=98_765 + k, fee_cents=0,
                                            net_cents=0, reference=f"LATE-{k}", received_at=when)
                                    for k, when in enumerate(late)])
                db.session.commit()
            return first + b"".join(lines)

    body = export()
    assert pieces_seen == [(len(pieces), 2)]
    assert b"LATE-" not in body and b"987.6" not in body
    with app.app_context():
        again = b"".join(ledger.csv_lines(first_day, last_day, ledger.TYPES, currency="USD", places=2,
                                          tz_name=zone.key))
    assert b"LATE-0" in again and b"LATE-1" in again and b"987.65" in again and b"987.66" in again


def test_a_reader_that_stops_or_a_piece_that_fails_leaves_no_thread_transaction_or_connection(app):
    """The client goes away mid-file: the export's threads end, its COPYs are cancelled and its connections go
    back to the pool idle, out of autocommit; the next export reuses them. A piece that fails raises in the
    reader, after the pieces before it, and cleans up the same way."""
    from sqlalchemy import text

    from portal.services.platform import pg_copy

    with app.app_context():
        copies = [("COPY (SELECT g, repeat('x', 200) FROM generate_series(1, 20000) g) TO STDOUT (FORMAT csv)", {})
                  for _ in range(4)]
        db.session.execute(text("SELECT 1"))  # the request's own connection
        checked_out = db.engine.pool.checkedout()
        lines = pg_copy.stream(copies, connections=2)
        assert next(lines).startswith(b"1,xxx")
        assert len(_copy_threads()) == 2
        assert db.engine.pool.checkedout() == checked_out + 2
        lines.close()
        assert _copy_threads() == []
        assert db.engine.pool.checkedout() == checked_out
        busy = db.session.execute(text(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
            " AND backend_type = 'client backend' AND state <> 'idle'")).scalar_one()
        assert busy == 0  # no COPY still running, no transaction left open
        for _ in range(2):  # the same connections again (each call takes two from the pool)
            raw = db.engine.raw_connection()
            assert raw.driver_connection.autocommit is False
            raw.close()
        body = b"".join(pg_copy.stream(copies, connections=2))
        assert body.count(b"\r\n") == 4 * 20000 and b"\n" not in body.replace(b"\r\n", b"")

        failing = [copies[0], ("COPY (SELECT 1 / (g - 5) FROM generate_series(1, 9) g) TO STDOUT (FORMAT csv)", {}),
                   copies[2]]
        read = []
        with pytest.raises(psycopg.errors.DivisionByZero):
            for block in pg_copy.stream(failing, connections=2):
                read.append(block)
        assert b"".join(read).count(b"\r\n") >= 20000  # the first piece, whole, before the failure
        assert _copy_threads() == []
        assert db.engine.pool.checkedout() == checked_out
        db.session.rollback()
