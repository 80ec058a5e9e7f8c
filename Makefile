# The README's two commands: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
FLASK  := $(BIN)/flask --app wsgi
PORT   ?= 5000

.PHONY: run serve test lint venv migrate seed clean-db translations i18n-update

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[test]"
	@touch $(STAMP)

venv: $(STAMP)

# P-9: the Spanish and Russian catalogs are compiled in the build (the .mo files are not committed).
translations: venv
	$(BIN)/pybabel -q compile -d portal/translations

# After changing customer-facing text: re-extract and merge, then translate the new entries in the .po files.
i18n-update: venv
	$(BIN)/pybabel -q extract -F babel.cfg -k _l -k lazy_gettext --no-location -o portal/translations/messages.pot .
	$(BIN)/pybabel -q update -i portal/translations/messages.pot -d portal/translations --no-fuzzy-matching

migrate: translations
	$(FLASK) db upgrade

seed: migrate
	PORTAL_BASE_URL=http://127.0.0.1:$(PORT) $(FLASK) seed-demo --if-empty

# Fresh clone → venv → install → migrate → seed if empty (prints the logins) → Stripe sandbox + server.
run: seed
	@echo "Starting the Stripe sandbox on 127.0.0.1:8420 and the server on http://127.0.0.1:$(PORT)"
	@set -e; \
	PORTAL_BASE_URL=http://127.0.0.1:$(PORT) $(FLASK) stripe-sandbox --quiet & sandbox=$$!; \
	trap 'kill $$sandbox 2>/dev/null || true' EXIT INT TERM; \
	PORTAL_BASE_URL=http://127.0.0.1:$(PORT) $(FLASK) run --host 127.0.0.1 --port $(PORT)

# Production on this machine (docs/production.md): refuses a config that would break (one line per setting),
# migrates, then gunicorn (gunicorn.conf.py; HOST, PORT default 127.0.0.1:8000, WEB_CONCURRENCY default 2) and
# the scheduler (`flask --app wsgi jobs run --every 60`). SIGTERM or Ctrl-C stops both.
serve: translations
	$(BIN)/python -m portal.serve

# Lint and types (pyproject: [tool.ruff], [tool.mypy]); `make test` runs it first.
lint: venv
	$(BIN)/ruff check .
	$(BIN)/mypy

# The whole suite on SQLite and, when TEST_DATABASE_URL is set, on PostgreSQL. The two runs are independent (own
# database, Stripe sandbox, SMTP server and browser on free ports), so they run side by side: the PostgreSQL run's
# output is kept in test-artifacts/postgres.log and printed after the SQLite run. Either failing fails `make test`.
PYTEST := $(BIN)/python -m pytest -q -p no:cacheprovider

test: lint translations
	@mkdir -p test-artifacts
	@set -u; \
	if [ -n "$${TEST_DATABASE_URL:-}" ]; then \
		PORTAL_TEST_DB=postgres $(PYTEST) > test-artifacts/postgres.log 2>&1 & pg=$$!; \
	fi; \
	echo "== SQLite"; $(PYTEST); sqlite=$$?; pgrc=0; \
	if [ -n "$${TEST_DATABASE_URL:-}" ]; then \
		wait $$pg; pgrc=$$?; echo "== PostgreSQL ($$TEST_DATABASE_URL)"; cat test-artifacts/postgres.log; \
	fi; \
	echo "== SQLite: exit $$sqlite, PostgreSQL: exit $$pgrc"; \
	test $$sqlite -eq 0 -a $$pgrc -eq 0

clean-db:
	rm -f instance/portal.sqlite3 instance/stripe-sandbox.pickle
