"""One way to page a list: `paginate(stmt, page, per_page)` (the template side is `_macros/pager.html`)."""
from __future__ import annotations

from portal.extensions import db

MAX_PAGE = 10_000


def page_number(raw) -> int:
    """A page number from a query string: bad, zero, negative or absurd values become 1 … MAX_PAGE."""
    try:
        number = int(raw or 1)
    except (TypeError, ValueError):
        return 1
    return min(max(number, 1), MAX_PAGE)


def paginate(stmt, page, per_page: int = 50):
    """Flask-SQLAlchemy's Pagination for a select: a bad page number is page 1, one past the end the last page."""
    result = db.paginate(stmt, page=page_number(page), per_page=per_page, error_out=False, max_per_page=per_page)
    if result.pages and result.page > result.pages:
        result = db.paginate(stmt, page=result.pages, per_page=per_page, error_out=False, max_per_page=per_page)
    return result
