"""Template filters and globals shared by the portal, the admin and the emails."""
from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from functools import lru_cache

from flask import Flask, current_app, url_for
from flask_babel import format_date, format_datetime, format_time, get_locale, get_timezone

from portal import clock, labels, money
from portal.services.platform import settings


def _money_locale() -> str:
    locale = str(get_locale() or "en")
    return "en_US" if locale == "en" else locale


def _money(cents: int | None, currency: str | None = None) -> str:
    return money.format_money(cents, currency or settings.currency(), locale=_money_locale())


def money_here() -> Callable[[int | None], str]:
    """The `money` filter for a table of amounts in the business currency: `{% set m = money_here() %}` then
    `{{ m(cents) }}` formats as `|money` does, with the page's locale and the currency read once (not per amount)."""
    locale, currency = _money_locale(), settings.currency()
    return lambda cents: money.format_money(cents, currency, locale=locale)


def _localdt(value: datetime | None, fmt: str = "medium") -> str:
    if value is None:
        return ""
    return _formatted(format_datetime, value.astimezone(clock.business_tz()).replace(tzinfo=None), fmt,
                      str(get_locale()), str(get_timezone()))


def _localdate(value: date | datetime | None, fmt: str = "medium") -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        value = value.astimezone(clock.business_tz()).date()
    return _formatted(format_date, value, fmt, str(get_locale()), str(get_timezone()))


@lru_cache(maxsize=8192)
def _formatted(formatter, value: date | datetime, fmt: str, locale: str, zone: str) -> str:
    """Babel's text of a local date or time. It depends only on these arguments (`locale` and `zone` are what
    the formatter reads from the request), and a page shows the same dates on every load (the client card: 50),
    so each text is built once per process: ~20 µs each otherwise."""
    return formatter(value, fmt)


def _localtime(value: datetime | None, fmt: str = "short") -> str:
    if value is None:
        return ""
    return format_time(value.astimezone(clock.business_tz()).replace(tzinfo=None), fmt)


def lang_url(code: str) -> str:
    """The switcher's link: this page in another language (a page shown after a POST links to the home page)."""
    from flask import request

    if request.method != "GET" or request.endpoint is None:
        return url_for("portal.home.index", lang=code)
    args = {k: v for k, v in request.args.items() if k != "lang"}
    return url_for(request.endpoint, **(request.view_args or {}), **args, lang=code)


def id_url(endpoint: str, key: str) -> Callable[[int], str]:
    """`url_for(endpoint, key=id)` for the many rows of a table, built once: `{% set u = id_url('admin.plan_view',
    'plan_id') %}` then `{{ u(plan.id) }}` (the rule's only argument is the integer id)."""
    marker = 2**31 - 1
    prefix, found, suffix = url_for(endpoint, **{key: marker}).partition(str(marker))
    assert found, endpoint
    return lambda ident: f"{prefix}{int(ident)}{suffix}"


def has_endpoint(name: str) -> bool:
    return name in current_app.view_functions


def safe_url(endpoint: str, **values) -> str | None:
    return url_for(endpoint, **values) if has_endpoint(endpoint) else None


def init_app(app: Flask) -> None:
    app.add_template_filter(_money, "money")
    app.add_template_filter(money.percent_to_input, "percent")  # basis points → "8.25", exact
    app.add_template_filter(_localdt, "localdt")
    app.add_template_filter(_localdate, "localdate")
    app.add_template_filter(_localtime, "localtime")
    app.add_template_filter(labels.label, "label")
    app.add_template_global(get_locale)
    app.add_template_global(money_here)
    app.add_template_global(id_url)
    app.add_template_global(has_endpoint)
    app.add_template_global(safe_url)
    app.add_template_global(lang_url)

    @app.context_processor
    def inject_business():
        try:
            business = settings.get()
        except Exception:  # the database is down: error pages must still render
            business = {"name": current_app.config["BUSINESS_NAME"]}
        return {"business": business, "now": clock.now()}
