"""Big CSV exports written by PostgreSQL: `COPY (SELECT …) TO STDOUT (FORMAT csv)`, streamed in blocks.

An export is cut into pieces (consecutive parts of its rows, each its own COPY). One piece runs on the caller's
connection. Several run on their own connections at once, like `pg_dump --jobs`: the first connection exports
its snapshot and the others import it (REPEATABLE READ, READ ONLY), so every piece reads the same database
state; a thread per connection reads its pieces into bounded queues while the caller streams the pieces in
order. Formatting the cells is the database's work, so two connections use two cores of the database server;
memory stays bounded by the queues whatever the export's size.

Every connection runs with DateStyle ISO (the SQL may cut dates from their text)."""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Generator, Iterator, Sequence
from typing import Any

import psycopg
from psycopg import sql
from psycopg.abc import Buffer

from portal.extensions import db

logger = logging.getLogger(__name__)

BLOCK_BYTES = 65536  # rows are joined into blocks of about this size
QUEUE_BLOCKS = 32  # blocks a piece may hold ahead of the reader (per connection: ~2 MB)

Copy = tuple[str, dict[str, Any]]  # a COPY … TO STDOUT statement and its parameters
_END = object()


def stream(copies: Sequence[Copy], *, connections: int = 1) -> Iterator[bytes]:
    """The pieces' CSV bytes in order, row ends as CRLF (what Python's csv writer writes). `connections` > 1 and
    more than one piece: that many connections of their own (never more than the pieces) share one snapshot."""
    if not copies:
        return
    if connections < 2 or len(copies) < 2:
        conn = _driver(db.session.connection().connection)
        conn.execute("SET LOCAL DateStyle TO ISO")  # the request's own transaction: it ends with the request
        for statement, params in copies:
            yield from _blocks(conn, statement, params)
        return
    yield from _parallel(copies, min(connections, len(copies)))


def _driver(pooled) -> psycopg.Connection:
    conn = pooled.driver_connection
    assert isinstance(conn, psycopg.Connection), "COPY exports need PostgreSQL through psycopg 3"
    return conn


def _blocks(conn: psycopg.Connection, statement: str, params: dict[str, Any]) -> Generator[bytes, None, None]:
    """One COPY's rows joined into blocks of about BLOCK_BYTES, as UTF-8 with CRLF row ends."""
    encoding = conn.info.encoding
    rows_end = crlf()

    def block(rows: list[Buffer]) -> bytes:
        data = b"".join(rows)
        if encoding not in ("utf-8", "utf8"):
            data = data.decode(encoding).encode("utf-8")
        return rows_end(data)

    pending: list[Buffer] = []
    size = 0
    with conn.cursor() as cursor, cursor.copy(statement, params) as copy:
        for row in copy:  # the server sends a row per message
            pending.append(row)  # a memoryview: joined below, never kept
            size += len(row)
            if size >= BLOCK_BYTES:
                yield block(pending)
                pending, size = [], 0
    if pending:
        yield block(pending)


def crlf() -> Callable[[bytes], bytes]:
    """Turns the row ends COPY writes (LF) into CRLF, block by block: an LF inside a quoted cell is the cell's
    own text and stays as it is. Quotes alternate in and out of a quoted cell (a doubled quote leaves and
    re-enters), so the count of quotes seen tells whether a block starts inside one."""
    inside = False

    def convert(data: bytes) -> bytes:
        nonlocal inside
        if b'"' not in data:
            return data if inside else data.replace(b"\n", b"\r\n")
        parts = data.split(b'"')
        for n in range(len(parts)):
            if (n % 2 == 0) != inside:  # outside a quoted cell
                parts[n] = parts[n].replace(b"\n", b"\r\n")
        if len(parts) % 2 == 0:  # an odd number of quotes: the next block starts on the other side
            inside = not inside
        return b'"'.join(parts)

    return convert


def _parallel(copies: Sequence[Copy], n: int) -> Iterator[bytes]:
    """Connection j runs pieces j, j + n, j + 2n … in its own thread, each into the piece's bounded queue; the
    caller drains the queues in piece order. Closing the generator early (the client went away) stops the
    threads: a COPY left mid-way is cancelled, and every connection goes back to the pool rolled back."""
    run = _Run(copies)
    try:
        run.start(n)
        for q in run.queues:
            while (item := q.get()) is not _END:
                if isinstance(item, BaseException):
                    raise item
                yield item
    finally:
        run.stop()


class _Run:
    """One parallel export: its pooled connections (each released by its own thread when that thread is done, or by
    `stop`), threads and the pieces' queues."""

    def __init__(self, copies: Sequence[Copy]):
        self.copies = copies
        self.queues: list[queue.Queue] = [queue.Queue(maxsize=QUEUE_BLOCKS) for _ in copies]
        self.links: list[tuple[Any, psycopg.Connection]] = []  # (the pool's connection, its psycopg connection)
        self.released: list[bool] = []
        self.lock = threading.Lock()
        self.threads: list[threading.Thread] = []
        self.stopping = threading.Event()

    def start(self, n: int) -> None:
        for _ in range(n):
            pooled = db.engine.raw_connection()
            try:
                conn = _driver(pooled)
            except BaseException:
                pooled.close()
                raise
            self.links.append((pooled, conn))
            self.released.append(False)
        _share_snapshot([conn for _, conn in self.links])
        self.threads = [threading.Thread(target=self._work, args=(j,), name=f"pg-copy-{j}", daemon=True)
                        for j in range(n)]
        for thread in self.threads:
            thread.start()

    def _put(self, q: queue.Queue, item) -> bool:
        """Waits for room in the piece's queue; False once the run stops."""
        while not self.stopping.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _work(self, j: int) -> None:
        try:
            self._pieces(j)
        finally:
            self._release(j)  # its pieces are done: the connection need not wait for the others

    def _pieces(self, j: int) -> None:
        conn = self.links[j][1]
        for i in range(j, len(self.copies), len(self.threads)):
            blocks = _blocks(conn, *self.copies[i])
            try:
                for data in blocks:
                    if not self._put(self.queues[i], data):
                        return
            except BaseException as exc:  # handed to the reader, who raises it
                self._put(self.queues[i], exc)
                return
            finally:
                blocks.close()  # a COPY left mid-way: psycopg cancels it and reads what is left
            if not self._put(self.queues[i], _END):
                return

    def _release(self, j: int) -> None:
        with self.lock:
            if self.released[j]:
                return
            self.released[j] = True
        _release(*self.links[j])

    def stop(self) -> None:
        """Ends the run whatever state it is in: threads still reading are cancelled and joined, and every
        connection not yet back in the pool goes back."""
        self.stopping.set()
        for j, thread in enumerate(self.threads):
            if thread.is_alive():
                with self.lock:  # never cancel a connection its thread already gave back (it may be in use again)
                    if not self.released[j]:
                        _cancel(self.links[j][1])
        for thread in self.threads:
            if thread.ident is not None:  # started
                thread.join()
        for j in range(len(self.links)):
            self._release(j)


def _cancel(conn: psycopg.Connection) -> None:
    """Cancels what the connection runs (a COPY still being written); nothing when it is idle."""
    try:
        conn.cancel_safe(timeout=5)
    except Exception:  # the thread's own cancel (psycopg's, leaving the COPY) or the release still ends it
        logger.warning("could not cancel an export's COPY", exc_info=True)


def _share_snapshot(conns: list[psycopg.Connection]) -> None:
    """Every connection in a REPEATABLE READ, READ ONLY transaction on the first one's snapshot (two round trips
    on the first connection, one on each other)."""
    begin = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"
    for conn in conns:
        conn.rollback()  # idle, then statement by statement
        conn.autocommit = True
    first = conns[0]
    first.execute(f"{begin}; SET LOCAL DateStyle TO ISO")
    row = first.execute("SELECT pg_export_snapshot()").fetchone()
    assert row is not None
    for conn in conns[1:]:
        conn.execute(sql.SQL("{}; SET TRANSACTION SNAPSHOT {}; SET LOCAL DateStyle TO ISO").format(
            sql.SQL(begin), sql.Literal(row[0])))


def _release(pooled, conn: psycopg.Connection) -> None:
    """Back to the pool as it came (idle, not autocommit); a connection that cannot be reset is discarded."""
    try:
        if conn.info.transaction_status == psycopg.pq.TransactionStatus.INTRANS:
            conn.commit()  # it only read: the same as a rollback, and psycopg keeps its prepared statements
        else:
            conn.rollback()
        conn.autocommit = False
        pooled.close()
    except Exception:
        logger.warning("an export's connection could not be reset; discarded", exc_info=True)
        pooled.invalidate()
