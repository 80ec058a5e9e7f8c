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


def _edge_payments(zone) -> None:
    """Payments exactly where the pieces and the zone's offsets meet: at every UTC midnight from Oct 21 to Nov 19,
    2025 (where pieces are cut) and a microsecond before; at the end of daylight saving time (Nov 2, 09:00 UTC),
    a microsecond before, and in the hour Los Angeles lives twice (01:30 PDT and 01:30 PST); at its start (Mar 9,
    10:00 UTC) and a microsecond before; at the range's first instant and at its end (not in it). Commits."""
    from datetime import UTC

    from portal.models import Payment

    us = timedelta(microseconds=1)
    when = []
    for day in range(30):
        midnight = datetime(2025, 10, 21, tzinfo=UTC) + timedelta(days=day)
        when += [midnight, midnight - us]
    when += [datetime(2025, 11, 2, 9, tzinfo=UTC), datetime(2025, 11, 2, 9, tzinfo=UTC) - us,
             datetime(2025, 11, 2, 8, 30, tzinfo=UTC), datetime(2025, 11, 2, 9, 30, tzinfo=UTC),
             datetime(2025, 3, 9, 10, tzinfo=UTC), datetime(2025, 3, 9, 10, tzinfo=UTC) - us,
             datetime(2025, 10, 20, tzinfo=zone), datetime(2025, 11, 21, tzinfo=zone)]
    who = db.session.scalars(db.select(Payment.customer_id).limit(1)).one()
    db.session.add_all([Payment(customer_id=who, method="card", amount_cents=100 + k, fee_cents=k % 3, net_cents=0,
                                card_brand="visa", card_last4="4242", reference=f"EDGE-{k}", received_at=at)
                        for k, at in enumerate(when)])
    db.session.commit()


def test_csv_in_pieces_on_several_connections_has_the_python_writers_bytes(app, client, login_staff,
                                                                            monkeypatch, pieces_seen):
    """A range cut into pieces of a few rows each, written on 2 and 3 connections at once, gives the very bytes
    of the Python writer: every row once, in order, across the pieces' seams (rows exactly at the cuts and a
    microsecond before); local times right across the daylight-saving changes of Los Angeles (rows at the change,
    just before it and in the repeated hour; one change: a CASE per row, and forced to the array lookup too)."""
    from portal import clock
    from portal.services.payments import ledger

    with app.app_context():
        zone = clock.business_tz()
        assert zone.key == "America/Los_Angeles"
        # payments every 14 hours from Oct 20, 2025: over the end of daylight saving time (Nov 2)
        admin = hostile_ledger(datetime(2025, 10, 20, 22, 45, tzinfo=zone), timedelta(hours=14))
        _edge_payments(zone)
    login_staff(admin)
    monkeypatch.setattr(ledger, "CSV_PIECE_ROWS", (4, 12))
    urls = [f"/admin/reports/transactions?from={a}&to={b}&format=csv{t}"
            for a, b in (("2025-10-20", "2025-11-20"), ("2025-03-01", "2025-12-31"), ("2025-10-25", "2025-11-05"))
            for t in ("", "&type=payment&type=declined")]
    expected = {url: python_writers_csv(client, monkeypatch, url) for url in urls}
    assert expected[urls[0]].count(b"\r\n") > 5 * len(TEXTS) + 60
    assert expected[urls[0]].count(b"2025-11-02 01:30,") == 2  # the repeated hour, twice
    assert b",EDGE-66," in expected[urls[0]] and b",EDGE-67," not in expected[urls[0]]  # the first instant; the end
    for connections in (2, 3):
        monkeypatch.setitem(app.config, "CSV_EXPORT_CONNECTIONS", connections)
        for url in urls:
            assert client.get(url).get_data() == expected[url], (connections, url)
        with monkeypatch.context() as m:
            m.setattr(ledger, "_TZ_CASES", 1)  # every range with a change: the arrays
            for url in urls:
                assert client.get(url).get_data() == expected[url], (connections, url, "arrays")
    assert all(pieces > 1 and n in (2, 3) for pieces, n in pieces_seen)
    assert max(pieces for pieces, _ in pieces_seen) > 8
    assert len(pieces_seen) == 2 * 2 * len(urls)
    monkeypatch.setitem(app.config, "CSV_EXPORT_CONNECTIONS", 1)  # the request's own connection: the same bytes
    assert client.get(urls[0]).get_data() == expected[urls[0]]
    assert len(pieces_seen) == 2 * 2 * len(urls)


def test_every_piece_reads_the_snapshot_the_export_started_on(app, monkeypatch, pieces_seen):
    """Payments committed while the export runs are not in the file, whenever they are committed: right after the
    snapshot is shared (one in every piece's time, before any COPY starts), and later, in the time of the last two
    pieces (one on each connection, not yet started). Every connection reads the first one's snapshot: READ
    COMMITTED, or a REPEATABLE READ snapshot of each connection's own, would show some. The next export has all."""
    from datetime import date

    from portal import clock
    from portal.models import Payment
    from portal.services.payments import ledger
    from portal.services.platform import pg_copy

    first_day, last_day = date(2025, 10, 20), date(2025, 11, 20)
    with app.app_context():
        zone = clock.business_tz()
        hostile_ledger(datetime(2025, 10, 20, 22, 45, tzinfo=zone), timedelta(hours=14))
        who = db.session.scalars(db.select(Payment.customer_id).limit(1)).one()
    monkeypatch.setattr(ledger, "CSV_PIECE_ROWS", (4, 12))
    monkeypatch.setattr(pg_copy, "BLOCK_BYTES", 1)  # a block per row ...
    monkeypatch.setattr(pg_copy, "QUEUE_BLOCKS", 1)  # ... and one waiting: the connections stay at their first pieces
    monkeypatch.setitem(app.config, "CSV_EXPORT_CONNECTIONS", 2)
    with app.app_context():
        lo, hi = ledger._range(first_day, last_day)
        pieces = ledger._csv_pieces(ledger.TYPES, lo, hi, 2)
    assert len(pieces) > 4

    def commit(tag: str, times: list) -> None:
        with app.app_context():  # another request
            db.session.add_all([Payment(customer_id=who, method="cash", amount_cents=98_700 + k, fee_cents=0,
                                        net_cents=0, reference=f"{tag}-{k}", received_at=when)
                                for k, when in enumerate(times)])
            db.session.commit()

    shared = pg_copy._share_snapshot

    def share_then_commit(conns):
        shared(conns)
        commit("EARLY", [a + (b - a) / 3 for a, b in pieces])

    monkeypatch.setattr(pg_copy, "_share_snapshot", share_then_commit)
    with app.app_context():
        lines = ledger.csv_lines(first_day, last_day, ledger.TYPES, currency="USD", places=2, tz_name=zone.key)
        body = next(lines)
        commit("LATE", [a + (b - a) / 2 for a, b in pieces[-2:]])  # the last piece of each connection
        body += b"".join(lines)
    monkeypatch.setattr(pg_copy, "_share_snapshot", shared)
    assert pieces_seen == [(len(pieces), 2)]
    assert b"EARLY-" not in body and b"LATE-" not in body and b"987.0" not in body
    with app.app_context():
        again = b"".join(ledger.csv_lines(first_day, last_day, ledger.TYPES, currency="USD", places=2,
                                          tz_name=zone.key))
    assert all(f"EARLY-{k}".encode() in again for k in range(len(pieces)))
    assert b"LATE-0" in again and b"LATE-1" in again


def test_a_reader_that_stops_or_a_piece_that_fails_leaves_no_thread_transaction_or_connection(app, monkeypatch):
    """The client goes away mid-file: the export's threads end, its COPYs are cancelled (one still computing on
    the server for 30 s ends at once) and its connections go back to the pool idle, out of autocommit; the next
    export reuses them. A piece that fails raises in the reader, after the pieces before it, and cleans up the same
    way; so does an export whose snapshot cannot be shared."""
    import time

    from sqlalchemy import text

    from portal.services.platform import pg_copy

    def busy_backends() -> int:
        return db.session.execute(text(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
            " AND backend_type = 'client backend' AND state <> 'idle'")).scalar_one()

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
        assert busy_backends() == 0  # no COPY still running, no transaction left open
        for _ in range(2):  # the same connections again (each call takes two from the pool)
            raw = db.engine.raw_connection()
            assert raw.driver_connection.autocommit is False
            raw.close()
        body = b"".join(pg_copy.stream(copies, connections=2))
        assert body.count(b"\r\n") == 4 * 20000 and b"\n" not in body.replace(b"\r\n", b"")

        # the second connection's piece computes for 30 s before its first row: closing cancels it
        slow = [copies[0], ("COPY (SELECT 1 FROM pg_sleep(30)) TO STDOUT (FORMAT csv)", {})]
        lines = pg_copy.stream(slow, connections=2)
        assert next(lines).startswith(b"1,xxx")
        time.sleep(0.3)  # the sleep has begun
        started = time.monotonic()
        lines.close()
        assert time.monotonic() - started < 5
        assert _copy_threads() == [] and db.engine.pool.checkedout() == checked_out and busy_backends() == 0

        failing = [copies[0], ("COPY (SELECT 1 / (g - 5) FROM generate_series(1, 9) g) TO STDOUT (FORMAT csv)", {}),
                   copies[2]]
        read = []
        with pytest.raises(psycopg.errors.DivisionByZero):
            for block in pg_copy.stream(failing, connections=2):
                read.append(block)
        assert b"".join(read).count(b"\r\n") >= 20000  # the first piece, whole, before the failure
        assert _copy_threads() == []
        assert db.engine.pool.checkedout() == checked_out

        def cannot_share(conns):
            raise psycopg.OperationalError("the snapshot could not be shared")

        with monkeypatch.context() as m:
            m.setattr(pg_copy, "_share_snapshot", cannot_share)
            with pytest.raises(psycopg.OperationalError):
                b"".join(pg_copy.stream(copies, connections=3))
        assert db.engine.pool.checkedout() == checked_out and busy_backends() == 0
        db.session.rollback()
