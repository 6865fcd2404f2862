"""GoPay as a running system: the application, its commands and its read side over one database."""

from __future__ import annotations

import gc
import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from uuid import UUID

import psycopg
from eventsourcing.persistence import OperationalError
from prometheus_client import Counter
from psycopg_pool import PoolTimeout
from tenacity import stop_after_attempt, wait_exponential_jitter

from gopay.application import GoPay, application_env
from gopay.clock import Clock, utc_now
from gopay.commands import Commands, Context
from gopay.notifications import outbox
from gopay.notifications.outbox import Outbox
from gopay.operators.http_adapter import HttpOperators
from gopay.processes.merchant_webhooks import WebhookDeliverer, retry_policy
from gopay.processes.psp import Policies, PspProcess
from gopay.projections.read_side import ReadSide
from gopay.psp.http_adapter import HttpPsp
from gopay.reconcile.audit import Signer
from gopay.retry import RetryPolicy
from gopay.security import data_keys, login_throttle, vault
from gopay.security.login_throttle import LoginThrottle
from gopay.security.vault import Vault
from gopay.settings import Settings

log = logging.getLogger(__name__)

READ_YOUR_WRITES_TIMEOUTS = Counter(
    "gopay_read_your_writes_timeouts_total",
    "Commands answered before the read side showed them (it was too far behind)")

# Advisory lock key under which one process at a time creates the tables.
SCHEMA_LOCK = 0x60BA7


def command_context(app: GoPay, settings: Settings, clock: Clock = utc_now) -> Context:
    """What the commands of `app` work with, as `settings` configure it."""
    stores = app.stores
    return Context(
        app=app, clock=clock, limits=settings.kyc_limits, fees=settings.fee_schedule(),
        vault=Vault(app.data_keys, stores.secrets),
        outbox=Outbox(stores.messages, app.data_keys, settings.smtp_url, settings.mail_from),
        login_throttle=LoginThrottle(stores.failures,
                                     per_account=settings.login_failures_per_account,
                                     per_address=settings.login_failures_per_address,
                                     window=timedelta(seconds=settings.login_window_seconds)),
        recovery_ttl=timedelta(minutes=settings.recovery_token_minutes),
        psp_call_grace=timedelta(seconds=settings.psp_call_grace),
        fraud_screening=settings.fraud_screening,
        dispute_window=timedelta(days=settings.dispute_window_days))


@dataclass
class System:
    """What one process runs: commands (GoPay) and queries (ReadSide)."""

    settings: Settings
    app: GoPay
    commands: Commands
    read_side: ReadSide
    psp: HttpPsp
    psp_process: PspProcess
    signer: Signer
    webhooks: WebhookDeliverer
    operators: HttpOperators

    @classmethod
    def connect(cls, settings: Settings, database_url: str, *, create_tables: bool = False) -> System:
        env = {**application_env(database_url, pool_size=settings.db_pool_size),
               "CREATE_TABLE": "y" if create_tables else "n"}
        app = GoPay(settings.key_ring(), env=env)
        commands = Commands(command_context(app, settings))
        read_side = ReadSide(app, database_url, create_tables=create_tables,
                             read_url=settings.read_database_url)
        psp = HttpPsp.from_settings(settings)

        def due(limit: int) -> list[UUID]:
            return read_side.psp_tasks.due(limit, commands.context.clock())

        policies = Policies(call=RetryPolicy(
            wait=wait_exponential_jitter(multiplier=1, max=settings.psp_retry_max_delay),
            stop=stop_after_attempt(settings.psp_retry_attempts)))
        webhooks = WebhookDeliverer(
            read_side.webhooks, settings.webhook_key,
            retry_policy(settings.webhook_first_retry, settings.webhook_max_retry_delay,
                         settings.webhook_retry_for),
            timeout=settings.webhook_timeout, allow_private=settings.webhook_allow_private)
        operators = HttpOperators.from_settings(settings)
        commands.context.outbox.letters = read_side.notifications.letter
        return cls(settings, app, commands, read_side, psp,
                   PspProcess(commands, psp, due, policies, operators), Signer(settings.audit_key),
                   webhooks, operators)

    @property
    def outbox(self) -> Outbox:
        return self.commands.context.outbox

    def catch_up_reads(self) -> None:
        """Before a query: wait until the read side shows everything committed so far.

        This is how callers read their own writes: a command answers as soon as its events
        are durable, and any read that starts after that answer waits here until the
        projections have passed it. Writes never wait for the read side.
        """
        self.show(self.head())

    def head(self) -> int:
        """The position of the last event committed so far."""
        return self.app.recorder.max_notification_id() or 0

    def show(self, position: int) -> None:
        """Wait until the read side shows log `position`.

        If the read side is further behind than the timeout (no projection runner alive,
        say) the query goes ahead on what there is, and this is counted.
        """
        if not self.read_side.wait_for(position, self.settings.read_your_writes_timeout):
            READ_YOUR_WRITES_TIMEOUTS.inc()
            log.warning("read side did not reach position %d in time", position)

    def store_takes_writes(self) -> bool:
        """Whether the store's server is a writable primary (not a standby, not read-only),
        asked as libpq's `target_session_attrs=read-write` asks it. Connections broken by a
        failover are replaced first, so the answer is about the store now."""
        datastore: Any = self.app.recorder.datastore  # type: ignore[attr-defined]  # the PostgreSQL recorder's, not the protocol's
        try:
            return _is_writable(datastore)
        except OperationalError as error:
            if isinstance(error.__cause__, PoolTimeout):  # no server to connect to at all
                raise
            datastore.pool.check()
            return _is_writable(datastore)

    def close(self) -> None:
        self.webhooks.close()
        self.psp.close()
        self.operators.close()
        self.read_side.stop()
        self.app.close()


def _is_writable(datastore: Any) -> bool:
    with datastore.get_connection() as conn:
        row = conn.execute("SELECT current_setting('transaction_read_only') AS read_only"
                           ).fetchone()
    return row is not None and row["read_only"] == "off"


def settle_memory() -> None:
    """Once a process has started: leave what it loaded (modules, models, routes) out of
    garbage collection, so that full passes only walk what the process makes while it runs.
    They took 110-190 ms every 1.3 s under load before, and 5-70 ms after."""
    gc.collect()
    gc.freeze()


def prepare_database(settings: Settings, database_url: str) -> None:
    """Create the event store and every view's tables, once, before any server starts.

    Processes started together (a server and a worker after a reboot) take turns: creating
    the same types and functions at the same moment fails in PostgreSQL.
    """
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (SCHEMA_LOCK,))
        try:
            System.connect(settings, database_url, create_tables=True).close()
            for statement in (login_throttle.CREATE_TABLE, data_keys.CREATE_TABLE,
                              outbox.CREATE_TABLE, vault.CREATE_TABLE):
                conn.execute(statement)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (SCHEMA_LOCK,))
