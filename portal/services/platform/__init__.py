"""What every domain stands on: business settings, the activity feed, queued email, signed tokens and magic
links, one-time form keys, staff accounts, login sessions, staff two-factor, the scheduler that runs the due rules
and the worker pool its card charges run on.

Nothing here imports another domain package; domains plug in through `portal.services.events` and
`scheduler.register` (wired in `portal.services.wiring`).
"""
__all__ = ["activity", "magic_links", "mailer", "once", "scheduler", "sessions", "settings", "signing", "staff",
           "two_factor", "workers"]
