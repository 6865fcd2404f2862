"""Who may act as a merchant: a company registered in the merchant category, with its wallet."""

from __future__ import annotations

from uuid import UUID

from gopay.aggregates.errors import Forbidden
from gopay.aggregates.user import User
from gopay.group_commit import UnitOfWork


def is_merchant(user: User | None) -> bool:
    return (user is not None and user.kind == "company" and user.category == "merchant"
            and user.wallet_id is not None)


def merchant(unit: UnitOfWork, user_id: UUID) -> User:
    """The merchant `user_id` names; anyone else may not do merchant things."""
    user = unit.find(user_id, User)
    if not is_merchant(user):
        raise Forbidden("only merchants can do this")
    assert user is not None
    return user
