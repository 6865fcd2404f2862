"""Settings: the only place that reads the environment (and an optional `.env` file)."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from gopay.aggregates.limits import DEFAULT_LIMITS, TierLimits
from gopay.security.keyring import KeyRing


class Settings(BaseSettings):
    """GoPay's configuration, from `GOPAY_*` variables."""

    model_config = SettingsConfigDict(env_prefix="GOPAY_", env_file=".env", extra="ignore")

    database_url: str | None = None
    secret_key: str | None = None
    # Master keys for data at rest, `id1:base64key,id2:base64key`; the first one encrypts.
    encryption_keys: str | None = None
    var_dir: Path = Path("var")
    access_token_minutes: int = 15
    refresh_token_days: int = 30
    db_pool_size: int = 10
    # Threads that run request handlers in each API process.
    request_threads: int = 128
    # How long a command waits for the read side to show its effect (read your writes).
    read_your_writes_timeout: float = 10.0
    # Failed sign-ins allowed per window before 429 (per account, per client address).
    login_failures_per_account: int = 5
    login_failures_per_address: int = 50
    login_window_seconds: int = 900
    # What each KYC tier may spend and hold, in minor units, as JSON:
    # {"unverified": {"per_payment": 10000, "per_day": 30000, "max_balance": 100000}, ...}
    kyc_limits: dict[Literal["unverified", "verified"], TierLimits] = DEFAULT_LIMITS
    # Payments from this amount (minor units) up need a fresh 2FA code, when 2FA is on.
    step_up_amount: int = 50_000
    # E-mail: `smtp://host:port` (or smtps://user:password@host:port); without it, e-mails
    # wait in the outbox.
    smtp_url: str | None = None
    mail_from: str = "GoPay <no-reply@gopay.example>"
    recovery_token_minutes: int = 30
    # A PEM certificate and key: `gopay serve` then speaks HTTPS only.
    tls_cert: Path | None = None
    tls_key: Path | None = None
    # Run the projections inside `gopay serve` (one process at a time holds each of them).
    serve_runs_projections: bool = True
    # A folder where the embedded store archives its write-ahead log, and where
    # `gopay restore` finds it again (point-in-time recovery).
    wal_archive: Path | None = None

    @field_validator("kyc_limits")
    @classmethod
    def _every_tier(cls, limits: dict[str, TierLimits]) -> dict[str, TierLimits]:
        """A tier left out of GOPAY_KYC_LIMITS keeps its default limits."""
        return {**DEFAULT_LIMITS, **limits}

    @property
    def embedded_data_dir(self) -> Path:
        """The embedded store's PostgreSQL data folder."""
        return self.var_dir / "postgres"

    @cached_property  # read once: every request needs it
    def signing_key(self) -> str:
        """The token signing key: configured, or generated once and kept under var/."""
        return self.secret_key or self._kept("secret_key", lambda: secrets.token_urlsafe(48))

    def key_ring(self) -> KeyRing:
        """The master keys for data at rest: configured, or generated once and kept under var/."""
        return KeyRing.parse(self.key_ring_text())

    def key_ring_text(self) -> str:
        return self.encryption_keys or self._kept("encryption_keys", KeyRing.new_entry)

    def _kept(self, name: str, generate: Callable[[], str]) -> str:
        """A secret kept in a file under var/ that only this user can read, made on first use."""
        path = self.var_dir / name
        if not path.exists():
            self.var_dir.mkdir(parents=True, exist_ok=True)
            path.touch(mode=0o600)
            path.write_text(generate())
        return path.read_text().strip()

