"""Tests that need what only production has: PostgreSQL (make serve refuses SQLite) and Redis.

They run in the PostgreSQL phase of `make test` (PORTAL_TEST_DB=postgres) and are not collected on SQLite.
"""
from tests.conftest import BACKEND

collect_ignore_glob = [] if BACKEND == "postgres" else ["test_*.py"]
