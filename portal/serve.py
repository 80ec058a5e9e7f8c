"""`make serve` (issue 14): production mode on one machine, any number of machines side by side.

1. builds the app in serve mode and refuses to start, one line per setting, when the config would break (no
   SECRET_KEY, not PostgreSQL, several workers without REDIS_URL);
2. migrates the database (`flask db upgrade`; nodes starting together wait for each other on a PostgreSQL
   advisory lock);
3. starts gunicorn with the repo's gunicorn.conf.py and the scheduler (`flask --app wsgi jobs run --every 60`;
   SCHEDULER_EVERY changes the interval) as two child processes;
4. SIGTERM or SIGINT stops both (gunicorn finishes its requests within its graceful timeout, the scheduler
   after its current rule); when either child dies the other is stopped too and the exit code is not 0.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from portal import REPO_ROOT

STOP_GRACE_SECONDS = 12  # then SIGKILL: every unit of work is claimed and reconciled, a kill loses nothing
_MIGRATION_LOCK = 4_140_014  # pg_advisory_lock key: one node migrates at a time


def say(message: str) -> None:
    print(f"make serve: {message}", file=sys.stderr, flush=True)


def _build_app():
    from portal import create_app, ops

    try:
        return create_app()
    except ops.ConfigRefused as refused:
        for line in refused.lines:
            say(f"refusing to start: {line}")
        raise SystemExit(2) from None


def _migrate(app) -> None:
    from flask_migrate import upgrade
    from sqlalchemy import text

    from portal.extensions import db

    with app.app_context():
        with db.engine.connect() as lock:
            lock.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _MIGRATION_LOCK})
            try:
                upgrade()
            finally:
                lock.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _MIGRATION_LOCK})
        db.engine.dispose()


def _children(every: str) -> dict[str, subprocess.Popen]:
    python = sys.executable
    return {
        "gunicorn": subprocess.Popen([python, "-m", "gunicorn", "-c", str(REPO_ROOT / "gunicorn.conf.py"),
                                      "wsgi:app"], cwd=REPO_ROOT),
        "scheduler": subprocess.Popen([python, "-m", "flask", "--app", "wsgi", "jobs", "run", "--every", every],
                                      cwd=REPO_ROOT),
    }


def _stop(children: dict[str, subprocess.Popen]) -> None:
    for proc in children.values():
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE_SECONDS
    for name, proc in children.items():
        try:
            proc.wait(max(deadline - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            say(f"{name} did not stop in {STOP_GRACE_SECONDS} s; killing it")
            proc.kill()
            proc.wait()


def main() -> int:
    os.environ["PORTAL_SERVE_MODE"] = "1"  # the children build their apps in serve mode too
    every = os.environ.get("SCHEDULER_EVERY", "60")
    app = _build_app()
    say("migrating the database")
    _migrate(app)
    stopping: list[int] = []

    def _on_signal(signum, _frame):
        stopping.append(signum)

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    children = _children(every)
    say(f"gunicorn pid {children['gunicorn'].pid}, scheduler pid {children['scheduler'].pid} "
        f"(a pass every {every} s); SIGTERM or Ctrl-C stops both")
    exit_code = 0
    while not stopping:
        dead = [name for name, proc in children.items() if proc.poll() is not None]
        if dead:
            say(f"{dead[0]} exited with {children[dead[0]].returncode}; stopping")
            exit_code = 1
            break
        time.sleep(0.2)
    _stop(children)
    if stopping:
        say(f"stopped ({signal.Signals(stopping[0]).name})")
    return exit_code


if __name__ == "__main__":
    code = main()
    sys.stderr.flush()
    os._exit(code)  # the children are gone; skip tearing down the interpreter (pools, the app) on the way out
