"""Domain errors: each names a broken business rule and carries the stable API code."""


class DomainError(Exception):
    """A command broke a business rule; nothing was changed."""

    code = "validation_error"
    status = 422


class ValidationFailed(DomainError):
    code = "validation_error"


class InsufficientFunds(DomainError):
    code = "insufficient_funds"


class CurrencyMismatch(DomainError):
    code = "currency_mismatch"


class Unauthenticated(DomainError):
    """Credentials (a password, a token, a session) that do not or no longer hold."""

    code = "unauthenticated"
    status = 401


class AccountFrozen(DomainError):
    code = "account_frozen"
    status = 423


class InvalidState(DomainError):
    code = "invalid_state"
    status = 409


class IdempotencyConflict(DomainError):
    code = "idempotency_conflict"
    status = 409


class EmailTaken(DomainError):
    code = "email_taken"
    status = 409


class PhoneTaken(DomainError):
    code = "phone_taken"
    status = 409


class NotFound(DomainError):
    code = "not_found"
    status = 404


class Unbalanced(DomainError):
    """A journal entry whose postings do not sum to zero per currency: a bug, never input."""

    code = "unbalanced_entry"
    status = 422
