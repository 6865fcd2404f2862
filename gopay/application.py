"""The GoPay event-sourced application: every business command, each ending in one save()."""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar
from uuid import UUID, uuid4, uuid5

from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.domain import Aggregate
from eventsourcing.persistence import IntegrityError

from gopay.aggregates.errors import (
    EmailTaken,
    IdempotencyConflict,
    NotFound,
    PhoneTaken,
    ValidationFailed,
)
from gopay.aggregates.ledger import LEDGER_NAMESPACE, Posting, SystemAccount
from gopay.aggregates.money import Money
from gopay.aggregates.payment_order import PaymentOrder, order_id_for
from gopay.aggregates.session import Session, SessionRevoked, token_digest
from gopay.aggregates.user import CUSTOMER_KINDS, STAFF_ROLES, EmailIndex, PhoneIndex, User
from gopay.aggregates.wallet import Wallet
from gopay.security.passwords import hash_password, needs_rehash, verify_password
from gopay.security.tokens import new_refresh_token, split_refresh_token

T = TypeVar("T")
TAggregate = TypeVar("TAggregate", bound=Aggregate)

# A version conflict means someone else changed an aggregate first: read again and retry.
MAX_ATTEMPTS = 200


@dataclass(frozen=True)
class Outcome(Generic[T]):
    """What a command produced, and the log position the read side must reach to show it."""

    value: T
    position: int


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
    env = {
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
        "AGGREGATE_CACHE_MAXSIZE": "50000",
        "AGGREGATE_CACHE_FASTFORWARD": "y",
    }

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
        wallet = Wallet(owner_id=user_id, currency=r.currency) if r.kind in CUSTOMER_KINDS else None
        user = User(id=user_id, email=email,
                    password_hash=hash_password(r.password), kind=r.kind, role=r.role,
                    full_name=r.full_name, phone=r.phone, country=r.country,
                    business_name=r.business_name, category=r.category,
                    wallet_id=wallet.id if wallet else None)
        claims: list[Aggregate] = [EmailIndex(id=EmailIndex.id_for(user.email), user_id=user.id)]
        if r.phone:
            claims.append(PhoneIndex(id=PhoneIndex.id_for(r.phone), user_id=user.id))
        try:
            recordings = self.save(user, *claims, wallet)
        except IntegrityError:
            existing = self._find(user_id, User) if r.idempotency_key else None
            if existing is not None:
                return self._repeated_registration(existing, r)
            if self._exists(EmailIndex.id_for(user.email)):
                raise EmailTaken("an account with this e-mail already exists") from None
            if r.phone and self._exists(PhoneIndex.id_for(r.phone)):
                raise PhoneTaken("an account with this phone number already exists") from None
            raise
        return Outcome(user, recordings[-1].notification.id)

    def _repeated_registration(self, user: User, registration: Registration) -> Outcome[User]:
        currency = self.get_wallet(user.wallet_id).currency if user.wallet_id else None
        if not registration.matches(user, currency):
            raise IdempotencyConflict(
                "this Idempotency-Key was already used with a different registration")
        return Outcome(user, self.recorder.max_notification_id() or 0)

    def authenticate(self, email: str, password: str) -> User | None:
        """The user these credentials belong to, or None (same cost whether the e-mail exists)."""
        user = self.find_user(email)
        if not verify_password(user.password_hash if user else None, password):
            return None
        assert user is not None
        if needs_rehash(user.password_hash):
            self._save_retrying(lambda: [self._rehashed(user.id, password)])
        return user

    def _rehashed(self, user_id: UUID, password: str) -> User:
        user = self.get_user(user_id)
        user.rehash_password(hash_password(password))
        return user

    # Sessions

    def start_session(self, user: User, device_id: str | None) -> tuple[Session, str]:
        """A new login: a session and its first refresh token."""
        session_id = uuid4()
        refresh_token, secret = new_refresh_token(session_id)
        session = Session(id=session_id, user_id=user.id, device_id=device_id,
                          refresh_digest=token_digest(secret))
        self.save(session)
        return session, refresh_token

    def refresh_session(self, refresh_token: str) -> tuple[Session, User, str]:
        """Rotate a refresh token; a used one revokes its whole session."""
        parsed = split_refresh_token(refresh_token)
        session = self._find(parsed[0], Session) if parsed else None
        if parsed is None or session is None:
            raise SessionRevoked("this refresh token is not valid")
        new_token, new_secret = new_refresh_token(session.id)

        def attempt() -> list[Aggregate]:
            current = self._get(session.id, Session, "session")
            current.rotate(parsed[1], token_digest(new_secret))
            return [current]

        (rotated,), _ = self._save_retrying(attempt)
        if rotated.revoked:  # type: ignore[attr-defined]
            raise SessionRevoked("this refresh token was already used; the session is revoked")
        return rotated, self.get_user(rotated.user_id), new_token  # type: ignore[attr-defined,return-value]

    def end_session(self, session_id: UUID, reason: str = "logout") -> None:
        def attempt() -> list[Aggregate]:
            session = self._get(session_id, Session, "session")
            session.revoke(reason=reason)
            return [session]

        self._save_retrying(attempt)

    def session_is_active(self, session_id: UUID) -> bool:
        session = self._find(session_id, Session)
        return session is not None and not session.revoked

    def find_user(self, email: str) -> User | None:
        try:
            index: EmailIndex = self.repository.get(EmailIndex.id_for(email))
        except AggregateNotFoundError:
            return None
        return self.get_user(index.user_id)

    def get_user(self, user_id: UUID) -> User:
        return self._get(user_id, User, "user")

    def get_wallet(self, wallet_id: UUID) -> Wallet:
        return self._get(wallet_id, Wallet, "wallet")

    def get_order(self, order_id: UUID) -> PaymentOrder:
        return self._get(order_id, PaymentOrder, "payment")

    def wallet_of(self, recipient: str) -> Wallet:
        """The wallet an e-mail, E.164 phone number or wallet id points at."""
        recipient = recipient.strip()
        try:
            if "@" in recipient:
                index: Aggregate = self.repository.get(EmailIndex.id_for(recipient))
            elif recipient.startswith("+"):
                index = self.repository.get(PhoneIndex.id_for(recipient))
            else:
                return self.get_wallet(UUID(recipient))
        except (AggregateNotFoundError, ValueError):
            raise NotFound("no GoPay wallet matches this recipient") from None
        user = self.get_user(index.user_id)  # type: ignore[attr-defined]
        if user.wallet_id is None:
            raise NotFound("no GoPay wallet matches this recipient")
        return self.get_wallet(user.wallet_id)

    # Moving money

    def transfer(self, *, sender_id: UUID, sender_wallet_id: UUID | None, recipient: str,
                 money: Money, note: str, idempotency_key: str | None,
                 fingerprint: str) -> Outcome[PaymentOrder]:
        """Move money from the sender's wallet to another wallet, atomically."""
        if sender_wallet_id is None:
            raise ValidationFailed("only customers with a wallet can send money")

        def attempt(order_id: UUID) -> list[Aggregate]:
            payer = self.get_wallet(sender_wallet_id)
            payee = self.wallet_of(recipient)
            if payee.id == payer.id:
                raise ValidationFailed("you cannot send money to yourself")
            order = PaymentOrder(id=order_id, order_type="transfer", initiated_by=sender_id,
                                 payer_wallet_id=payer.id, payee_wallet_id=payee.id,
                                 amount=money.amount, currency=money.currency, note=note,
                                 request_fingerprint=fingerprint)
            payer.debit(money, entry_id=order.id, entry_type="transfer",
                        counterparty=str(payee.id), reference=note)
            payee.credit(money, entry_id=order.id, entry_type="transfer",
                         counterparty=str(payer.id), reference=note)
            order.succeed(Posting(payer.id, -money.amount, money.currency),
                          Posting(payee.id, money.amount, money.currency))
            return [order, payer, payee]

        return self._move_money(sender_id, "transfer", idempotency_key, fingerprint, attempt)

    def adjust(self, *, staff_id: UUID, wallet_id: UUID, direction: str, money: Money,
               reason: str, idempotency_key: str | None,
               fingerprint: str) -> Outcome[PaymentOrder]:
        """A manual ledger entry against the adjustments account, signed by a staff member."""
        if direction not in ("credit", "debit"):
            raise ValidationFailed("direction must be credit or debit")
        if not reason.strip():
            raise ValidationFailed("an adjustment needs a reason")
        adjustments = SystemAccount.ADJUSTMENTS

        def attempt(order_id: UUID) -> list[Aggregate]:
            wallet = self.get_wallet(wallet_id)
            order = PaymentOrder(id=order_id, order_type="adjustment", initiated_by=staff_id,
                                 payer_wallet_id=wallet.id if direction == "debit" else None,
                                 payee_wallet_id=wallet.id if direction == "credit" else None,
                                 amount=money.amount, currency=money.currency, note=reason,
                                 request_fingerprint=fingerprint)
            change = money if direction == "credit" else -money
            movement = wallet.credit if direction == "credit" else wallet.debit
            movement(money, entry_id=order.id, entry_type="adjustment",
                     counterparty=adjustments.value, reference=reason)
            order.succeed(Posting(wallet.id, change.amount, money.currency),
                          Posting(adjustments.account_id(money.currency), -change.amount,
                                  money.currency))
            return [order, wallet]

        return self._move_money(staff_id, "adjustment", idempotency_key, fingerprint, attempt)

    def set_frozen(self, *, staff_id: UUID, user_id: UUID, frozen: bool,
                   reason: str) -> Outcome[Wallet]:
        """Freeze or unfreeze a customer's wallet: a frozen wallet receives but cannot send."""
        user = self.get_user(user_id)
        if user.wallet_id is None:
            raise NotFound("this account has no wallet")

        def attempt() -> list[Aggregate]:
            wallet = self.get_wallet(user.wallet_id)  # type: ignore[arg-type]
            if frozen:
                wallet.freeze(by=staff_id, reason=reason)
            else:
                wallet.unfreeze(by=staff_id, reason=reason)
            return [wallet]

        wallet, position = self._save_retrying(attempt)
        return Outcome(wallet[0], position)  # type: ignore[arg-type]

    # The machinery every command shares

    def _move_money(self, caller_id: UUID, operation: str, idempotency_key: str | None,
                    fingerprint: str,
                    attempt: Callable[[UUID], list[Aggregate]]) -> Outcome[PaymentOrder]:
        """Run a money command once per idempotency key, retrying version conflicts."""
        if idempotency_key is None:
            order_id = uuid4()
        else:
            order_id = order_id_for(caller_id, operation, idempotency_key)

        def replay_or_attempt() -> list[Aggregate]:
            if idempotency_key is not None:
                existing = self._find(order_id, PaymentOrder)
                if existing is not None:
                    raise _AlreadyDone(existing)
            return attempt(order_id)

        try:
            aggregates, position = self._save_retrying(replay_or_attempt)
        except _AlreadyDone as done:
            if done.order.request_fingerprint != fingerprint:
                raise IdempotencyConflict(
                    "this Idempotency-Key was already used with a different request") from None
            return Outcome(done.order, self.recorder.max_notification_id() or 0)
        return Outcome(aggregates[0], position)  # type: ignore[arg-type]

    def _save_retrying(self, attempt: Callable[[], Sequence[Aggregate]]) -> tuple[Sequence[Aggregate], int]:
        """Build the aggregates and save them in one transaction, again on a version conflict."""
        for attempt_number in range(MAX_ATTEMPTS):
            aggregates = attempt()
            try:
                recordings = self.save(*aggregates)
            except IntegrityError:
                time.sleep(random.uniform(0, 0.002 * min(attempt_number + 1, 10)))
                continue
            return aggregates, recordings[-1].notification.id if recordings else 0
        raise RuntimeError("too many version conflicts")  # pragma: no cover - needs 200 losses

    def _get(self, aggregate_id: UUID, kind: type[TAggregate], noun: str) -> TAggregate:
        found = self._find(aggregate_id, kind)
        if found is None:
            raise NotFound(f"{noun} not found")
        return found

    def _find(self, aggregate_id: UUID, kind: type[TAggregate]) -> TAggregate | None:
        try:
            aggregate = self.repository.get(aggregate_id)
        except AggregateNotFoundError:
            return None
        return aggregate if isinstance(aggregate, kind) else None

    def _exists(self, aggregate_id: UUID) -> bool:
        return self._find(aggregate_id, Aggregate) is not None


class _AlreadyDone(Exception):
    """The idempotency key's order exists: answer with it instead of acting again."""

    def __init__(self, order: PaymentOrder) -> None:
        super().__init__(str(order.id))
        self.order = order


def application_env(database_url: str, pool_size: int = 10) -> dict[str, Any]:
    """The eventsourcing library's settings for a PostgreSQL URL."""
    from psycopg.conninfo import conninfo_to_dict

    info = conninfo_to_dict(database_url)
    return {
        "POSTGRES_DBNAME": info.get("dbname", "gopay"),
        "POSTGRES_HOST": info.get("host", "127.0.0.1"),
        "POSTGRES_PORT": str(info.get("port", "5432")),
        "POSTGRES_USER": info.get("user", "postgres"),
        "POSTGRES_PASSWORD": info.get("password", ""),
        "POSTGRES_POOL_SIZE": str(pool_size),
        "POSTGRES_MAX_OVERFLOW": str(pool_size * 2),
        "POSTGRES_CONN_MAX_AGE": "3600",
        "POSTGRES_LOCK_TIMEOUT": "10",
        "POSTGRES_IDLE_IN_TRANSACTION_SESSION_TIMEOUT": "10",
    }
