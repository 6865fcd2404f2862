"""Replay for auditors: the log's events decoded, any aggregate as it was, any account's
balance at a moment."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, is_dataclass
from datetime import datetime
from enum import Enum
from types import MappingProxyType
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate
from eventsourcing.utils import get_topic

from gopay.aggregates import device, payment_method, payment_order, psp_task, session, user, wallet
from gopay.aggregates.errors import NotFound
from gopay.aggregates.ledger import SystemAccount
from gopay.aggregates.payment_order import PaymentOrder
from gopay.aggregates.wallet import Wallet
from gopay.application import GoPay
from gopay.recorder import EventRecorder

# What an auditor does not need to see to follow what happened: secrets, hashes of secrets,
# and identity documents (they are sealed in the store; their existence is recorded).
HIDDEN = frozenset({"password_hash", "secret", "recovery_code_digests", "digest",
                    "token_digest", "refresh_digest", "document_number", "request_digest",
                    "fingerprint", "originator_id", "originator_version", "timestamp",
                    "originator_topic"})


@dataclass(frozen=True)
class LoggedEvent:
    position: int
    aggregate_id: UUID
    version: int
    type: str
    timestamp: datetime
    data: dict[str, Any]
    hash: str


def events(app: GoPay, *, after: int = 0, limit: int = 50, aggregate_id: UUID | None = None,
           event_type: str | None = None) -> list[LoggedEvent]:
    """The stored events after `after`, oldest first, decoded, with their chain digests."""
    recorder = _recorder(app)
    topics = _topics(event_type) if event_type else ()
    if event_type and not topics:
        return []
    notifications = recorder.log(after=after, limit=limit, originator_id=aggregate_id,
                                 topics=topics)
    digests = recorder.digests([n.id for n in notifications])
    logged = []
    for notification in notifications:
        event: Any = app.mapper.to_domain_event(notification)
        logged.append(LoggedEvent(
            position=notification.id, aggregate_id=event.originator_id,
            version=event.originator_version, type=type(event).__qualname__,
            timestamp=event.timestamp,
            data={k: plain(v) for k, v in vars(event).items() if k not in HIDDEN},
            hash=digests.get(notification.id, b"").hex()))
    return logged


def aggregate_at(app: GoPay, aggregate_id: UUID, *, at: datetime | None = None,
                 version: int | None = None) -> Aggregate:
    """An aggregate replayed to a version, or as it was at a moment."""
    if at is not None:
        version = None
        stored: Any
        for stored in app.repository.event_store.get(aggregate_id):
            if stored.timestamp > at:
                break
            version = stored.originator_version
        if version is None:
            raise NotFound("that did not exist yet")
    try:
        found: Aggregate = app.repository.get(aggregate_id, version=version)
    except Exception:  # noqa: BLE001 - the library's not-found and bad-version alike
        raise NotFound("no such aggregate at that point") from None
    return found


def state(aggregate: Aggregate) -> dict[str, Any]:
    """An aggregate's attributes as plain JSON values (secrets left out)."""
    return {k.lstrip("_"): plain(v) for k, v in vars(aggregate).items()
            if not k.startswith("_pending") and k.lstrip("_") not in HIDDEN | {"id"}}


@dataclass(frozen=True)
class Balance:
    account: str
    balance: int
    currency: str
    at: datetime | None


def balance_at(app: GoPay, account: str, *, at: datetime | None = None,
               currency: str = "USD") -> Balance:
    """A wallet's or a GoPay account's balance at a moment (now, without one)."""
    try:
        system = SystemAccount(account)
    except ValueError:
        system = None
    if system is None:
        try:
            wallet_id = UUID(account)
        except ValueError:
            raise NotFound("no such account") from None
        found = aggregate_at(app, wallet_id, at=at)
        if not isinstance(found, Wallet):
            raise NotFound("no such account")
        return Balance(account, found.balance, found.currency, at)
    account_id = system.account_id(currency)
    total, after = 0, 0
    topics = [get_topic(PaymentOrder.Succeeded), get_topic(PaymentOrder.Reversed)]
    recorder = _recorder(app)
    while page := recorder.log(after=after, limit=2000, topics=topics):
        for notification in page:
            event: Any = app.mapper.to_domain_event(notification)
            if at is not None and event.timestamp > at:
                return Balance(account, total, currency, at)
            total += sum(p["amount"] for p in event.postings if UUID(p["account_id"]) == account_id)
        after = page[-1].id
    return Balance(account, total, currency, at)


def plain(value: Any) -> Any:  # noqa: PLR0911 - one answer per kind of value
    """A value as JSON can carry it."""
    if isinstance(value, Enum):
        return plain(value.value)
    if isinstance(value, UUID | datetime):
        return str(value) if isinstance(value, UUID) else value.isoformat()
    if isinstance(value, Mapping | MappingProxyType):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, tuple | list | frozenset | set):
        return [plain(v) for v in value]
    if is_dataclass(value) and not isinstance(value, type):
        return {k: plain(v) for k, v in vars(value).items()}
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


def _topics(event_type: str) -> list[str]:
    """The topics an event type names: `Wallet.Debited`, or `Debited` of any aggregate."""
    found = []
    for module in (device, payment_method, payment_order, psp_task, session, user, wallet):
        for cls in vars(module).values():
            if isinstance(cls, type) and issubclass(cls, Aggregate) and cls is not Aggregate:
                for name, member in vars(cls).items():
                    if (isinstance(member, type) and issubclass(member, Aggregate.Event)
                            and event_type in (name, f"{cls.__name__}.{name}")):
                        found.append(get_topic(member))
    return sorted(set(found))


def _recorder(app: GoPay) -> EventRecorder:
    recorder = app.recorder
    if not isinstance(recorder, EventRecorder):
        raise TypeError("the log is read through GoPay's PostgreSQL recorder")
    return recorder
