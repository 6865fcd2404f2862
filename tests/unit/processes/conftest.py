"""Fixtures of the process stories: the same in-memory GoPay as the command stories."""

from __future__ import annotations

from tests.unit.commands.conftest import ada, cheap_password_hashing, gopay, visa

__all__ = ["ada", "cheap_password_hashing", "gopay", "visa"]
