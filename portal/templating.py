"""Template filters and globals shared by the portal, the admin and the emails."""
from __future__ import annotations

from datetime import date, datetime
from functools import lru_cache

from flask import Flask, current_app, url_for
from flask_babel import format_date, format_datetime, format_time, get_locale, get_timezone

from portal import clock, labels, money
from portal.services.platform import settings


def _money(cents: int | None, currency: str | None = None) -> str:
    locale = str(get_locale() or "en")
    if locale == "en":
        locale = "en_US"
    return money.format_money(cents, currency or settings.currency(), locale=locale)


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
