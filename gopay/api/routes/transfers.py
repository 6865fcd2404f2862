"""Person-to-person transfers."""

from __future__ import annotations

from uuid import UUID

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool

from gopay.aggregates.ledger import TransactionType
from gopay.aggregates.money import Money
from gopay.aggregates.payment_order import PaymentOrder
from gopay.api.deps import Caller, Customer, IdempotencyKey, SecondFactor, SystemDep, fingerprint
from gopay.api.problems import Problem
from gopay.api.schemas import TransferCreate, TransferPublic
from gopay.api.step_up import confirm_step_up
from gopay.commands.transfer import Transfer
from gopay.security.tokens import AccessClaims

router = APIRouter(prefix="/v1/transfers", tags=["transfers"])


def transfer_public(order: PaymentOrder) -> TransferPublic:
    assert order.payer_wallet_id, "a transfer is paid from a wallet"
    assert order.payee_wallet_id, "a transfer is paid to a wallet"
    return TransferPublic(id=order.id, status=order.status, amount=order.amount,
                          currency=order.currency, sender_wallet_id=order.payer_wallet_id,
                          recipient_wallet_id=order.payee_wallet_id, note=order.note,
                          created_at=order.created_on)


@router.post("", status_code=201, response_model=TransferPublic)
async def create_transfer(body: TransferCreate, caller: Customer, system: SystemDep,
                          idempotency_key: IdempotencyKey = None,
                          otp: SecondFactor = None) -> TransferPublic:
    """Send money to an e-mail, phone number or wallet id; all of it moves or none does.

    From the step-up amount up, a user with 2FA on sends a fresh code in `GoPay-OTP`
    (a retry with the same Idempotency-Key does not need another one).
    """
    if body.amount >= system.settings.step_up_amount:
        await run_in_threadpool(confirm_step_up, system, caller, body.amount,
                                Transfer.operation, idempotency_key, otp)
    # Awaited, not run in a thread: the group committer's writer thread does the work.
    outcome = await system.commands.run_async(transfer_command(caller, body, idempotency_key))
    return transfer_public(outcome.value)


def transfer_command(caller: AccessClaims, body: TransferCreate,
                     idempotency_key: str | None) -> Transfer:
    """The command behind a transfer request (the route's and the fast lane's)."""
    assert caller.wallet_id is not None, "only customers with a wallet reach transfers"
    return Transfer(caller_id=caller.user_id, sender_wallet_id=caller.wallet_id,
                    recipient=body.recipient, money=Money.positive(body.amount, body.currency),
                    note=body.note, idempotency_key=idempotency_key, fingerprint=fingerprint(body))


@router.get("/{transfer_id}", response_model=TransferPublic)
def get_transfer(transfer_id: str, caller: Caller, system: SystemDep) -> TransferPublic:
    """A transfer, for its sender or its recipient; anyone else is told it does not exist."""
    system.catch_up_reads()
    try:
        row = system.read_side.wallets.order(UUID(transfer_id))
    except ValueError:
        row = None
    parties = (row["payer_wallet_id"], row["payee_wallet_id"]) if row else ()
    if row is None or row["type"] != TransactionType.TRANSFER or caller.wallet_id not in parties:
        raise Problem(404, "transfer not found")
    return TransferPublic(id=row["id"], status=row["status"], amount=row["amount"],
                          currency=row["currency"], sender_wallet_id=row["payer_wallet_id"],
                          recipient_wallet_id=row["payee_wallet_id"], note=row["note"],
                          created_at=row["created_at"])
