"""A sign-in session: the family of refresh tokens one login started, and its revocation."""

from __future__ import annotations

import hashlib
import hmac
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from gopay.aggregates.errors import Unauthenticated


class SessionRevoked(Unauthenticated):
    pass


def token_digest(secret: str) -> str:
    """Refresh secrets are random 256-bit strings: a plain SHA-256 is enough to not keep them."""
    return hashlib.sha256(secret.encode()).hexdigest()


class Session(Aggregate):
    """Alive until logout, lock or reuse of an old refresh token revokes it."""

    @event("Started")
    def __init__(self, id: UUID, user_id: UUID, device_id: str | None,
                 refresh_digest: str) -> None:
        self.user_id = user_id
        self.device_id = device_id
        self.refresh_digest = refresh_digest
        self.revoked = False

    def rotate(self, presented_secret: str, new_digest: str) -> None:
        """Swap the refresh token; presenting a used one means it leaked, so the family dies."""
        if self.revoked:
            raise SessionRevoked("this session has ended")
        if not hmac.compare_digest(token_digest(presented_secret), self.refresh_digest):
            self.revoke(reason="refresh_token_reused")
            return
        self._rotated(refresh_digest=new_digest)

    def revoke(self, *, reason: str) -> None:
        if not self.revoked:
            self._revoked(reason=reason)

    @event("Rotated")
    def _rotated(self, refresh_digest: str) -> None:
        self.refresh_digest = refresh_digest

    class Revoked(Aggregate.Event):
        reason: str

    @event(Revoked)
    def _revoked(self, reason: str) -> None:
        self.revoked = True
