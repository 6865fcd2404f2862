"""Payment methods: saving, reading and removing them, and opening a saved number for the PSP.

Commands run through the application's group commit like every other. The secret goes into
the vault before the method's events are saved, and is taken out again if the command is
refused: a crash in between leaves at worst a sealed row no method refers to, never a
method whose number is missing.

Saving the same card (account, address) twice is refused with 409 `payment_method_exists`,
naming the saved one in `payment_method_id`: a client that lost the first answer learns
which method to use, and no customer ends up with two copies of one card to keep apart.
"""

from __future__ import annotations

from typing import TypeVar
from uuid import UUID, uuid4

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.domain import Aggregate

from gopay.aggregates.errors import DomainError, IdempotencyConflict, NotFound, ValidationFailed
from gopay.aggregates.instruments import Instrument, identity
from gopay.aggregates.payment_method import PaymentMethod, SavedMethods, method_id_for
from gopay.aggregates.user import CUSTOMER_KINDS
from gopay.application import GoPay, Outcome
from gopay.group_commit import UnitOfWork
from gopay.security.data_keys import SealBroken
from gopay.security.vault import Vault

TAggregate = TypeVar("TAggregate", bound=Aggregate)

# What the owner's HMAC keys are for.
FINGERPRINT = "payment-method-fingerprint"
REQUEST = "payment-method-request"


def add_payment_method(app: GoPay, owner_id: UUID, instrument: Instrument,
                       idempotency_key: str | None = None) -> Outcome[PaymentMethod]:
    """Vault the secret and save the masked method; a repeated key finds the first one."""
    if app.get_user(owner_id).kind not in CUSTOMER_KINDS:
        raise ValidationFailed("only customers keep payment methods")
    vault = Vault(app.data_keys)
    fingerprint = vault.digest(owner_id, FINGERPRINT, instrument.identity)
    # Keyed, like the fingerprint: a plain hash of the request would be one of the number.
    request_digest = (vault.digest(owner_id, REQUEST, instrument.canonical)
                      if idempotency_key is not None else None)
    method_id = method_id_for(owner_id, idempotency_key) if idempotency_key else uuid4()
    if instrument.holder_name is not None:
        app.data_keys.ensure(method_id)  # the holder name is sealed under it at save time
    kept = vault.keep(owner_id, method_id, fingerprint, instrument.secret)

    def command(unit: UnitOfWork) -> tuple[PaymentMethod, bool]:
        existing = unit.find(method_id, PaymentMethod)
        if existing is not None:
            if existing.request_digest != request_digest:
                raise IdempotencyConflict(
                    "this Idempotency-Key was already used with a different payment method")
            return existing, True
        saved = unit.find(SavedMethods.id_for(owner_id), SavedMethods)
        if saved is None:
            saved = SavedMethods(id=SavedMethods.id_for(owner_id), owner_id=owner_id)
            unit.add(saved)
        saved.add(method_id, fingerprint)
        method = PaymentMethod(id=method_id, owner_id=owner_id, method_type=instrument.kind,
                               details=instrument.details, holder_name=instrument.holder_name,
                               fingerprint=fingerprint, request_digest=request_digest)
        unit.add(method)
        return method, False

    try:
        (method, replayed), position = app.committer.execute(command, probes=(method_id,))
    except DomainError:
        saved_method = _find(app, method_id, PaymentMethod)
        if kept and (saved_method is None or saved_method.fingerprint != fingerprint):
            vault.discard(method_id, fingerprint)  # refused: keep no number for it
        raise
    if replayed:
        position = app.recorder.max_notification_id() or 0
    return Outcome(method, position)


def remove_payment_method(app: GoPay, owner_id: UUID, method_id: UUID) -> Outcome[PaymentMethod]:
    """Remove the owner's method and forget its secret; the masked history stays."""

    def command(unit: UnitOfWork) -> PaymentMethod:
        method = unit.find(method_id, PaymentMethod)
        saved = unit.find(SavedMethods.id_for(owner_id), SavedMethods)
        if method is None or method.owner_id != owner_id or saved is None:
            raise NotFound("payment method not found")
        method.remove()
        saved.remove(method_id)
        return method

    method, position = app.committer.execute(command)
    Vault(app.data_keys).discard(method_id)
    return Outcome(method, position)


def get_payment_method(app: GoPay, owner_id: UUID, method_id: UUID) -> PaymentMethod:
    """The owner's method; anyone else's, or a removed one, does not exist."""
    method = _find(app, method_id, PaymentMethod)
    if method is None or method.owner_id != owner_id or method.removed:
        raise NotFound("payment method not found")
    return method


def list_payment_methods(app: GoPay, owner_id: UUID, *, limit: int,
                         after: UUID | None = None) -> tuple[list[PaymentMethod], UUID | None]:
    """A page of the owner's methods, newest first, and the cursor of the next page."""
    saved = _find(app, SavedMethods.id_for(owner_id), SavedMethods)
    if saved is None:
        if after is not None:
            raise ValidationFailed("cursor is not valid")
        return [], None
    ids = saved.newest_first(after)
    page = [get_payment_method(app, owner_id, method_id) for method_id in ids[:limit]]
    return page, (page[-1].id if len(ids) > limit else None)


def reveal(app: GoPay, owner_id: UUID, method_id: UUID, method_type: str) -> str:
    """The full secret of the owner's method, checked against its fingerprint.

    For the PSP adapter alone: never log it, never put it in an answer or an event.
    """
    method = get_payment_method(app, owner_id, method_id)
    if method.method_type != method_type:
        raise ValidationFailed(f"this payment method is not a {method_type}")
    vault = Vault(app.data_keys)
    secret = vault.open(owner_id, method_id, method.fingerprint)
    if vault.digest(owner_id, FINGERPRINT,
                    identity(method_type, method.details, secret)) != method.fingerprint:
        raise SealBroken(f"the vault's secret does not match payment method {method_id}")
    return secret


def reveal_card(app: GoPay, owner_id: UUID, method_id: UUID) -> str:
    """The full number of the owner's saved card, for charging it at the PSP."""
    return reveal(app, owner_id, method_id, "card")


def _find(app: GoPay, aggregate_id: UUID, kind: type[TAggregate]) -> TAggregate | None:
    try:
        aggregate = app.repository.get(aggregate_id)
    except AggregateNotFoundError:
        return None
    return aggregate if isinstance(aggregate, kind) else None
