"""C-9, G-3: write to a customer's activity feed."""
from __future__ import annotations

from portal.extensions import db
from portal.models import ActivityEvent, StaffUser


def record(customer_id: int | None, event_type: str, summary: str, *, staff: StaffUser | None = None,
           actor_kind: str | None = None, detail: str | None = None, **links) -> ActivityEvent:
    event = ActivityEvent(
        customer_id=customer_id,
        event_type=event_type,
        summary=summary[:500],
        detail=detail,
        actor_kind=actor_kind or ("staff" if staff is not None else "system"),
        actor_staff_id=staff.id if staff is not None else None,
        **links,
    )
    db.session.add(event)
    return event
