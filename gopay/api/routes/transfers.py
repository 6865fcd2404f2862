"""Person-to-person transfers."""

from __future__ import annotations

from uuid import UUID

from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool

from gopay.aggregates.ledger import TransactionType
from gopay.aggregates.money import Money
from gopay.aggregates.payment_order import PaymentOrder
from gopay.api.client_origin import client_address, country_of
from gopay.api.deps import Caller, Customer, IdempotencyKey, SecondFactor, SystemDep, fingerprint
from gopay.api.problems import Problem
from gopay.api.schemas import Problem as ProblemSchema
from gopay.api.schemas import TransferCreate, TransferPublic
from gopay.api.step_up import confirm_step_up
from gopay.commands.screening import is_held_for_review
from gopay.commands.transfer import Transfer
from gopay.security.tokens import AccessClaims

router = APIRouter(prefix="/v1/transfers", tags=["transfers"])


def transfer_public(order: PaymentOrder) -> TransferPublic:
    assert order.payer_wallet_id, "a transfer is paid from a wallet"
    assert order.payee_wallet_id, "a transfer is paid to a wallet"
    status = "held_for_review" if is_held_for_review(order) else order.status
    return TransferPublic(id=order.id, status=status, amount=order.amount,
                          currency=order.currency, sender_wallet_id=order.payer_wallet_id,
                          recipient_wallet_id=order.payee_wallet_id, note=order.note,
                          created_at=order.created_on)


# The answers of a screened payment besides its success (see API.md, Fraud screening).
SCREENING_RESPONSES: dict[int | str, dict[str, object]] = {
    202: {"description": "Held for review (`status: held_for_review`): the money is held until "
                         "staff approve or reject the payment"},
    422: {"description": "Refused (`fraud_suspected`), or another rule the payment breaks",
          "model": ProblemSchema, "content": {"application/problem+json": {}}},
}


@router.post("", status_code=201, response_model=TransferPublic,
             responses={202: {**SCREENING_RESPONSES[202], "model": TransferPublic},
                        422: SCREENING_RESPONSES[422]})
async def create_transfer(body: TransferCreate, caller: Customer, system: SystemDep,
                          request: Request, response: Response,
                          idempotency_key: IdempotencyKey = None,
                          otp: SecondFactor = None) -> TransferPublic:
    """Send money to an e-mail, phone number or wallet id; all of it moves or none does.

    Screened for fraud: 202 `held_for_review` (the money held for staff to decide) or 422
    `fraud_suspected`.

    From the step-up amount up, a user with 2FA on sends a fresh code in `GoPay-OTP`
    (a retry with the same Idempotency-Key does not need another one).
    """
    if body.amount >= system.settings.step_up_amount:
        await run_in_threadpool(confirm_step_up, system, caller, body.amount,
                                Transfer.operation, idempotency_key, otp)
    # Awaited, not run in a thread: the group committer's writer thread does the work.
    country = request_country(system.settings.trusted_proxies,
                              request.client.host if request.client else None,
                              request.headers.get("x-forwarded-for"))
    outcome = await system.commands.run_async(
        transfer_command(caller, body, idempotency_key, country))
    public = transfer_public(outcome.value)
    if public.status == "held_for_review":
        response.status_code = 202
    return public


def request_country(trusted_proxies: str, peer: str | None, forwarded_for: str | None) -> str | None:
    """The country the client's address is in (None on loopback and private networks)."""
    return country_of(client_address(peer, forwarded_for, trusted_proxies))


def transfer_command(caller: AccessClaims, body: TransferCreate,
                     idempotency_key: str | None, country: str | None = None) -> Transfer:
    """The command behind a transfer request (the route's and the fast lane's)."""
    assert caller.wallet_id is not None, "only customers with a wallet reach transfers"
    return Transfer(caller_id=caller.user_id, sender_wallet_id=caller.wallet_id,
                    recipient=body.recipient, money=Money.positive(body.amount, body.currency),
                    note=body.note, idempotency_key=idempotency_key, fingerprint=fingerprint(body),
                    device_id=caller.device_id, client_country=country)


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
