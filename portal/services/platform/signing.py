"""Signed, timed tokens whose age is measured on the one clock (G-2), so tests can move time."""
from __future__ import annotations

from flask import current_app
from itsdangerous import TimestampSigner, URLSafeTimedSerializer

from portal import clock


class ClockSigner(TimestampSigner):
    def get_timestamp(self) -> int:
        return int(clock.now().timestamp())


def serializer(salt: str) -> URLSafeTimedSerializer:
    """A serializer for one purpose: a token signed with one salt never loads under another."""
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=salt, signer=ClockSigner)
