"""Payment methods: saving and removing them, and opening a saved number for the PSP.

The secret goes into the vault before the method's events are saved, and is taken out again
if the command is refused: a crash in between leaves at worst a sealed row no method refers
to, never a method whose number is missing.

Saving the same card (account, address) twice is refused with 409 `payment_method_exists`,
naming the saved one in `payment_method_id`: a client that lost the first answer learns
which method to use, and no customer ends up with two copies of one card to keep apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID, uuid4

from gopay.aggregates.errors import DomainError, NotFound, ValidationFailed
from gopay.aggregates.instruments import Instrument, identity
from gopay.aggregates.payment_method import PaymentMethod, SavedMethods, method_id_for
from gopay.aggregates.user import CUSTOMER_KINDS, User
from gopay.commands.bus import Command, Context, Outcome, procedure
from gopay.commands.idempotency import repeat_of
from gopay.group_commit import UnitOfWork
from gopay.security.data_keys import SealBroken

# What the owner's HMAC keys are for.
FINGERPRINT = "payment-method-fingerprint"
REQUEST = "payment-method-request"


@dataclass(frozen=True, kw_only=True)
class AddPaymentMethod(Command[PaymentMethod]):
    """Vault the secret and save the masked method; a repeated key finds the first one."""

    owner_id: UUID
    instrument: Instrument
    idempotency_key: str | None = None


@dataclass(frozen=True, kw_only=True)
class RemovePaymentMethod(Command[PaymentMethod]):
    """Remove the owner's method and forget its secret; the masked history stays."""

    owner_id: UUID
    method_id: UUID


@procedure(AddPaymentMethod)
def add_payment_method(command: AddPaymentMethod, context: Context) -> Outcome[PaymentMethod]:
    owner_id, instrument, key = command.owner_id, command.instrument, command.idempotency_key
    if context.app.get(owner_id, User).kind not in CUSTOMER_KINDS:
        raise ValidationFailed("only customers keep payment methods")
    vault = context.vault
    fingerprint = vault.digest(owner_id, FINGERPRINT, instrument.identity)
    # Keyed, like the fingerprint: a plain hash of the request would be one of the number.
    request_digest = vault.digest(owner_id, REQUEST, instrument.canonical) if key else None
    method_id = method_id_for(owner_id, key) if key else uuid4()
    if instrument.holder_name is not None:
        context.app.data_keys.ensure(method_id)  # the holder name is sealed under it at save time
    kept = vault.keep(owner_id, method_id, fingerprint, instrument.secret)

    def save(unit: UnitOfWork) -> PaymentMethod:
        existing = repeat_of(unit, method_id, PaymentMethod, key,
                             lambda method: method.request_digest == request_digest)
        if existing is not None:
            return existing
        saved = unit.find(SavedMethods.id_for(owner_id), SavedMethods)
        if saved is None:
            saved = SavedMethods(id=SavedMethods.id_for(owner_id), owner_id=owner_id)
            unit.add(saved)
        saved.add(method_id, fingerprint)
        method = PaymentMethod(id=method_id, owner_id=owner_id, method_type=instrument.kind,
                               details=instrument.details, holder_name=instrument.holder_name,
                               fingerprint=fingerprint, request_digest=request_digest)
        unit.add(method)
        return method

    try:
        return context.commit(save, probes=(method_id,))
    except DomainError:
        saved_method = context.app.find(method_id, PaymentMethod)
        if kept and (saved_method is None or saved_method.fingerprint != fingerprint):
            vault.discard(method_id, fingerprint)  # refused: keep no number for it
        raise


@procedure(RemovePaymentMethod)
def remove_payment_method(command: RemovePaymentMethod,
                          context: Context) -> Outcome[PaymentMethod]:
    def remove(unit: UnitOfWork) -> PaymentMethod:
        method = unit.find(command.method_id, PaymentMethod)
        saved = unit.find(SavedMethods.id_for(command.owner_id), SavedMethods)
        if method is None or method.owner_id != command.owner_id or saved is None:
            raise NotFound("payment method not found")
        method.remove()
        saved.remove(command.method_id)
        return method

    outcome = context.commit(remove)
    context.vault.discard(command.method_id)
    return outcome


def reveal(context: Context, owner_id: UUID, method_id: UUID, method_type: str) -> str:
    """The full secret of the owner's method, checked against its fingerprint.

    For the PSP adapter alone: never log it, never put it in an answer or an event.
    """
    return reveal_method(context, owner_id, method_id,
                         context.app.find(method_id, PaymentMethod), method_type)


def reveal_method(context: Context, owner_id: UUID, method_id: UUID,
                  method: PaymentMethod | None, method_type: str | None = None) -> str:
    """`reveal`, for a caller that has the method already (read, or just saved): not read again."""
    if method is None or method.owner_id != owner_id or method.removed:
        raise NotFound("payment method not found")
    if method_type is not None and method.method_type != method_type:
        raise ValidationFailed(f"this payment method is not a {method_type}")
    secret = context.vault.open(owner_id, method_id, method.fingerprint)
    if context.vault.digest(owner_id, FINGERPRINT, identity(method.method_type, method.details,
                                                            secret)) != method.fingerprint:
        raise SealBroken(f"the vault's secret does not match payment method {method_id}")
    return secret
