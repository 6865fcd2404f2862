"""The simulated PSP's rules on its own books (SQLite in memory, a hand-turned clock): fees,
chargebacks after refunds, and dice that repeat themselves."""

from __future__ import annotations

import json

import pytest

from gopay.psp.port import Card
from gopay.psp.simulator.faults import AnswerFault, AnswerPlan, Dice, Faults
from gopay.psp.simulator.fees import DEFAULT_FEES, FeeRule, fee_schedule
from gopay.psp.simulator.provider import Refusal, SimulatedPsp
from gopay.psp.simulator.store import Store

DISPUTED = Card("4000000000000259")


class Clock:
    def __init__(self) -> None:
        self.now = 1_796_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def psp(clock: Clock) -> SimulatedPsp:
    return SimulatedPsp(Store(":memory:"), Dice(Faults(), seed=1), dict(DEFAULT_FEES),
                        dispute_delay=5, clock=clock)


class TestFees:
    @pytest.mark.parametrize(("rule", "amount", "fee"), [
        (FeeRule(basis_points=290, fixed=30), 1_000, 59),
        (FeeRule(basis_points=290, fixed=30), 50, 31),  # 1.45 rounds down
        (FeeRule(basis_points=290, fixed=30), 5_000_000, 145_030),
        (FeeRule(basis_points=50), 100, 1),  # 0.5 rounds half up
        (FeeRule(basis_points=80, cap=500), 1_000_000, 500),
        (FeeRule(fixed=25), 10**15, 25)])
    def test_a_fee_is_a_percentage_plus_a_fixed_part_in_whole_minor_units(
            self, rule: FeeRule, amount: int, fee: int) -> None:
        """Fees are integers: basis points rounded half up, plus the fixed part, at most the cap."""
        assert rule.fee(amount) == fee

    def test_the_schedule_takes_overrides_and_refuses_unknown_keys(self) -> None:
        """A configured rule replaces its default; a misspelt key is an error, not silently ignored."""
        schedule = fee_schedule({"payout.bank_account": {"fixed": 0}})
        assert schedule["payout.bank_account"].fee(1_000) == 0
        assert schedule["charge.card"] == DEFAULT_FEES["charge.card"]
        with pytest.raises(ValueError, match="unknown fee keys"):
            fee_schedule({"charge.crd": {"fixed": 1}})
        with pytest.raises(ValueError, match="not negative"):
            fee_schedule({"refund": {"fixed": -1}})


class TestChargebacks:
    def test_a_chargeback_comes_when_due_and_only_once(self, psp: SimulatedPsp, clock: Clock) -> None:
        """The disputed card is charged back after the delay, once, however often the timer looks."""
        charge = psp.charge("order-1", 2_000, "USD", DISPUTED).operation
        assert psp.open_due_disputes() == 0
        clock.now += 5
        assert psp.open_due_disputes() == 1
        assert psp.open_due_disputes() == 0
        lines = psp.settlement_file(charge.created_at[:10]).splitlines()[1:]
        assert [line.split(",")[2:7] for line in lines] == [
            ["charge", "2000", "USD", "88", "settled"], ["chargeback", "2000", "USD", "1500", "settled"]]
        assert psp.status("order-1").disputed_at  # type: ignore[union-attr]

    def test_a_partly_refunded_charge_is_charged_back_for_what_is_left(
            self, psp: SimulatedPsp, clock: Clock) -> None:
        """The payer's bank takes back only what the refunds did not already give back."""
        charge = psp.charge("order-1", 2_000, "USD", DISPUTED).operation
        psp.refund("refund-1", charge.psp_reference, 500)
        clock.now += 5
        psp.open_due_disputes()
        events = psp.store.events("order-1", 10)
        assert [(e["type"], e["data"]["amount"]) for e in events] == [
            ("charge.disputed", 1_500), ("charge.succeeded", 2_000)]

    def test_a_fully_refunded_charge_is_not_charged_back(self, psp: SimulatedPsp, clock: Clock) -> None:
        """Nothing is left to take back: no chargeback line, no webhook, and the timer stops looking."""
        charge = psp.charge("order-1", 2_000, "USD", DISPUTED).operation
        psp.refund("refund-1", charge.psp_reference, 2_000)
        clock.now += 5
        assert psp.open_due_disputes() == 1
        assert psp.open_due_disputes() == 0
        assert "chargeback" not in psp.settlement_file(charge.created_at[:10])
        assert [e["type"] for e in psp.store.events("order-1", 10)] == ["charge.succeeded"]
        with pytest.raises(Refusal, match="left to refund"):
            psp.refund("refund-2", charge.psp_reference, 1)


class TestDice:
    def test_the_same_seed_gives_the_same_faults(self) -> None:
        """Two runs from one seed fail the same requests and delay the same webhooks."""
        faults = Faults(drop_response=0.3, error_5xx=0.2, timeout=0.1, rate_limited=0.1,
                        duplicate_webhook=0.3, delay_webhook=0.3, drop_webhook=0.1, seed=42)

        def run() -> list[tuple[AnswerPlan, list[float]]]:
            dice = Dice(faults)
            return [(dice.answer(), dice.webhook_delays()) for _ in range(200)]

        first = run()
        assert first == run()
        kinds = {plan.fault for plan, _ in first}
        assert kinds == set(AnswerFault)
        assert {len(delays) for _, delays in first} == {0, 1, 2}
        assert all(2.5 <= delay <= 5 for _, delays in first for delay in delays if delay)
        assert all(not plan.work_done for plan, _ in first if plan.fault is AnswerFault.RATE_LIMITED)

    def test_a_rate_limit_left_unset_leaves_every_seed_as_it_was(self) -> None:
        """The rate-limit die is rolled only when set: runs seeded before it existed repeat."""
        faults = Faults(drop_response=0.3, error_5xx=0.2, timeout=0.1, seed=5)
        unset, zero = Dice(faults), Dice(faults.model_copy(update={"rate_limited": 0.0}))
        assert [unset.answer() for _ in range(50)] == [zero.answer() for _ in range(50)]

    def test_no_faults_means_every_answer_and_webhook_goes_out_at_once(self) -> None:
        """With the faults cleared, the dice never fail anything."""
        dice = Dice(Faults(), seed=3)
        assert all(dice.answer().fault is AnswerFault.NONE for _ in range(100))
        assert all(dice.webhook_delays() == [0.0] for _ in range(100))

    def test_faults_reject_what_is_not_a_probability(self) -> None:
        """Out of range, a string, NaN or an unknown fault: refused, not half understood."""
        for nonsense in ['{"drop_response": 1.01}', '{"timeout": -0.1}', '{"error_5xx": "0.5"}',
                         '{"drop_response": NaN}', '{"surprise": 0.1}']:
            with pytest.raises(ValueError, match="validation error"):
                Faults.model_validate_json(nonsense)
        assert json.loads(Faults().model_dump_json())["drop_response"] == 0.0
