"""The GoPay event-sourced application: every business command, group-committed with others."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, TypeVar
from uuid import UUID, uuid4, uuid5

from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.domain import Aggregate
from eventsourcing.persistence import InterfaceError, Mapper, OperationalError
from eventsourcing.utils import retry
from psycopg.sql import SQL, Identifier

from gopay.aggregates.errors import (
    AccountFrozen,
    DomainError,
    EmailTaken,
    IdempotencyConflict,
    InsufficientFunds,
    NotFound,
    PhoneTaken,
    ValidationFailed,
)
from gopay.aggregates.ledger import LEDGER_NAMESPACE, Posting, SystemAccount
from gopay.aggregates.limits import DEFAULT_LIMITS, LimitExceeded, TierLimits
from gopay.aggregates.money import Money
from gopay.aggregates.payment_method import PAYMENT_METHOD_SEALED_FIELDS
from gopay.aggregates.payment_order import PaymentOrder, order_id_for
from gopay.aggregates.session import Session, SessionRevoked, token_digest
from gopay.aggregates.user import (
    CUSTOMER_KINDS,
    PERSONAL_FIELDS,
    STAFF_ROLES,
    EmailIndex,
    PhoneIndex,
    User,
)
from gopay.aggregates.wallet import Wallet
from gopay.group_commit import GroupCommitter, UnitOfWork
from gopay.security.data_keys import DataKeys
from gopay.security.keyring import KeyRing
from gopay.security.passwords import hash_password, needs_rehash, verify_password
from gopay.security.sealing import SealingMapper
from gopay.security.tokens import new_refresh_token, split_refresh_token

T = TypeVar("T")
TAggregate = TypeVar("TAggregate", bound=Aggregate)

# Refusals the ledger decides (not input errors): a keyed request that meets one records
# a failed order, so repeating the key repeats the refusal instead of trying again.
RECORDED_REFUSALS: dict[str, type[DomainError]] = {
    error.code: error for error in (InsufficientFunds, AccountFrozen, LimitExceeded)
}


@dataclass(frozen=True)
class Outcome(Generic[T]):
    """What a command produced, and the log position the read side must reach to show it."""

    value: T
    position: int


@dataclass(frozen=True)
class MoneyCommand:
    """A money command ready to run: blocking with `run()`, or awaited with `run_async()`."""

    app: GoPay
    command: Callable[[UnitOfWork], tuple[PaymentOrder, bool]]
    probes: tuple[UUID, ...]

    def run(self) -> Outcome[PaymentOrder]:
        (order, replayed), position = self.app.committer.execute(self.command, self.probes)
        return self._outcome(order, replayed, position)

    async def run_async(self) -> Outcome[PaymentOrder]:
        (order, replayed), position = await self.app.committer.execute_async(
            self.command, self.probes)
        if replayed and order.status != "failed":
            position = await asyncio.to_thread(self.app.recorder.max_notification_id) or 0
        return self._outcome(order, False, position)

    def _outcome(self, order: PaymentOrder, replayed: bool, position: int) -> Outcome[PaymentOrder]:
        if order.status == "failed" and order.failure_reason in RECORDED_REFUSALS:
            raise RECORDED_REFUSALS[order.failure_reason](order.failure_detail)
        if replayed:  # the answer of a request already made: show everything up to now
            position = self.app.recorder.max_notification_id() or 0
        return Outcome(order, position)


@dataclass(frozen=True)
class Registration:
    email: str
    password: str
    kind: str
    full_name: str
    phone: str | None = None
    country: str | None = None
    business_name: str | None = None
    category: str | None = None
    currency: str = "USD"
    role: str | None = None
    idempotency_key: str | None = None

    def matches(self, user: User, wallet_currency: str | None) -> bool:
        """Whether `user` is what this registration would have created (for a repeated key)."""
        return ((user.kind, user.role, user.full_name, user.phone, user.country,
                 user.business_name, user.category)
                == (self.kind, self.role, self.full_name, self.phone, self.country,
                    self.business_name, self.category)
                and wallet_currency in (None, self.currency)
                and verify_password(user.password_hash, self.password))


class GoPay(Application[UUID]):
    """Commands over wallets, payment orders and users, persisted as events in PostgreSQL."""

    name = "gopay"
    env: ClassVar[dict[str, str]] = {
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
        "AGGREGATE_CACHE_MAXSIZE": "50000",
        "AGGREGATE_CACHE_FASTFORWARD": "y",
        # Reads outside commands never change what they get; commands work on their own copies.
        "DEEPCOPY_FROM_AGGREGATE_CACHE": "n",
        "APPLICATION_RECORDER_TOPIC": "gopay.recorder:EventRecorder",
    }

    def __init__(self, key_ring: KeyRing, env: dict[str, str] | None = None,
                 limits: Mapping[str, TierLimits] = DEFAULT_LIMITS) -> None:
        self.data_keys = DataKeys(key_ring)
        self.limits = limits
        super().__init__(env)
        self.data_keys.datastore = self.recorder.datastore  # type: ignore[attr-defined]
        # A payment order is usually finished when it is saved. Keeping thousands of them in
        # memory only lengthened the garbage collector's full passes: 130 ms every 1.3 s at
        # 1,000 transfers/s, which was most of the p99 latency.
        self.committer = GroupCommitter(
            self, self._stale_aggregates, self._stored_aggregates,
            remember=lambda aggregate: not isinstance(aggregate, PaymentOrder))

    def construct_mapper(self) -> Mapper[UUID]:
        """Stored events hold personal data sealed under each user's data key."""
        return SealingMapper(self.construct_transcoder(), self.data_keys,
                             {**PERSONAL_FIELDS, **PAYMENT_METHOD_SEALED_FIELDS})

    # People, companies, agents and staff

    def register(self, registration: Registration) -> Outcome[User]:
        """Open a user (and, for customers, a wallet), claiming the e-mail and phone."""
        r = registration
        if r.kind in CUSTOMER_KINDS:
            Money(0, r.currency)  # validates the currency
        elif r.kind != "staff" or r.role not in STAFF_ROLES:
            raise ValidationFailed(f"unknown kind of account {r.kind!r}")
        email = r.email.strip().lower()
        user_id = (uuid5(LEDGER_NAMESPACE, f"register/{email}/{r.idempotency_key}")
                   if r.idempotency_key else uuid4())
        password_hash = hash_password(r.password)  # slow on purpose: outside the batch
        self.data_keys.ensure(user_id)

        def command(unit: UnitOfWork) -> User:
            existing = unit.find(user_id, User) if r.idempotency_key else None
            if existing is not None:
                return existing
            if unit.find(EmailIndex.id_for(email), EmailIndex):
                raise EmailTaken("an account with this e-mail already exists")
            phone_claim = _claim_phone(unit, r.phone, user_id) if r.phone else None
            wallet = (Wallet(owner_id=user_id, currency=r.currency)
                      if r.kind in CUSTOMER_KINDS else None)
            user = User(id=user_id, email=email, password_hash=password_hash, kind=r.kind,
                        role=r.role, full_name=r.full_name, phone=r.phone, country=r.country,
                        business_name=r.business_name, category=r.category,
                        wallet_id=wallet.id if wallet else None)
            unit.add(user, EmailIndex(id=EmailIndex.id_for(email), user_id=user.id), wallet,
                     phone_claim)
            return user

        user, position = self.committer.execute(command)
        if user.password_hash != password_hash:  # the key was used before
            currency = self.get_wallet(user.wallet_id).currency if user.wallet_id else None
            if not r.matches(user, currency):
                raise IdempotencyConflict(
                    "this Idempotency-Key was already used with a different registration")
            position = self.recorder.max_notification_id() or 0
        return Outcome(user, position)

    def update_profile(self, user_id: UUID, *, full_name: str | None = None,
                       phone: str | None = None,
                       login_notifications: bool | None = None) -> Outcome[User]:
        """Change the fields a user owns; a new phone number is claimed, the old one released."""

        def command(unit: UnitOfWork) -> User:
            user = unit.find(user_id, User)
            if user is None:
                raise NotFound("user not found")
            if phone is not None and phone != user.phone:
                unit.add(_claim_phone(unit, phone, user.id))
                if user.phone:
                    old = unit.find(PhoneIndex.id_for(user.phone), PhoneIndex)
                    if old is not None and old.user_id == user.id:
                        old.release()
            user.change_profile(
                full_name=full_name if full_name is not None else user.full_name,
                phone=phone if phone is not None else user.phone,
                login_notifications=(login_notifications if login_notifications is not None
                                     else user.login_notifications))
            return user

        user, position = self.committer.execute(command)
        return Outcome(user, position)

    def authenticate(self, email: str, password: str) -> User | None:
        """The user these credentials belong to, or None (same cost whether the e-mail exists)."""
        user = self.find_user(email)
        if not verify_password(user.password_hash if user else None, password):
            return None
        assert user is not None
        if needs_rehash(user.password_hash):
            new_hash = hash_password(password)
            self._change(user.id, User, lambda current: current.rehash_password(new_hash))
        return user

    def find_user(self, email: str) -> User | None:
        index = self.find(EmailIndex.id_for(email), EmailIndex)
        return self.get_user(index.user_id) if index else None

    def get_user(self, user_id: UUID) -> User:
        return self._get(user_id, User, "user")

    def get_wallet(self, wallet_id: UUID) -> Wallet:
        return self._get(wallet_id, Wallet, "wallet")

    def get_order(self, order_id: UUID) -> PaymentOrder:
        return self._get(order_id, PaymentOrder, "payment")

    def order_exists(self, caller_id: UUID, operation: str, idempotency_key: str) -> bool:
        """Whether this caller already used this key for this operation."""
        return self.find(order_id_for(caller_id, operation, idempotency_key), PaymentOrder) is not None

    # Sessions

    def refresh_session(self, refresh_token: str) -> tuple[Session, User, str]:
        """Rotate a refresh token; a used one revokes its whole session."""
        parsed = split_refresh_token(refresh_token)
        if parsed is None or self.find(parsed[0], Session) is None:
            raise SessionRevoked("this refresh token is not valid")
        session_id, secret = parsed
        new_token, new_secret = new_refresh_token(session_id)
        session = self._change(
            session_id, Session, lambda current: current.rotate(secret, token_digest(new_secret)))
        if session.revoked:
            raise SessionRevoked("this refresh token was already used; the session is revoked")
        return session, self.get_user(session.user_id), new_token

    def end_session(self, session_id: UUID, reason: str = "logout") -> None:
        self._change(session_id, Session, lambda session: session.revoke(reason=reason))

    # Moving money

    def transfer(self, **request: Any) -> Outcome[PaymentOrder]:
        """Move money from the sender's wallet to another wallet, atomically."""
        return self.transfer_command(**request).run()

    def transfer_command(self, *, sender_id: UUID, sender_wallet_id: UUID | None,
                         recipient: str, money: Money, note: str,
                         idempotency_key: str | None, fingerprint: str) -> MoneyCommand:
        """A transfer, ready to run (the API awaits it without holding a thread)."""
        if sender_wallet_id is None:
            raise ValidationFailed("only customers with a wallet can send money")

        def order(unit: UnitOfWork, order_id: UUID) -> tuple[PaymentOrder, Callable[[], None]]:
            payer = unit.get(sender_wallet_id, Wallet)
            payee = _wallet_of(unit, recipient)
            if payee.id == payer.id:
                raise ValidationFailed("you cannot send money to yourself")
            created = PaymentOrder(id=order_id, order_type="transfer", initiated_by=sender_id,
                                   payer_wallet_id=payer.id, payee_wallet_id=payee.id,
                                   amount=money.amount, currency=money.currency, note=note,
                                   request_fingerprint=fingerprint)

            def post() -> None:
                payer.debit(money, entry_id=order_id, entry_type="transfer",
                            counterparty=str(payee.id), reference=note,
                            limits=self.limits[payer.tier])
                payee.credit(money, entry_id=order_id, entry_type="transfer",
                             counterparty=str(payer.id), reference=note,
                             limits=self.limits[payee.tier])
                created.succeed(Posting(payer.id, -money.amount, money.currency),
                                Posting(payee.id, money.amount, money.currency))

            return created, post

        return self._move_money(sender_id, "transfer", idempotency_key, fingerprint, order)

    def adjust(self, *, staff_id: UUID, wallet_id: UUID, direction: str, money: Money,
               reason: str, idempotency_key: str | None,
               fingerprint: str) -> Outcome[PaymentOrder]:
        """A manual ledger entry against the adjustments account, signed by a staff member."""
        if direction not in ("credit", "debit"):
            raise ValidationFailed("direction must be credit or debit")
        if not reason.strip():
            raise ValidationFailed("an adjustment needs a reason")
        adjustments = SystemAccount.ADJUSTMENTS
        change = money if direction == "credit" else -money

        def order(unit: UnitOfWork, order_id: UUID) -> tuple[PaymentOrder, Callable[[], None]]:
            wallet = unit.get(wallet_id, Wallet)
            created = PaymentOrder(id=order_id, order_type="adjustment", initiated_by=staff_id,
                                   payer_wallet_id=wallet.id if direction == "debit" else None,
                                   payee_wallet_id=wallet.id if direction == "credit" else None,
                                   amount=money.amount, currency=money.currency, note=reason,
                                   request_fingerprint=fingerprint)

            def post() -> None:
                movement = wallet.credit if direction == "credit" else wallet.debit
                movement(money, entry_id=order_id, entry_type="adjustment",
                         counterparty=adjustments.value, reference=reason)
                created.succeed(Posting(wallet.id, change.amount, money.currency),
                                Posting(adjustments.account_id(money.currency), -change.amount,
                                        money.currency))

            return created, post

        return self._move_money(staff_id, "adjustment", idempotency_key, fingerprint, order).run()

    def set_frozen(self, *, staff_id: UUID, user_id: UUID, frozen: bool,
                   reason: str) -> Outcome[Wallet]:
        """Freeze or unfreeze a customer's wallet: a frozen wallet receives but cannot send."""
        user = self.get_user(user_id)
        if user.wallet_id is None:
            raise NotFound("this account has no wallet")

        def command(unit: UnitOfWork) -> Wallet:
            wallet = unit.get(user.wallet_id, Wallet)  # type: ignore[arg-type]
            if frozen:
                wallet.freeze(by=staff_id, reason=reason)
            else:
                wallet.unfreeze(by=staff_id, reason=reason)
            return wallet

        wallet, position = self.committer.execute(command)
        return Outcome(wallet, position)

    # The machinery every command shares

    def _move_money(self, caller_id: UUID, operation: str, idempotency_key: str | None,
                    fingerprint: str,
                    order: Callable[[UnitOfWork, UUID], tuple[PaymentOrder, Callable[[], None]]]
                    ) -> MoneyCommand:
        """A money command that runs once per idempotency key; a recorded refusal repeats itself."""
        order_id = (order_id_for(caller_id, operation, idempotency_key)
                    if idempotency_key is not None else uuid4())

        def command(unit: UnitOfWork) -> tuple[PaymentOrder, bool]:
            if idempotency_key is not None:
                existing = unit.find(order_id, PaymentOrder)
                if existing is not None:
                    if existing.request_fingerprint != fingerprint:
                        raise IdempotencyConflict(
                            "this Idempotency-Key was already used with a different request")
                    return existing, True
            created, post = order(unit, order_id)
            unit.add(created)
            try:
                post()
            except tuple(RECORDED_REFUSALS.values()) as refusal:
                if idempotency_key is None:
                    raise
                unit.confirm_fresh()
                unit.rollback()
                created.fail(reason=refusal.code, detail=str(refusal))
                unit.add(created)
            return created, False

        probes = (order_id,) if idempotency_key is not None else ()
        return MoneyCommand(self, command, probes)

    def _change(self, aggregate_id: UUID, kind: type[TAggregate],
                change: Callable[[TAggregate], None]) -> TAggregate:
        """Apply `change` to one aggregate in the next batch."""

        def command(unit: UnitOfWork) -> TAggregate:
            aggregate = unit.find(aggregate_id, kind)
            if aggregate is None:
                raise NotFound(f"{kind.__name__.lower()} not found")
            change(aggregate)
            return aggregate

        return self.committer.execute(command)[0]

    def _stale_aggregates(self, aggregate_ids: Sequence[UUID],
                          loaded: dict[UUID, int | None]) -> set[UUID]:
        """Which of these aggregates another writer changed since this batch read them."""
        stored = self._stored_versions(aggregate_ids)
        return {i for i in aggregate_ids if stored.get(i) != loaded.get(i)}

    def _stored_aggregates(self, aggregate_ids: Sequence[UUID]) -> set[UUID]:
        return set(self._stored_versions(aggregate_ids))

    @retry((InterfaceError, OperationalError), max_attempts=10, wait=0.2)  # as the recorder does
    def _stored_versions(self, aggregate_ids: Sequence[UUID]) -> dict[UUID, int]:
        """The latest stored version of each of these aggregates that exists, in one query."""
        recorder: Any = self.recorder
        query = SQL("SELECT originator_id, MAX(originator_version) AS version FROM {}.{} "
                    "WHERE originator_id = ANY(%s) GROUP BY originator_id").format(
            Identifier(recorder.datastore.schema), Identifier(recorder.events_table_name))
        # One statement on an autocommit connection: one round trip, no BEGIN and ROLLBACK.
        with recorder.datastore.get_connection() as conn:
            rows = conn.execute(query, (list(aggregate_ids),)).fetchall()
        return {row["originator_id"]: row["version"] for row in rows}

    def _get(self, aggregate_id: UUID, kind: type[TAggregate], noun: str) -> TAggregate:
        found = self.find(aggregate_id, kind)
        if found is None:
            raise NotFound(f"{noun} not found")
        return found

    def find(self, aggregate_id: UUID, kind: type[TAggregate]) -> TAggregate | None:
        try:
            aggregate = self.repository.get(aggregate_id)
        except AggregateNotFoundError:
            return None
        return aggregate if isinstance(aggregate, kind) else None


def _claim_phone(unit: UnitOfWork, phone: str, user_id: UUID) -> PhoneIndex:
    """The phone index, claimed for `user_id`; a number someone holds is taken."""
    index = unit.find(PhoneIndex.id_for(phone), PhoneIndex)
    if index is None:
        return PhoneIndex(id=PhoneIndex.id_for(phone), user_id=user_id)
    if index.user_id is not None:
        raise PhoneTaken("an account with this phone number already exists")
    index.claim(user_id)
    return index


def _wallet_of(unit: UnitOfWork, recipient: str) -> Wallet:
    """The wallet an e-mail, E.164 phone number or wallet id points at."""
    recipient = recipient.strip()
    if "@" in recipient:
        index: EmailIndex | PhoneIndex | None = unit.find(EmailIndex.id_for(recipient), EmailIndex)
    elif recipient.startswith("+"):
        index = unit.find(PhoneIndex.id_for(recipient), PhoneIndex)
    else:
        try:
            return unit.get(UUID(recipient), Wallet)
        except (ValueError, NotFound):
            raise NotFound("no GoPay wallet matches this recipient") from None
    user = unit.find(index.user_id, User) if index and index.user_id else None
    if user is None or user.wallet_id is None:
        raise NotFound("no GoPay wallet matches this recipient")
    return unit.get(user.wallet_id, Wallet)


def application_env(database_url: str, pool_size: int = 10) -> dict[str, Any]:
    """The eventsourcing library's settings for a PostgreSQL URL."""
    from psycopg.conninfo import conninfo_to_dict

    info = conninfo_to_dict(database_url)
    return {
        # The library's PostgreSQL, also given the URL's other parameters (gopay/datastore.py).
        "PERSISTENCE_MODULE": "gopay.datastore:PostgresFactory",
        "POSTGRES_CONNINFO": database_url,
        "POSTGRES_DBNAME": info.get("dbname", "gopay"),
        "POSTGRES_HOST": info.get("host", "127.0.0.1"),
        "POSTGRES_PORT": str(info.get("port", "5432")),
        "POSTGRES_USER": info.get("user", "postgres"),
        "POSTGRES_PASSWORD": info.get("password", ""),
        "POSTGRES_POOL_SIZE": str(pool_size),
        "POSTGRES_MAX_OVERFLOW": str(pool_size * 2),
        "POSTGRES_CONN_MAX_AGE": "3600",
        # Wait at most 5 s for a connection (the library's default is 30): with no primary,
        # a command hears it in seconds, and the next request's connection finds a new one.
        "POSTGRES_CONNECT_TIMEOUT": "5",
        "POSTGRES_LOCK_TIMEOUT": "10",
        "POSTGRES_IDLE_IN_TRANSACTION_SESSION_TIMEOUT": "10",
    }
