"""A payment service provider in memory, for tests: operations by nonce, outcomes and faults on order.

It keeps the port's promise (`gopay.psp.port`): one operation per nonce, a repeated nonce
answers the first operation, another request under a used nonce is `NonceReused`. A test
decides what it does: a declined test card or a closed account fails as at the simulator, an
outcome may be set per nonce (pending, failed, a fee), and faults are queued per method, each
used by the next call: the work done but the answer lost, or the request lost before any work.
"""

from __future__ import annotations

import asyncio
import csv
import io
from collections import Counter, deque
from dataclasses import dataclass, field, replace
from datetime import date
from enum import StrEnum

from gopay.psp.port import (
    BankAccount,
    Card,
    Destination,
    DigitalWallet,
    NonceReused,
    OperationKind,
    OperationStatus,
    PspBusy,
    PspNoAnswer,
    PspRefused,
    PspResult,
    Source,
)

# The test cards and account of API.md that fail, and why.
DECLINED = {"4000000000000002": "card_declined", "4000000000009995": "insufficient_funds",
            "GB33BUKB20201555555555": "account_closed"}


class Fault(StrEnum):
    LOST_ANSWER = "lost_answer"  # the PSP did the work; its answer never reached GoPay
    LOST_REQUEST = "lost_request"  # the request never reached the PSP: nothing was done
    REFUSED = "refused"  # a definite 4xx: nothing was done, and it never will be
    BUSY = "busy"  # turned away for now (429): nothing was done, try again later
    BROKEN = "broken"  # the adapter fails as no PSP answer would (a bug): nothing was done


@dataclass(frozen=True)
class Outcome:
    """What the PSP does with an operation: its status, fee and failure reason."""

    status: OperationStatus = OperationStatus.SUCCEEDED
    fee: int = 0
    failure_reason: str | None = None


@dataclass
class FakePsp:
    """The `Psp` port in memory; see the module docstring."""

    fee: int = 0  # kept on every operation that succeeds, unless its outcome says otherwise
    retry_after: float | None = 1.0  # what a busy answer asks GoPay to wait, in seconds
    operations: dict[str, PspResult] = field(default_factory=dict)
    outcomes: dict[str, Outcome] = field(default_factory=dict)
    faults: dict[str, deque[Fault]] = field(default_factory=dict)
    calls: list[tuple[str, str]] = field(default_factory=list)  # (method, nonce), in order
    work_done: Counter[str] = field(default_factory=Counter)  # operations made per nonce
    # Calls to charge or pay out under a nonce the PSP already had: what asking first avoids.
    repeated_calls: Counter[str] = field(default_factory=Counter)

    # Programming it

    def will(self, nonce: str, outcome: Outcome) -> None:
        """What the PSP does when it first receives an operation under `nonce`."""
        self.outcomes[nonce] = outcome

    def fault_next(self, method: str, *faults: Fault) -> None:
        """The next calls of `method` ("charge", "payout", "status") meet these faults, in order."""
        self.faults.setdefault(method, deque()).extend(faults)

    def finish(self, nonce: str, outcome: Outcome) -> PspResult:
        """A pending operation ends (the bank debit cleared, or bounced)."""
        pending = self.operations[nonce]
        assert pending.status == OperationStatus.PENDING, f"{nonce} is {pending.status}"
        done = replace(pending, status=outcome.status, fee=outcome.fee,
                       failure_reason=outcome.failure_reason)
        self.operations[nonce] = done
        return done

    # The port

    def charge(self, nonce: str, amount: int, currency: str, source: Source) -> PspResult:
        return self._operate("charge", OperationKind.CHARGE, nonce, amount, currency, source)

    def payout(self, nonce: str, amount: int, currency: str, destination: Destination) -> PspResult:
        return self._operate("payout", OperationKind.PAYOUT, nonce, amount, currency, destination)

    def refund(self, nonce: str, charge_reference: str, amount: int) -> PspResult:
        charge = next(op for op in self.operations.values() if op.psp_reference == charge_reference)
        result = self._record(nonce, OperationKind.REFUND, amount, charge.currency, None)
        return replace(result, charge_reference=charge_reference)

    def status(self, nonce: str) -> PspResult | None:
        self.calls.append(("status", nonce))
        fault = self._next_fault("status")
        if fault == Fault.BROKEN:
            raise RuntimeError(f"status of {nonce}: a bug in the adapter")
        if fault == Fault.BUSY:
            raise PspBusy(f"status of {nonce}: turned away", self.retry_after)
        if fault is not None:
            raise PspNoAnswer(f"status of {nonce}: {fault}")
        return self.operations.get(nonce)

    def settlement_file(self, day: date) -> str:
        text = io.StringIO()
        writer = csv.writer(text, lineterminator="\n")
        writer.writerow(["psp_reference", "merchant_reference", "type", "amount", "currency",
                         "fee", "status", "settled_at"])
        for op in self.operations.values():
            if op.status != OperationStatus.PENDING:
                writer.writerow([op.psp_reference, op.nonce, op.kind, op.amount, op.currency,
                                 op.fee, "settled" if op.status == OperationStatus.SUCCEEDED
                                 else "failed", day.isoformat()])
        return text.getvalue()

    # How it works

    def _operate(self, method: str, kind: OperationKind, nonce: str, amount: int, currency: str,
                 instrument: Source | Destination) -> PspResult:
        self.calls.append((method, nonce))
        fault = self._next_fault(method)
        if fault == Fault.LOST_REQUEST:
            raise PspNoAnswer(f"{method} {nonce}: the request was lost")
        if fault == Fault.REFUSED:
            raise PspRefused("invalid_request", "the PSP refused the request", 400)
        if fault == Fault.BUSY:
            raise PspBusy(f"{method} {nonce}: turned away", self.retry_after)
        if fault == Fault.BROKEN:
            raise RuntimeError(f"{method} {nonce}: a bug in the adapter")
        existing = self.operations.get(nonce)
        if existing is not None:
            self.repeated_calls[nonce] += 1
            if (existing.kind, existing.amount, existing.currency) != (kind, amount, currency):
                raise NonceReused("idempotency_conflict", "this nonce names another operation", 409)
            result = existing
        else:
            result = self._record(nonce, kind, amount, currency, _number(instrument))
        if fault == Fault.LOST_ANSWER:
            raise PspNoAnswer(f"{method} {nonce}: the answer was lost")
        return result

    def _record(self, nonce: str, kind: OperationKind, amount: int, currency: str,
                number: str | None) -> PspResult:
        outcome = self.outcomes.get(nonce)
        if outcome is None:
            declined = DECLINED.get(number or "")
            outcome = (Outcome(OperationStatus.FAILED, failure_reason=declined) if declined
                       else Outcome(fee=self.fee))
        self.work_done[nonce] += 1
        result = PspResult(nonce=nonce, kind=kind, status=outcome.status,
                           psp_reference=f"{kind}_{len(self.operations) + 1:04d}", amount=amount,
                           currency=currency, fee=outcome.fee,
                           failure_reason=outcome.failure_reason)
        self.operations[nonce] = result
        return result

    def _next_fault(self, method: str) -> Fault | None:
        queued = self.faults.get(method)
        return queued.popleft() if queued else None


class AwaitedFakePsp(FakePsp):
    """The same PSP, its calls also awaited (`AwaitedPsp`), as the HTTP adapter's are: each
    gives the event loop a turn, as waiting for an answer would."""

    async def charge_async(self, nonce: str, amount: int, currency: str,
                           source: Source) -> PspResult:
        await asyncio.sleep(0)
        return self.charge(nonce, amount, currency, source)

    async def payout_async(self, nonce: str, amount: int, currency: str,
                           destination: Destination) -> PspResult:
        await asyncio.sleep(0)
        return self.payout(nonce, amount, currency, destination)

    async def status_async(self, nonce: str) -> PspResult | None:
        await asyncio.sleep(0)
        return self.status(nonce)


def _number(instrument: Source | Destination) -> str:
    if isinstance(instrument, Card):
        return instrument.number
    if isinstance(instrument, BankAccount):
        return instrument.iban
    assert isinstance(instrument, DigitalWallet)
    return instrument.account
