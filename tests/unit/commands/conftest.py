"""Fixtures of the command stories: GoPay in memory, on a clock the story sets."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from argon2 import PasswordHasher, profiles

from gopay.aggregates.payment_method import PaymentMethod
from gopay.aggregates.user import User
from gopay.security import passwords
from tests.unit.commands.in_memory import InMemoryGoPay


@pytest.fixture(autouse=True, scope="package")
def cheap_password_hashing() -> Iterator[None]:
    """Hash with Argon2's own cheapest profile: a real Argon2id hash, in a millisecond.

    The production parameters cost a tenth of a second per hash, which is their point and
    would be most of these stories' time; what the stories check is what the flows do with
    passwords, and that does not depend on the cost.
    """
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(passwords, "_hasher", PasswordHasher.from_parameters(profiles.CHEAPEST))
        yield


@pytest.fixture
def gopay() -> InMemoryGoPay:
    return InMemoryGoPay()


@pytest.fixture
def ada(gopay: InMemoryGoPay) -> User:
    """A customer with a wallet (stories that pay need to fund it)."""
    return gopay.register("ada@example.com")


@pytest.fixture
def visa(gopay: InMemoryGoPay, ada: User) -> PaymentMethod:
    return gopay.add_card(ada)
