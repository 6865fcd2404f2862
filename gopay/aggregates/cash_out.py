"""Cash-outs at an agent: a customer's money held until the agent, shown a one-time code, pays it in cash.

The code is the customer's consent at the counter, so it is treated like a password: GoPay
keeps only a keyed digest of it, it works once, for a few minutes, and only at the agent the
customer chose. Its first digits name one of that agent's code slots (`CashOutSlot`), which
is how an agent's entry finds its cash-out without GoPay keeping the code, and how a wrong
guess counts against that one cash-out; the other digits are the secret.
"""

from __future__ import annotations

import hmac
from datetime import datetime
from enum import StrEnum
from uuid import UUID, uuid5

from eventsourcing.domain import Aggregate, event

from gopay.aggregates.errors import DomainError, InvalidState
from gopay.aggregates.ledger import LEDGER_NAMESPACE

# A code is SLOT_DIGITS digits naming a slot, then SECRET_DIGITS secret ones.
SLOT_DIGITS = 4
SECRET_DIGITS = 6
CODE_LENGTH = SLOT_DIGITS + SECRET_DIGITS


class WrongCode(DomainError):
    """The code does not match the cash-out its slot names; `attempts_left` guesses remain."""

    code = "wrong_code"


class CashOutStatus(StrEnum):
    PENDING = "pending"  # the money is held, the code works
    SUCCEEDED = "succeeded"  # the agent paid out: the money is the agent's
    EXPIRED = "expired"  # nobody confirmed it in time: the money went back
    CANCELLED = "cancelled"  # the customer called it off, or too many wrong codes


class CashOut(Aggregate):
    """One cash-out: whose money, which agent, the digest of its code, and its guesses."""

    @staticmethod
    def id_for(order_id: UUID) -> UUID:
        """A cash-out is found from its payment order (whose id is the one the API shows)."""
        return uuid5(LEDGER_NAMESPACE, f"cash-out/{order_id}")

    class Created(Aggregate.Created):
        order_id: UUID
        customer_id: UUID
        customer_wallet_id: UUID
        agent_id: UUID
        agent_wallet_id: UUID
        amount: int
        currency: str
        slot: int
        code_digest: str
        expires_at: str
        attempts_allowed: int

    @event(Created)
    def __init__(self, id: UUID, order_id: UUID, customer_id: UUID, customer_wallet_id: UUID,
                 agent_id: UUID, agent_wallet_id: UUID, amount: int, currency: str, slot: int,
                 code_digest: str, expires_at: str, attempts_allowed: int) -> None:
        self.order_id = order_id
        self.customer_id = customer_id
        self.customer_wallet_id = customer_wallet_id
        self.agent_id = agent_id
        self.agent_wallet_id = agent_wallet_id
        self.amount = amount
        self.currency = currency
        self.slot = slot
        self.code_digest = code_digest
        self.expires_at = expires_at
        self.attempts_allowed = attempts_allowed
        self.wrong_codes = 0
        self.status = CashOutStatus.PENDING
        self.reason: str | None = None  # why it ended without paying out

    @property
    def attempts_left(self) -> int:
        return max(0, self.attempts_allowed - self.wrong_codes)

    def accepts(self, digest: str) -> bool:
        """Whether a code with this digest is this cash-out's (compared in constant time)."""
        return hmac.compare_digest(digest, self.code_digest)

    def expired_at(self, now: datetime) -> bool:
        """Whether the code no longer works at `now` (whatever has been recorded yet)."""
        return now >= datetime.fromisoformat(self.expires_at)

    def enter_wrong_code(self) -> None:
        """Count a wrong guess; the command ends the cash-out when none are left."""
        self._check_pending()
        self._wrong_code_entered()

    def confirm(self, *, by: UUID) -> None:
        """The agent paid the cash out."""
        self._check_pending()
        self._confirmed(by=by)

    def end(self, status: CashOutStatus, *, reason: str) -> None:
        """It will not be paid out: expired, or cancelled (by the customer, or by guessing)."""
        self._check_pending()
        if status not in (CashOutStatus.EXPIRED, CashOutStatus.CANCELLED):
            raise InvalidState(f"a cash-out does not end as {status}")
        self._ended(status=status, reason=reason)

    def _check_pending(self) -> None:
        if self.status != CashOutStatus.PENDING:
            raise InvalidState(f"this cash-out is {self.status}")

    class WrongCodeEntered(Aggregate.Event):
        """A guess that was not the code (what was guessed is not kept)."""

    @event(WrongCodeEntered)
    def _wrong_code_entered(self) -> None:
        self.wrong_codes += 1

    class Confirmed(Aggregate.Event):
        by: UUID

    @event(Confirmed)
    def _confirmed(self, by: UUID) -> None:
        self.status = CashOutStatus.SUCCEEDED

    class Ended(Aggregate.Event):
        status: str
        reason: str

    @event(Ended)
    def _ended(self, status: str, reason: str) -> None:
        self.status = CashOutStatus(status)
        self.reason = reason


class CashOutSlot(Aggregate):
    """One of an agent's code slots, and the cash-out that has it now.

    A slot is given to a new cash-out only once its last one has ended, so an agent's
    pending cash-outs never share the first digits of their codes.
    """

    @staticmethod
    def id_for(agent_wallet_id: UUID, slot: int) -> UUID:
        return uuid5(LEDGER_NAMESPACE, f"cash-out-slot/{agent_wallet_id}/{slot}")

    class Created(Aggregate.Created):
        order_id: UUID

    @event(Created)
    def __init__(self, id: UUID, order_id: UUID) -> None:
        self.order_id = order_id

    class Taken(Aggregate.Event):
        order_id: UUID

    @event(Taken)
    def take(self, order_id: UUID) -> None:
        """Give the slot to another cash-out (its last one has ended)."""
        self.order_id = order_id


class CodeEntry(Aggregate):
    """An agent's code entry made with an Idempotency-Key, and how it was answered: a repeat
    of that request gets the same answer instead of counting as another guess."""

    class Created(Aggregate.Created):
        fingerprint: str
        order_id: UUID
        refusal: str | None
        detail: str
        attempts_left: int

    @event(Created)
    def __init__(self, id: UUID, fingerprint: str, order_id: UUID, refusal: str | None,
                 detail: str, attempts_left: int) -> None:
        self.fingerprint = fingerprint
        self.order_id = order_id
        self.refusal = refusal  # the code of the refusal given, or None: the cash-out was paid
        self.detail = detail
        self.attempts_left = attempts_left
