"""Signed, timed tokens whose age is measured on the one clock (G-2), so tests can move time."""
from __future__ import annotations

from flask import current_app
from itsdangerous import TimestampSigner, URLSafeTimedSerializer

from portal import clock

CLOCK_SKEW_SECONDS = 5 * 60


class ClockSigner(TimestampSigner):
    """Issue 14: several nodes sign and check tokens, and their clocks may differ by a few minutes. A token signed
    up to CLOCK_SKEW_SECONDS "in the future" by another node is accepted (itsdangerous would call it expired);
    the expiry (max_age) itself is unchanged."""

    _verifying = False

    def get_timestamp(self) -> int:
        now = int(clock.now().timestamp())
        return now + CLOCK_SKEW_SECONDS if self._verifying else now

    def unsign(self, value, max_age=None, return_timestamp=False):
        if max_age is None:
            return super().unsign(value, max_age, return_timestamp)
        # Checked as if it were SKEW later, with SKEW more to live: the same expiry, SKEW of tolerance ahead.
        self._verifying = True
        try:
            return super().unsign(value, max_age + CLOCK_SKEW_SECONDS, return_timestamp)
        finally:
            self._verifying = False


def serializer(salt: str) -> URLSafeTimedSerializer:
    """A serializer for one purpose: a token signed with one salt never loads under another."""
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=salt, signer=ClockSigner)
