"""The security read model: each account's security history, and the devices it signs in from.

The history is what staff and auditors read about an account: sign-ins (with address and
device), failures, second factors, recovery, device locks, KYC, profile and role changes,
and the wallet's freezes and tier changes. Secrets (password hashes, TOTP secrets, recovery
code digests, document numbers) never reach it.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any
from uuid import UUID

from eventsourcing.dispatch import singledispatchmethod
from eventsourcing.domain import Aggregate
from eventsourcing.persistence import Tracking
from eventsourcing.projection import Projection
from psycopg import Cursor
from psycopg.rows import DictRow

from gopay.aggregates.user import User
from gopay.aggregates.wallet import Wallet
from gopay.projections.view import PagedView

# User events that make up an account's security history, and those of its wallet.
USER_EVENTS = ("Registered", "LoggedIn", "LoginFailed", "PasswordRehashed", "PasswordReset",
               "RecoveryRequested", "TotpSetUp", "TotpEnabled", "TotpDisabled",
               "RecoveryCodeUsed", "RecoveryCodesRenewed", "DeviceLocked", "DeviceReenrolled",
               "KycSubmitted", "KycDecided", "ProfileChanged", "RoleChanged")
WALLET_EVENTS = ("Frozen", "Unfrozen", "TierChanged")
RECORDED = frozenset([*(getattr(User, name) for name in USER_EVENTS),
                      *(getattr(Wallet, name) for name in WALLET_EVENTS)])
HIDDEN = frozenset({"password_hash", "secret", "recovery_code_digests", "digest",
                    "token_digest", "document_number", "originator_id", "originator_version",
                    "timestamp", "originator_topic"})


class SecurityView(PagedView):
    """Security events per account (user or wallet id), and devices per user."""

    tables = ("security_events", "devices")
    schema_statements = (
        """CREATE TABLE IF NOT EXISTS security_events (
            position bigint NOT NULL, subject_id uuid NOT NULL, version bigint NOT NULL,
            type text NOT NULL, at timestamptz NOT NULL, data jsonb NOT NULL,
            PRIMARY KEY (subject_id, version))""",
        """CREATE TABLE IF NOT EXISTS devices (
            user_id uuid NOT NULL, device_id text NOT NULL, enrolled_at text NOT NULL,
            last_login_at text NOT NULL, locked boolean NOT NULL DEFAULT false,
            wipe boolean NOT NULL DEFAULT false, PRIMARY KEY (user_id, device_id))""",
        """CREATE INDEX IF NOT EXISTS devices_device_idx ON devices (device_id)""",
    )

    def start_page(self) -> None:
        self._events: list[tuple[Any, ...]] = []
        self._devices: list[tuple[Any, ...]] = []  # (user, device, at, locked, wipe) in order

    def security_event(self, position: int, subject_id: UUID, version: int, kind: str,
                       at: datetime, data: dict[str, Any]) -> None:
        self._events.append((position, subject_id, version, kind, at,
                             json.dumps(data, default=str)))

    def device_used(self, user_id: UUID, device_id: str, at: str) -> None:
        self._devices.append((user_id, device_id, at, None, None))

    def device_locked(self, user_id: UUID, device_id: str, *, locked: bool, wipe: bool) -> None:
        self._devices.append((user_id, device_id, None, locked, wipe))

    def write_page(self, cursor: Cursor[DictRow]) -> None:
        if self._events:
            cursor.executemany(
                "INSERT INTO security_events (position, subject_id, version, type, at, data) "
                "VALUES (%s, %s, %s, %s, %s, %s)", self._events)
        for user_id, device_id, at, locked, wipe in self._devices:
            cursor.execute(
                "INSERT INTO devices AS d (user_id, device_id, enrolled_at, last_login_at) "
                "VALUES (%s, %s, %s, %s) ON CONFLICT (user_id, device_id) DO UPDATE SET "
                "last_login_at = COALESCE(%s, d.last_login_at), "
                "locked = COALESCE(%s, d.locked), wipe = COALESCE(%s, d.wipe)",
                (user_id, device_id, at or "", at or "", at, locked, wipe))

    def history(self, *subject_ids: UUID) -> list[dict[str, Any]]:
        """The security events of these accounts (a user and its wallet), oldest first."""
        return self.query("SELECT * FROM security_events WHERE subject_id = ANY(%s) "
                          "ORDER BY position", (list(subject_ids),))

    def devices(self, user_id: UUID) -> list[dict[str, Any]]:
        """A user's devices, most recently used first."""
        return self.query("SELECT * FROM devices WHERE user_id = %s "
                          "ORDER BY last_login_at DESC, device_id", (user_id,))

    def device_status(self, device_id: str) -> tuple[bool, bool]:
        """(locked, wipe): locked when any account locked it, wiped when any asked to."""
        [row] = self.query("SELECT coalesce(bool_or(locked), false) AS locked, "
                           "coalesce(bool_or(locked AND wipe), false) AS wipe "
                           "FROM devices WHERE device_id = %s", (device_id,))
        return row["locked"], row["wipe"]


class SecurityProjection(Projection[SecurityView]):
    """Turns security events of users and wallets into the security view."""

    name = "security_projection"

    @singledispatchmethod
    def process_event(self, domain_event: Any, tracking: Tracking) -> None:
        if type(domain_event) in RECORDED:
            self._record(domain_event, tracking)

    @process_event.register
    def _(self, e: User.LoggedIn, tracking: Tracking) -> None:
        self._record(e, tracking)
        if e.device_id is not None:
            self.view.device_used(e.originator_id, e.device_id, e.at)

    @process_event.register
    def _(self, e: User.DeviceLocked, tracking: Tracking) -> None:
        self._record(e, tracking)
        self.view.device_locked(e.originator_id, e.device_id, locked=True, wipe=e.wipe)

    @process_event.register
    def _(self, e: User.DeviceReenrolled, tracking: Tracking) -> None:
        self._record(e, tracking)
        self.view.device_locked(e.originator_id, e.device_id, locked=False, wipe=False)

    def _record(self, e: Aggregate.Event, tracking: Tracking) -> None:
        data = {k: v for k, v in vars(e).items() if k not in HIDDEN}
        self.view.security_event(tracking.notification_id, e.originator_id,
                                 e.originator_version, type(e).__name__, e.timestamp, data)
