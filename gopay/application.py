"""The GoPay event-sourced application: persistence, the mapper and the group committer.

It only wires things together. What changes GoPay is in `gopay.commands` (one module per
flow), what GoPay shows is in `gopay.projections`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.domain import Aggregate
from eventsourcing.persistence import Mapper
from eventsourcing.postgres import PostgresApplicationRecorder
from psycopg.conninfo import conninfo_to_dict

from gopay.aggregates.errors import NotFound
from gopay.aggregates.payment_method import PAYMENT_METHOD_SEALED_FIELDS
from gopay.aggregates.payment_order import OrderStatus, PaymentOrder
from gopay.aggregates.user import PERSONAL_FIELDS
from gopay.group_commit import GroupCommitter
from gopay.notifications.outbox import MemoryMessageStore, MessageStore, PostgresMessageStore
from gopay.recorder import EventRecorder, stored_versions
from gopay.security.data_keys import DataKeys, KeyStore, MemoryKeyStore, PostgresKeyStore
from gopay.security.keyring import KeyRing
from gopay.security.login_throttle import FailureCounts, MemoryFailureCounts, PostgresFailureCounts
from gopay.security.sealing import SealingMapper
from gopay.security.vault import MemorySecretStore, PostgresSecretStore, SecretStore

TAggregate = TypeVar("TAggregate", bound=Aggregate)

# The library's persistence module per kind of store.
POSTGRES = "eventsourcing.postgres"
IN_MEMORY = "eventsourcing.popo"


@dataclass(frozen=True)
class Stores:
    """What GoPay keeps beside the events, in the same database (or in memory with it)."""

    keys: KeyStore
    secrets: SecretStore
    messages: MessageStore
    failures: FailureCounts

    @classmethod
    def beside(cls, recorder: Any) -> Stores:
        if isinstance(recorder, PostgresApplicationRecorder):
            datastore = recorder.datastore
            return cls(PostgresKeyStore(datastore), PostgresSecretStore(datastore),
                       PostgresMessageStore(datastore), PostgresFailureCounts(datastore))
        return cls(MemoryKeyStore(), MemorySecretStore(), MemoryMessageStore(),
                   MemoryFailureCounts())


class GoPay(Application[UUID]):
    """Wallets, payment orders and users, persisted as events (PostgreSQL, or memory in tests)."""

    name = "gopay"
    env: ClassVar[dict[str, str]] = {
        "PERSISTENCE_MODULE": POSTGRES,
        "AGGREGATE_CACHE_MAXSIZE": "50000",
        "AGGREGATE_CACHE_FASTFORWARD": "y",
        # Reads outside commands never change what they get; commands work on their own copies.
        "DEEPCOPY_FROM_AGGREGATE_CACHE": "n",
        "APPLICATION_RECORDER_TOPIC": "gopay.recorder:EventRecorder",
    }

    def __init__(self, key_ring: KeyRing, env: dict[str, str] | None = None) -> None:
        self.data_keys = DataKeys(key_ring, MemoryKeyStore())  # the mapper needs it first
        super().__init__(env)
        self.stores = Stores.beside(self.recorder)
        self.data_keys.store = self.stores.keys
        # A payment order is usually finished when it is saved. Keeping thousands of them in
        # memory only lengthened the garbage collector's full passes: 130 ms every 1.3 s at
        # 1,000 transfers/s, which was most of the p99 latency. A pending one (a top-up
        # waiting for the PSP) is remembered until it is finished: the PSP's answer comes
        # within a second, and reading it back from the store held up the writer's batch.
        self.committer = GroupCommitter(
            self, lambda ids: stored_versions(self.recorder, ids),
            remember=lambda aggregate: (not isinstance(aggregate, PaymentOrder)
                                        or aggregate.status == OrderStatus.PENDING),
            turn=self.recorder.writers_turn if isinstance(self.recorder, EventRecorder) else None)

    @classmethod
    def in_memory(cls, key_ring: KeyRing | None = None) -> GoPay:
        """GoPay on the library's in-memory persistence: commands tested without a database."""
        return cls(key_ring or KeyRing.parse(KeyRing.new_entry()),
                   env={"PERSISTENCE_MODULE": IN_MEMORY})

    def construct_mapper(self) -> Mapper[UUID]:
        """Stored events hold personal data sealed under each user's data key."""
        return SealingMapper(self.construct_transcoder(), self.data_keys,
                             {**PERSONAL_FIELDS, **PAYMENT_METHOD_SEALED_FIELDS})

    def find(self, aggregate_id: UUID, kind: type[TAggregate]) -> TAggregate | None:
        """The aggregate as it is now, or None if there is none of that kind."""
        try:
            aggregate: Aggregate = self.repository.get(aggregate_id)
        except AggregateNotFoundError:
            return None
        return aggregate if isinstance(aggregate, kind) else None

    def get(self, aggregate_id: UUID, kind: type[TAggregate]) -> TAggregate:
        """`find`, for an aggregate that must exist: NotFound otherwise."""
        found = self.find(aggregate_id, kind)
        if found is None:
            raise NotFound(f"{kind.__name__.lower()} not found")
        return found


def application_env(database_url: str, pool_size: int = 10) -> dict[str, str]:
    """The eventsourcing library's settings for a PostgreSQL URL."""
    info = conninfo_to_dict(database_url)
    return {
        # The library's PostgreSQL, also given the URL's other parameters (gopay/datastore.py).
        "PERSISTENCE_MODULE": "gopay.datastore:PostgresFactory",
        "POSTGRES_CONNINFO": database_url,
        "POSTGRES_DBNAME": str(info.get("dbname", "gopay")),
        "POSTGRES_HOST": str(info.get("host", "127.0.0.1")),
        "POSTGRES_PORT": str(info.get("port", "5432")),
        "POSTGRES_USER": str(info.get("user", "postgres")),
        "POSTGRES_PASSWORD": str(info.get("password", "")),
        "POSTGRES_POOL_SIZE": str(pool_size),
        "POSTGRES_MAX_OVERFLOW": str(pool_size * 2),
        "POSTGRES_CONN_MAX_AGE": "3600",
        # Wait at most 5 s for a connection (the library's default is 30): with no primary,
        # a command hears it in seconds, and the next request's connection finds a new one.
        "POSTGRES_CONNECT_TIMEOUT": "5",
        "POSTGRES_LOCK_TIMEOUT": "10",
        "POSTGRES_IDLE_IN_TRANSACTION_SESSION_TIMEOUT": "10",
    }
