"""flask seed-demo, flask demo-info, flask jobs run [--as-of], flask stripe-sandbox, flask create-staff."""
from __future__ import annotations

import json
import os

import click
from flask import Flask, current_app
from flask.cli import AppGroup, with_appcontext
from sqlalchemy import func, select

from portal import clock
from portal.extensions import db

jobs_cli = AppGroup("jobs", help="Scheduled work (Q-3).")


@jobs_cli.command("run")
@click.option("--as-of", "as_of", default=None, help="Run as if it were this ISO date/time (business time zone).")
def jobs_run(as_of: str | None):
    """Run every rule that is due now (or at --as-of)."""
    from portal.services.platform import scheduler

    try:
        when = clock.parse_as_of(as_of) if as_of else None
    except ValueError:
        raise click.BadParameter("use an ISO date or date-time, like 2026-12-01 or 2026-12-01T00:30",
                                 param_hint="--as-of") from None
    results = scheduler.run_due(when)
    click.echo(json.dumps(results, indent=2, default=str))


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


def init_app(app: Flask) -> None:
    app.cli.add_command(jobs_cli)
    app.cli.add_command(create_staff)
    app.cli.add_command(stripe_sandbox)
    app.cli.add_command(seed_demo)
    app.cli.add_command(demo_info)
