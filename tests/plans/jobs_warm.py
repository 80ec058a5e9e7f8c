"""Imported once by the fork server of tests/plans/jobs_process.py: what `flask --app wsgi jobs run` imports, without
creating an app (each forked run creates its own from its own environment)."""
import importlib

for _name in ("flask", "flask.cli", "click", "sqlalchemy", "alembic", "flask_migrate", "stripe", "requests",
              "portal", "portal.config", "portal.extensions", "portal.models", "portal.services.wiring",
              "portal.services.platform.staff", "portal.services.platform.scheduler", "portal.cli", "portal.errors",
              "portal.templating", "portal.card_guard", "portal.blueprints", "portal.blueprints.webhooks", "admin"):
    try:
        importlib.import_module(_name)
    except Exception:  # noqa: BLE001  (a module left out is imported by the run itself)
        pass
