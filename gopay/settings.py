"""Settings: the only place that reads the environment (and an optional `.env` file)."""

from __future__ import annotations

import base64
import os
import secrets
import tempfile
from collections.abc import Callable
from functools import cached_property
from pathlib import Path
from types import MappingProxyType
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from gopay.aggregates.fees import FeeRule, FeeSchedule
from gopay.aggregates.ledger import TransactionType
from gopay.aggregates.limits import DEFAULT_LIMITS, TIERS, TierLimits
from gopay.security.keyring import KeyRing

# Where `gopay psp-sim` listens by default, and so where GoPay finds the PSP when
# GOPAY_PSP_URL names none.
BUNDLED_PSP_URL = "http://127.0.0.1:8001"


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
    kyc_limits: dict[str, TierLimits] = DEFAULT_LIMITS
    # The fee schedule per kind of payment, as JSON: {"transfer": {"fixed": 0, "bps": 50,
    # "minimum": 0, "maximum": null, "paid_by": "payer"}, ...}; a kind left out is free.
    fees: dict[TransactionType, FeeRule] = {}
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
    # The API processes of one machine hand their payments to one of them (gopay.api.one_writer);
    # off, each runs its own and they take turns in the database.
    one_writer: bool = True
    # The PSP: its base URL (unset: the bundled simulator at BUNDLED_PSP_URL), the API key
    # GoPay presents and the secret of its webhook signatures (both generated once under var/
    # when unset, so `gopay psp-sim` and GoPay on one machine agree), where the simulator
    # sends its webhooks, and how many seconds GoPay waits for an answer.
    psp_url: str | None = None
    psp_api_key: str | None = None
    psp_webhook_secret: str | None = None
    psp_webhook_url: str = "http://127.0.0.1:8000/v1/psp/webhooks"
    psp_timeout: float = Field(default=10.0, gt=0)
    # A PSP call that got no answer is tried again, waiting longer each time up to this many
    # seconds, this many times in all before it is dead-lettered; a call whose request died
    # before it was made is found this many seconds after.
    psp_retry_max_delay: float = Field(default=120.0, gt=0)
    psp_retry_attempts: int = Field(default=12, ge=1)
    psp_call_grace: float = Field(default=15.0, ge=0)
    # Fraud screening of outgoing payments: `on` holds or refuses what the rules say,
    # `monitor` only records what they would do (load tests, trying thresholds), `off`.
    fraud_screening: Literal["on", "monitor", "off"] = "on"
    # Proxies whose X-Forwarded-For names the client (addresses or networks, comma-separated);
    # from anyone else the header is ignored and the connection's address is the client's.
    trusted_proxies: str = ""
    # The mobile operators' gateway that recharges go through (unset: the PSP's URL, whose
    # bundled simulator plays the operators too) and the API key GoPay presents to it (unset:
    # the PSP's). Its calls are timed and retried as the PSP's are.
    operator_url: str | None = None
    operator_api_key: str | None = None
    # The simulator (`gopay psp-sim`): its SQLite file (default var/psp-sim.sqlite3), the
    # faults it starts with (JSON, as `POST /sim/faults` takes them), the seed of its dice,
    # its fees (JSON, see gopay/psp/simulator/fees.py) and the seconds before a disputed test
    # card's chargeback.
    psp_sim_database: Path | None = None
    psp_sim_faults: dict[str, float] = {}
    psp_sim_seed: int | None = None
    psp_sim_fees: dict[str, dict[str, int | None]] = {}
    psp_sim_dispute_delay: float = Field(default=3.0, ge=0)
    # Where queries may be served from: a standby, or several hosts with
    # `target_session_attrs=standby`; each query first waits until the standby shows
    # everything committed before it (read your writes). Unset: the primary.
    read_database_url: str | None = None
    # The private key (base64 of 32 bytes, Ed25519) that signs checkpoints of the event log's
    # chain; kept outside the database, so that rewriting the whole chain there is seen.
    audit_signing_key: str | None = None
    # Minutes between the scheduled integrity checks (the read models recomputed from the
    # events; any drift is alerted: metric, log, e-mail to admins and auditors).
    integrity_check_minutes: float = Field(default=60.0, gt=0)
    # Seconds between runs of the automated merchant payouts job (each period is paid out
    # once, whenever in its day or week the job first finds it due).
    merchant_payout_interval_seconds: float = Field(default=60.0, gt=0)
    # Where `gopay worker` serves its Prometheus metrics (its scheduled jobs' among them);
    # no port: not served.
    worker_metrics_port: int | None = Field(default=None, ge=1, le=65535)
    worker_metrics_host: str = "127.0.0.1"
    # A folder where the embedded store archives its write-ahead log, and where
    # `gopay restore` finds it again (point-in-time recovery).
    wal_archive: Path | None = None
    # Merchants: the key that signs QR payloads and the key webhook endpoints' secrets are
    # derived from (each generated once under var/ when unset); whether webhook endpoints
    # may be on loopback or private addresses (for development); each delivery attempt's
    # timeout, and the retry schedule of a delivery that got no 2xx: the first retry after
    # about `webhook_first_retry` seconds, doubling up to `webhook_max_retry_delay`, for
    # `webhook_retry_for` seconds, then the delivery is marked failed.
    qr_signing_key: str | None = None
    webhook_signing_key: str | None = None
    webhook_allow_private: bool = False
    webhook_timeout: float = Field(default=10.0, gt=0)
    webhook_first_retry: float = Field(default=30.0, gt=0)
    webhook_max_retry_delay: float = Field(default=3600.0, gt=0)
    webhook_retry_for: float = Field(default=86_400.0, ge=0)
    # Cash-outs at an agent: how long the customer's one-time code works (seconds), and how
    # many wrong codes it survives before the cash-out is cancelled and the money released.
    cash_out_code_seconds: int = Field(default=900, ge=1)
    cash_out_code_attempts: int = Field(default=3, ge=1)
    # How long a payment request stays open (seconds), by default and at most.
    payment_request_seconds: int = Field(default=7 * 86_400, ge=1)
    # How long after a payment its payer may dispute it.
    dispute_window_days: int = Field(default=60, ge=0)

    @field_validator("kyc_limits")
    @classmethod
    def _every_tier(cls, limits: dict[str, TierLimits]) -> dict[str, TierLimits]:
        """A tier left out of GOPAY_KYC_LIMITS keeps its default limits; no other tier exists."""
        unknown = set(limits) - set(TIERS)
        if unknown:
            raise ValueError(f"unknown KYC tiers {sorted(unknown)}: the tiers are {', '.join(TIERS)}")
        return {**DEFAULT_LIMITS, **limits}

    def fee_schedule(self) -> FeeSchedule:
        return FeeSchedule(MappingProxyType(dict(self.fees)))
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

    @property
    def psp_base_url(self) -> str:
        return (self.psp_url or BUNDLED_PSP_URL).rstrip("/")

    @property
    def operator_base_url(self) -> str:
        return (self.operator_url or self.psp_base_url).rstrip("/")

    @property
    def operator_key(self) -> str:
        return self.operator_api_key or self.psp_key

    @cached_property
    def psp_key(self) -> str:
        """The API key GoPay presents to the PSP: configured, or generated once and kept under var/."""
        return self.psp_api_key or self._kept("psp_api_key", lambda: "sk_sim_" + secrets.token_hex(24))

    @cached_property
    def psp_signing_secret(self) -> str:
        """The PSP webhook secret: configured, or generated once and kept under var/."""
        return self.psp_webhook_secret or self._kept(
            "psp_webhook_secret", lambda: "whsec_" + secrets.token_hex(32))

    @cached_property
    def audit_key(self) -> str:
        """The checkpoint signing key: configured, or generated once and kept under var/."""
        return self.audit_signing_key or self._kept(
            "audit_signing_key", lambda: base64.b64encode(secrets.token_bytes(32)).decode())

    @cached_property
    def qr_key(self) -> str:
        """The QR payload signing key: configured, or generated once and kept under var/."""
        return self.qr_signing_key or self._kept("qr_signing_key", lambda: secrets.token_urlsafe(48))

    @cached_property
    def webhook_key(self) -> str:
        """What webhook endpoints' secrets derive from: configured, or generated once under var/."""
        return self.webhook_signing_key or self._kept("webhook_signing_key",
                                                      lambda: secrets.token_urlsafe(48))

    def _kept(self, name: str, generate: Callable[[], str]) -> str:
        """A secret kept in a file under var/ that only this user can read, made on first use.

        The file appears whole or not at all (written aside, then linked into place), so two
        processes starting together, such as the API and the PSP simulator, agree on it.
        """
        path = self.var_dir / name
        if not path.exists():
            self.var_dir.mkdir(parents=True, exist_ok=True)
            descriptor, draft = tempfile.mkstemp(dir=self.var_dir, prefix=f".{name}.")
            try:
                with os.fdopen(descriptor, "w") as file:  # mkstemp makes it 0600
                    file.write(generate())
                os.link(draft, path)
            except FileExistsError:
                pass  # another process made it first: use theirs
            finally:
                os.unlink(draft)
        return path.read_text().strip()

