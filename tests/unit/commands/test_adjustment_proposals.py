"""Maker-checker adjustments: proposed by one staff member, applied once when another approves."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any
from uuid import uuid4

import pytest

from gopay.aggregates.adjustment_proposal import AdjustmentProposal, ProposalStatus
from gopay.aggregates.errors import (
    CurrencyMismatch,
    Forbidden,
    IdempotencyConflict,
    InsufficientFunds,
    InvalidState,
    ValidationFailed,
)
from gopay.aggregates.ledger import SystemAccount, TransactionType
from gopay.aggregates.money import Money
from gopay.aggregates.payment_order import PaymentOrder
from gopay.aggregates.user import User
from gopay.commands.adjustment import Direction
from gopay.commands.adjustment_proposals import (
    ApproveAdjustment,
    ProposeAdjustment,
    RejectAdjustment,
)
from gopay.commands.reconciliation import (
    FinishReconciliation,
    PostFindingToSuspense,
    RecordFindings,
    StartReconciliation,
)
from tests.unit.commands.in_memory import InMemoryGoPay, wallet_id

SUSPENSE = SystemAccount.SUSPENSE.account_id("USD")
ADJUSTMENTS = SystemAccount.ADJUSTMENTS.account_id("USD")
FEES = SystemAccount.FEES.account_id("USD")


@pytest.fixture
def maker(gopay: InMemoryGoPay) -> User:
    return gopay.register("maker@gopay.example", kind="staff", role="finance")


@pytest.fixture
def checker(gopay: InMemoryGoPay) -> User:
    return gopay.register("checker@gopay.example", kind="staff", role="admin")


@pytest.fixture
def ada(gopay: InMemoryGoPay) -> User:
    return gopay.register("ada@example.com")


def propose(gopay: InMemoryGoPay, maker: User, account: str, direction: str = "credit",
            amount: int = 500, **fields: Any) -> AdjustmentProposal:
    return gopay.run(ProposeAdjustment(staff_id=maker.id, account=account,
                                       direction=Direction(direction),
                                       money=Money(amount, fields.pop("currency", "USD")),
                                       reason=fields.pop("reason", "found in suspense"), **fields))


def approve(gopay: InMemoryGoPay, checker: User, proposal: AdjustmentProposal) -> PaymentOrder:
    return gopay.run(ApproveAdjustment(caller_id=checker.id, proposal_id=proposal.id))


def in_suspense(gopay: InMemoryGoPay, amount: int, staff: User) -> None:
    """What a reconciliation leaves in suspense: a PSP charge GoPay could not place."""
    run = gopay.run(StartReconciliation(run_id=uuid4(), file_sha256="5e" * 32, file_name="f.csv",
                                        requested_days=(), source="upload",
                                        started_by=staff.id, attempt=uuid4()))
    gopay.run(RecordFindings(run_id=run.id, attempt=run.attempt, first=0, items=({
        "kind": "missing_in_ledger", "difference": {"account": "psp_clearing", "amount": amount,
                                                   "currency": "USD"}},)))
    gopay.run(FinishReconciliation(run_id=run.id, attempt=run.attempt, period=("2026-03-12",),
                                   lines=1, report={}, summary={
        "matched": 0, "missing_in_ledger": 1, "missing_in_psp": 0, "amount_mismatch": 0,
        "status_mismatch": 0, "fee_mismatch": 0, "duplicates": 0}))
    gopay.run(PostFindingToSuspense(caller_id=staff.id, run_id=run.id, seq=0,
                                    account="psp_clearing", amount=amount, currency="USD"))


class TestMakerChecker:
    def test_a_proposal_moves_nothing_until_another_staff_member_approves(
            self, gopay: InMemoryGoPay, maker: User, checker: User, ada: User) -> None:
        in_suspense(gopay, 2_000, maker)
        proposal = propose(gopay, maker, str(wallet_id(ada)), "credit", 1_500,
                           counter_account="suspense", reason="her top-up, lost by the PSP's webhook")
        assert (proposal.status, gopay.balance(ada)) == (ProposalStatus.PROPOSED, 0)
        order = approve(gopay, checker, proposal)
        applied = gopay.app.get(proposal.id, AdjustmentProposal)
        assert (applied.status, applied.order_id, applied.decided_by) == (
            ProposalStatus.APPLIED, order.id, checker.id)
        assert (order.order_type, order.initiated_by, order.note) == (
            TransactionType.ADJUSTMENT, checker.id, "her top-up, lost by the PSP's webhook")
        assert gopay.balance(ada) == 1_500
        assert gopay.check_books().accounts[SUSPENSE] == 500
        credited = gopay.events(wallet_id(ada))[-1]
        assert (credited.counterparty, credited.entry_type) == ("suspense", "adjustment")

    def test_the_maker_cannot_approve_their_own_proposal(self, gopay: InMemoryGoPay, maker: User,
                                                         checker: User) -> None:
        in_suspense(gopay, 800, maker)
        proposal = propose(gopay, maker, "suspense", "debit", 800)
        with pytest.raises(Forbidden, match="another staff member must approve"):
            approve(gopay, maker, proposal)
        approve(gopay, checker, proposal)
        with pytest.raises(Forbidden):  # nor after someone else has
            approve(gopay, maker, proposal)
        assert gopay.check_books().accounts[SUSPENSE] == 0

    def test_an_approved_adjustment_moves_money_out_of_suspense_exactly_once(
            self, gopay: InMemoryGoPay, maker: User, checker: User) -> None:
        in_suspense(gopay, 800, maker)
        proposal = propose(gopay, maker, "suspense", "debit", 800, reason="written off")
        order = approve(gopay, checker, proposal)
        with pytest.raises(InvalidState, match="already applied"):
            approve(gopay, checker, proposal)
        books = gopay.check_books()
        assert (books.accounts[SUSPENSE], books.accounts[ADJUSTMENTS]) == (0, 800)
        assert [o.id for o in gopay.orders() if o.order_type == TransactionType.ADJUSTMENT
                and o.note == "written off"] == [order.id]

    def test_two_approvals_at_once_apply_it_once(self, gopay: InMemoryGoPay, maker: User,
                                                 checker: User) -> None:
        """Two checkers click at the same moment: one applies it, the other is told it is applied."""
        other = gopay.register("other@gopay.example", kind="staff", role="finance")
        in_suspense(gopay, 800, maker)
        proposal = propose(gopay, maker, "suspense", "debit", 800)
        with ThreadPoolExecutor(4) as pool:
            outcomes = list(pool.map(lambda staff: _attempt(gopay, staff, proposal),
                                     [checker, other, checker, other]))
        assert sorted(type(o).__name__ for o in outcomes) == [
            "InvalidState", "InvalidState", "InvalidState", "PaymentOrder"]
        assert gopay.check_books().accounts[SUSPENSE] == 0

    def test_a_rejected_proposal_is_never_applied(self, gopay: InMemoryGoPay, maker: User,
                                                  checker: User, ada: User) -> None:
        proposal = propose(gopay, maker, str(wallet_id(ada)))
        rejected = gopay.run(RejectAdjustment(staff_id=checker.id, proposal_id=proposal.id,
                                              reason="no evidence"))
        assert (rejected.status, rejected.decided_by, rejected.rejection_reason) == (
            ProposalStatus.REJECTED, checker.id, "no evidence")
        with pytest.raises(InvalidState):
            approve(gopay, checker, proposal)
        assert gopay.balance(ada) == 0

    def test_the_maker_may_withdraw_their_proposal(self, gopay: InMemoryGoPay, maker: User,
                                                   ada: User) -> None:
        proposal = propose(gopay, maker, str(wallet_id(ada)))
        gopay.run(RejectAdjustment(staff_id=maker.id, proposal_id=proposal.id, reason="typo"))
        assert gopay.app.get(proposal.id, AdjustmentProposal).status == ProposalStatus.REJECTED

    def test_a_debit_the_wallet_cannot_cover_leaves_the_proposal_open(
            self, gopay: InMemoryGoPay, maker: User, checker: User, ada: User) -> None:
        gopay.fund(ada, 100)
        proposal = propose(gopay, maker, str(wallet_id(ada)), "debit", 500)
        with pytest.raises(InsufficientFunds):
            approve(gopay, checker, proposal)
        assert gopay.app.get(proposal.id, AdjustmentProposal).status == ProposalStatus.PROPOSED
        gopay.fund(ada, 400)
        approve(gopay, checker, proposal)
        assert gopay.balance(ada) == 0


class TestWhichAccounts:
    @pytest.mark.parametrize(("account", "counter", "direction", "moves"), [
        ("wallet", "adjustments", "credit", {"wallet": 300, "adjustments": -300}),
        ("wallet", "suspense", "debit", {"wallet": -300, "suspense": 300}),
        ("suspense", "adjustments", "credit", {"suspense": 300, "adjustments": -300}),
        ("suspense", "fees", "debit", {"suspense": -300, "fees": 300}),
        ("receivables", "adjustments", "credit", {"receivables": 300, "adjustments": -300}),
        ("adjustments", "suspense", "debit", {"suspense": 300, "adjustments": -300}),
    ])
    def test_the_pairs_that_make_sense(self, gopay: InMemoryGoPay, maker: User, checker: User,
                                       ada: User, account: str, counter: str, direction: str,
                                       moves: dict[str, int]) -> None:
        gopay.fund(ada, 1_000)
        before = dict(gopay.check_books().accounts)
        accounts = {"wallet": wallet_id(ada), **{a.value: a.account_id("USD") for a in SystemAccount}}
        named = {name: str(wallet_id(ada)) if name == "wallet" else name for name in (account, counter)}
        approve(gopay, checker, propose(gopay, maker, named[account], direction, 300,
                                        counter_account=named[counter]))
        after = gopay.check_books().accounts
        assert {name: after[accounts[name]] - before.get(accounts[name], 0) for name in moves} == moves

    @pytest.mark.parametrize(("account", "counter"), [
        ("psp_clearing", "adjustments"),  # clearing accounts follow the PSP's files only
        ("payout_clearing", "suspense"),
        ("wallet", "wallet"),  # a wallet pays another by transfer, not by adjustment
        ("fees", "receivables"),
        ("suspense", "suspense"),
        ("treasury", "adjustments"),
    ])
    def test_other_pairs_are_refused(self, gopay: InMemoryGoPay, maker: User, ada: User,
                                     account: str, counter: str) -> None:
        other = gopay.register("bob@example.com")
        names = iter([str(wallet_id(ada)), str(wallet_id(other))])
        account, counter = (next(names) if name == "wallet" else name for name in (account, counter))
        with pytest.raises(ValidationFailed):
            propose(gopay, maker, account, counter_account=counter)

    def test_a_wallet_that_is_not_there_or_of_another_currency(self, gopay: InMemoryGoPay,
                                                                maker: User, ada: User) -> None:
        with pytest.raises(ValidationFailed, match="no wallet"):
            propose(gopay, maker, str(uuid4()))
        with pytest.raises(CurrencyMismatch):
            propose(gopay, maker, str(wallet_id(ada)), currency="EUR")

    def test_a_proposal_needs_a_reason(self, gopay: InMemoryGoPay, maker: User) -> None:
        with pytest.raises(ValidationFailed, match="needs a reason"):
            propose(gopay, maker, "suspense", reason="  ")


class TestRepeatedProposals:
    def test_a_repeated_key_finds_the_first_proposal(self, gopay: InMemoryGoPay, maker: User) -> None:
        first = propose(gopay, maker, "suspense", idempotency_key="k", fingerprint="f")
        again = propose(gopay, maker, "suspense", idempotency_key="k", fingerprint="f")
        assert again.id == first.id
        with pytest.raises(IdempotencyConflict):
            propose(gopay, maker, "suspense", amount=7, idempotency_key="k", fingerprint="g")


def _attempt(gopay: InMemoryGoPay, staff: User, proposal: AdjustmentProposal) -> object:
    try:
        return approve(gopay, staff, proposal)
    except InvalidState as refused:
        return refused
