"""Tests of what only the PostgreSQL backend has (COPY, triggers). They run in the PostgreSQL phase of `make test`
(PORTAL_TEST_DB=postgres) and are not collected on SQLite."""
from tests.conftest import BACKEND

collect_ignore_glob = [] if BACKEND == "postgres" else ["test_*.py"]
