"""What every domain stands on: business settings, the activity feed, queued email, signed tokens and magic
links, one-time form keys, staff accounts, login sessions, staff two-factor and the scheduler that runs the due rules.

Nothing here imports another domain package; domains plug in through `portal.services.events` and
`scheduler.register` (wired in `portal.services.wiring`).
"""
__all__ = ["activity", "magic_links", "mailer", "once", "scheduler", "sessions", "settings", "signing", "staff",
           "two_factor"]
