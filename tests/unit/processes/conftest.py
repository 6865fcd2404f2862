"""Fixtures of the process stories: the same in-memory GoPay as the command stories."""

from __future__ import annotations

from tests.unit.commands.conftest import cheap_password_hashing, gopay

__all__ = ["cheap_password_hashing", "gopay"]
