"""flask seed-demo, flask demo-info, flask jobs run [--as-of], flask stripe-sandbox, flask create-staff,
flask stripe-import."""
from __future__ import annotations

import json
import os
import signal
import socket
import sys
import threading

import click
from flask import Flask, current_app
from flask.cli import AppGroup, with_appcontext
from sqlalchemy import func, select

from portal import clock
from portal.extensions import db

jobs_cli = AppGroup("jobs", help="Scheduled work (Q-3).")


@jobs_cli.command("run")
@click.option("--as-of", "as_of", default=None, help="Run as if it were this ISO date/time (business time zone).")
@click.option("--every", "every", type=click.FloatRange(min=0.5), default=None,
              help="Keep running: a pass of the due rules every N seconds until SIGTERM/SIGINT (make serve).")
def jobs_run(as_of: str | None, every: float | None):
    """Run every rule that is due now (or at --as-of); with --every, loop."""
    from portal.services.platform import scheduler

    if every is not None:
        if as_of:
            raise click.BadParameter("--every runs on the real clock; leave out --as-of", param_hint="--every")
        _jobs_loop(every)
        return
    try:
        when = clock.parse_as_of(as_of) if as_of else None
    except ValueError:
        raise click.BadParameter("use an ISO date or date-time, like 2026-12-01 or 2026-12-01T00:30",
                                 param_hint="--as-of") from None
    started = clock.now()
    results = scheduler.run_due(when)
    if when is None:
        try:
            scheduler.record_run(node_name(), started, results)
        except Exception:  # the work is done and committed; a missing health record is not a failed run
            db.session.rollback()
            current_app.logger.exception("could not record the scheduler run")
    click.echo(json.dumps(results, indent=2, default=str))


def node_name() -> str:
    """This machine's name in scheduler_runs and the logs: NODE_NAME (PORTAL_NODE_NAME), else the host name."""
    return str(current_app.config.get("NODE_NAME") or socket.gethostname())


def _jobs_loop(every: float) -> None:
    """Issue 14: the scheduler process of `make serve`. One line per pass; exits 0 on SIGTERM/SIGINT."""
    from portal.services.platform import scheduler

    stop = threading.Event()

    def _stop(signum, _frame):
        current_app.logger.info("scheduler: %s received, stopping", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    node = node_name()
    click.echo(f"scheduler on {node}: a pass every {every:g} s (SIGTERM stops it)", err=True)

    def _report(results: dict) -> None:
        failed = scheduler.failed_rules(results)
        summary = {"at": clock.now().isoformat(timespec="seconds"), "node": node, "failed": failed,
                   "results": results}
        click.echo(json.dumps(summary, default=str, separators=(",", ":")), err=False)

    scheduler.run_every(every, node, stop, _report)
    db.session.remove()
    db.engine.dispose()
    click.echo(f"scheduler on {node}: stopped", err=True)
    sys.stdout.flush()
    os._exit(0)  # stopped cleanly; skip tearing down the interpreter, which takes seconds on a busy machine


@click.command("create-staff")
@with_appcontext
@click.option("--email", prompt=True)
@click.option("--name", prompt=True)
@click.option("--role", type=click.Choice(["admin", "office", "technician"]), default="admin", show_default=True)
@click.option("--password", prompt=True, hide_input=True, confirmation_prompt=True)
def create_staff(email: str, name: str, role: str, password: str):
    """Create a staff account with a password."""
    from portal.services.errors import ValidationError
    from portal.services.platform import staff

    try:
        user = staff.create(email, name, role, password)
    except ValidationError as exc:
        raise click.ClickException(exc.message) from None
    db.session.commit()
    click.echo(f"Created {user.role} {user.email}.")


@click.command("stripe-sandbox")
@with_appcontext
@click.option("--port", type=int, default=None, help="Defaults to STRIPE_SANDBOX_PORT.")
@click.option("--quiet", is_flag=True)
def stripe_sandbox(port: int | None, quiet: bool):
    """Run the local Stripe sandbox (localstripe) on 127.0.0.1, data under instance/."""
    from portal.stripe_sandbox import serve

    port = port or current_app.config["STRIPE_SANDBOX_PORT"]
    data = os.path.join(current_app.instance_path, "stripe-sandbox.pickle")
    from portal.services.payments import gateway

    hook = current_app.config["BASE_URL"].rstrip("/") + "/webhooks/stripe"
    click.echo(f"Stripe sandbox on http://127.0.0.1:{port} (data: {data}); webhooks → {hook}")
    serve("127.0.0.1", port, data, quiet, webhook=(hook, gateway.webhook_secret()))


@click.command("stripe-check")
@with_appcontext
def stripe_check():
    """Issue 14: are the Stripe keys and the webhook endpoint ready for real payments? Exit 1 if not."""
    from portal.services.payments import readiness

    report = readiness.check()
    for line in report.lines:
        click.echo(f"ok       {line}")
    for line in report.missing:
        click.echo(f"MISSING  {line}")
    if not report.ok:
        raise SystemExit(1)
    click.echo("Stripe is ready.")


@click.command("seed-demo")
@with_appcontext
@click.option("--if-empty", is_flag=True, help="Do nothing when customers already exist.")
def seed_demo(if_empty: bool):
    """Create a believable demo business and print the logins."""
    from portal.demo import DEMO_ADMIN_EMAIL, DEMO_PASSWORD, seed
    from portal.models import Customer

    if if_empty and (db.session.scalar(select(func.count()).select_from(Customer)) or 0) > 0:
        click.echo("Demo data already present; nothing seeded.")
    else:
        seed()
        db.session.commit()
        click.echo("Demo business seeded.")
    _print_demo_info(DEMO_ADMIN_EMAIL, DEMO_PASSWORD)


@click.command("demo-info")
@with_appcontext
def demo_info():
    """Print the admin login and a fresh portal link for a demo customer."""
    from portal.demo import DEMO_ADMIN_EMAIL, DEMO_PASSWORD

    _print_demo_info(DEMO_ADMIN_EMAIL, DEMO_PASSWORD)


def _print_demo_info(email: str, password: str) -> None:
    from portal.demo import demo_customer
    from portal.services.platform import magic_links

    base = current_app.config["BASE_URL"].rstrip("/")
    customer = demo_customer()
    click.echo("")
    click.echo(f"  Admin:        {base}/admin/login")
    click.echo(f"  Admin login:  {email} / {password}")
    if customer is not None:
        click.echo(f"  Portal link for {customer.display_name} (valid 7 days):")
        click.echo(f"    {magic_links.portal_link(customer)}")
    click.echo(f"  Outbox:       {base}/admin/outbox")
    click.echo("")


@click.command("stripe-import")
@with_appcontext
@click.option("--create-unmatched", is_flag=True, help="Create a customer for each Stripe customer no email matches.")
@click.option("--yes", is_flag=True, help="Link without asking (after printing the preview).")
def stripe_import(create_unmatched: bool, yes: bool):
    """Link existing Stripe customers to ours by email and import their saved cards (nothing is charged)."""
    from portal.services.payments import gateway, stripe_link

    try:
        preview = stripe_link.preview(create_unmatched)
    except gateway.StripeError as exc:
        raise click.ClickException(f"Stripe did not answer: {gateway.classify(exc).message}") from None
    for d in preview.decisions:
        ours = f" → {d.customer_name} (#{d.customer_id})" if d.customer_id else ""
        click.echo(f"{d.stripe.id}  {d.stripe.email or '(no email)'}{ours}: {d.action}"
                   + (f" ({d.reason})" if d.reason else ""))
    counts = preview.counts
    click.echo(f"To link: {counts['link']}, already linked: {counts['linked']}, to create: {counts['create']}, "
               f"not matched: {counts['unmatched']}, left as they are: {counts['conflict']}.")
    if not yes and not click.confirm("Link them and import their cards?", default=False):
        click.echo("Nothing changed.")
        return
    try:
        result = stripe_link.link(None, create_unmatched)
    except gateway.StripeError as exc:
        db.session.rollback()
        raise click.ClickException(f"Stripe did not answer: {gateway.classify(exc).message}. Nothing changed.") \
            from None
    db.session.commit()
    click.echo(f"Linked {result.linked}, created {result.created}, cards imported {result.cards_added}. "
               "Nothing was charged.")


def init_app(app: Flask) -> None:
    app.cli.add_command(jobs_cli)
    app.cli.add_command(create_staff)
    app.cli.add_command(stripe_sandbox)
    app.cli.add_command(stripe_check)
    app.cli.add_command(seed_demo)
    app.cli.add_command(demo_info)
    app.cli.add_command(stripe_import)
