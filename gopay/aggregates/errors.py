"""Domain errors: each names a broken business rule by a stable code; the API maps codes to HTTP."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any


class DomainError(Exception):
    """A command broke a business rule; nothing was changed."""

    code = "validation_error"

    def __init__(self, detail: str = "", **details: Any) -> None:
        super().__init__(detail)
        # Machine-readable facts the caller can act on (the id of what already exists, say).
        self.details: Mapping[str, Any] = MappingProxyType(details)


class ValidationFailed(DomainError):
    code = "validation_error"


class InsufficientFunds(DomainError):
    code = "insufficient_funds"


class CurrencyMismatch(DomainError):
    code = "currency_mismatch"


class Unauthenticated(DomainError):
    """Credentials (a password, a token, a session) that do not or no longer hold."""

    code = "unauthenticated"


class AccountFrozen(DomainError):
    code = "account_frozen"


class InvalidState(DomainError):
    code = "invalid_state"


class IdempotencyConflict(DomainError):
    code = "idempotency_conflict"


class EmailTaken(DomainError):
    code = "email_taken"


class PhoneTaken(DomainError):
    code = "phone_taken"


class NotFound(DomainError):
    code = "not_found"


class Forbidden(DomainError):
    """The caller is who they say, but may not do this."""

    code = "forbidden"


class TooManyAttempts(DomainError):
    """Sign-ins (or recoveries) from this account or address are paused for a while."""

    code = "rate_limited"

    def __init__(self, detail: str, *, retry_after: int) -> None:
        super().__init__(detail, retry_after=retry_after)
        self.retry_after = retry_after


class Unbalanced(DomainError):
    """A journal entry whose postings do not sum to zero per currency: a bug, never input."""

    code = "unbalanced_entry"
