"""Cursor pagination, the one way every list answers: `limit + 1` rows fetched, `limit` shown."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from gopay.api.schemas import Page

P = TypeVar("P", bound=Page[Any])

Row = dict[str, Any]


def page_of(page: type[P], rows: Sequence[Row], limit: int, public: Callable[[Row], Any],
            cursor: Callable[[Row], Any]) -> P:
    """A page of the first `limit` rows; the row beyond them, if fetched, says there is more."""
    return page(data=[public(row) for row in rows[:limit]],
                next_cursor=str(cursor(rows[limit - 1])) if len(rows) > limit else None)
