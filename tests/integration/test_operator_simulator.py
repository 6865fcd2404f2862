"""The mobile operators' gateway that `gopay psp-sim` also plays, as its own process, reached only
through GoPay's HTTP adapter; its webhooks received and verified by a small server in the test."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from gopay.operators.http_adapter import HttpOperators
from gopay.psp.http_adapter import HttpPsp
from gopay.psp.port import Card, NonceReused, OperationStatus, PspNoAnswer, PspRefused
from tests.integration.test_psp_simulator import (
    SUCCEEDS,
    WebhookReceiver,
    eventually,
    nonce,
    set_faults,
    settlement_lines,
    today,
)
from tests.support import PSP_API_KEY, PspSimulator, psp_env

PHONE, UNSERVED = "+447700900123", "+15550000000"


@pytest.fixture(scope="module")
def receiver() -> Iterator[WebhookReceiver]:
    running = WebhookReceiver()
    yield running
    running.close()


@pytest.fixture(scope="module")
def simulator(receiver: WebhookReceiver,
              tmp_path_factory: pytest.TempPathFactory) -> Iterator[PspSimulator]:
    var_dir = tmp_path_factory.mktemp("operators-var")
    running = PspSimulator.create(psp_env(var_dir, receiver.url), var_dir / "psp-sim.log",
                                  "--seed", "7").start()
    yield running
    running.stop()


@pytest.fixture
def operators(simulator: PspSimulator) -> Iterator[HttpOperators]:
    """The adapter as GoPay uses it, with a short timeout; faults cleared after each test."""
    with HttpOperators(simulator.url, PSP_API_KEY, timeout=1.0) as adapter:
        yield adapter
    assert httpx.post(f"{simulator.url}/sim/faults", json={}).status_code == 200


@pytest.fixture
def psp(simulator: PspSimulator) -> Iterator[HttpPsp]:
    with HttpPsp(simulator.url, PSP_API_KEY, timeout=1.0) as adapter:
        yield adapter


class TestRecharges:
    def test_a_served_number_is_recharged_and_announced(
            self, operators: HttpOperators, receiver: WebhookReceiver) -> None:
        """201 succeeded, free of fees; `recharge.succeeded` tells the same; the nonce finds it."""
        order = nonce("recharge")
        result = operators.recharge(order, PHONE, "Vodafone", 1_000, "GBP")
        assert (result.kind, result.status, result.failure_reason, result.fee) == (
            "recharge", "succeeded", None, 0)
        assert (result.nonce, result.amount, result.currency) == (order, 1_000, "GBP")
        assert result.psp_reference.startswith("rc_")
        assert operators.status(order) == result
        event = eventually(lambda: receiver.events(order))[0]
        assert event["type"] == "recharge.succeeded"
        assert event["data"] == {
            "object": "recharge", "psp_reference": result.psp_reference,
            "merchant_reference": order, "charge_reference": None, "amount": 1_000,
            "currency": "GBP", "fee": 0, "status": "succeeded", "failure_reason": None}

    def test_the_unserved_test_number_fails(self, operators: HttpOperators,
                                            receiver: WebhookReceiver) -> None:
        """+15550000000: a `failed` recharge (not an error), and a `recharge.failed` webhook."""
        result = operators.recharge(order := nonce("recharge"), UNSERVED, "AT&T", 500, "USD")
        assert (result.status, result.failure_reason) == (OperationStatus.FAILED,
                                                          "number_not_served")
        event = eventually(lambda: receiver.events(order))[0]
        assert (event["type"], event["data"]["failure_reason"]) == ("recharge.failed",
                                                                    "number_not_served")

    def test_the_same_nonce_recharges_once(self, operators: HttpOperators,
                                           receiver: WebhookReceiver) -> None:
        """Twice the same request: one recharge, one event; another request under it is refused."""
        order = nonce("recharge")
        first = operators.recharge(order, PHONE, "EE", 700, "GBP")
        assert operators.recharge(order, PHONE, "EE", 700, "GBP") == first
        with pytest.raises(NonceReused):
            operators.recharge(order, PHONE, "EE", 701, "GBP")
        with pytest.raises(NonceReused):
            operators.recharge(order, "+447700900999", "EE", 700, "GBP")
        assert operators.status(order) == first
        eventually(lambda: receiver.events(order))
        assert len({event["id"] for event in receiver.events(order)}) == 1

    def test_recharges_and_psp_operations_are_apart(self, operators: HttpOperators,
                                                    psp: HttpPsp) -> None:
        """Each port sees only its own operations under a nonce; recharges are no settlement lines."""
        recharged = operators.recharge(order := nonce("recharge"), PHONE, "O2", 300, "GBP")
        assert psp.status(order) is None
        charged = psp.charge(charge := nonce(), 300, "GBP", Card(SUCCEEDS))
        assert operators.status(charge) is None
        assert operators.status(nonce("never-sent")) is None
        lines = settlement_lines(psp, {order, charge}, {today()})
        assert [line["merchant_reference"] for line in lines] == [charge]
        assert recharged.status == charged.status == OperationStatus.SUCCEEDED

    def test_bad_input_is_refused_with_a_reason_never_a_500(
            self, operators: HttpOperators, simulator: PspSimulator) -> None:
        with pytest.raises(PspRefused) as refused:
            operators.recharge(nonce("recharge"), "07700 900123", "EE", 100, "GBP")
        assert (refused.value.http_status, refused.value.code) == (422, "invalid_phone_number")
        with pytest.raises(PspRefused) as refused:
            operators.recharge(nonce("recharge"), PHONE, "EE", 100, "ZZZ")
        assert refused.value.code == "invalid_currency"
        order = nonce("recharge")
        good = {"nonce": order, "phone_number": PHONE, "operator": "EE", "amount": 100,
                "currency": "GBP"}
        key = {"Authorization": f"Bearer {PSP_API_KEY}"}
        for body, headers, status in [
                ({**good, "amount": 1.5}, key, 422), ({**good, "amount": "100"}, key, 422),
                ({**good, "operator": ""}, key, 422), ({**good, "nonce": "a/b"}, key, 422),
                ({**good, "extra": 1}, key, 422), ([1], key, 422), (good, {}, 401)]:
            response = httpx.post(f"{simulator.url}/v1/recharges", json=body, headers=headers)
            assert response.status_code == status, (body, response.text)
            assert response.headers["content-type"] == "application/problem+json"
            assert response.json()["code"]
        assert operators.status(order) is None, "a refused request did something"


class TestFaults:
    def test_a_dropped_answer_leaves_the_recharge_done_once(
            self, operators: HttpOperators, simulator: PspSimulator) -> None:
        """The gateway recharged but its answer never came: the nonce finds it, a retry repeats it."""
        set_faults(simulator, drop_response=1.0)
        order = nonce("recharge")
        with pytest.raises(PspNoAnswer):
            operators.recharge(order, UNSERVED, "T-Mobile", 900, "USD")
        with pytest.raises(PspNoAnswer):
            operators.status(order)
        set_faults(simulator)
        found = operators.status(order)
        assert found is not None and (found.status, found.failure_reason) == (
            "failed", "number_not_served")
        assert operators.recharge(order, UNSERVED, "T-Mobile", 900, "USD") == found

    @pytest.mark.parametrize("work_done", [False, True])
    def test_a_5xx_may_or_may_not_have_done_the_work(
            self, operators: HttpOperators, simulator: PspSimulator, work_done: bool) -> None:
        set_faults(simulator, error_5xx=1.0, error_5xx_work_done=float(work_done))
        order = nonce("recharge")
        with pytest.raises(PspNoAnswer, match="answered 5"):
            operators.recharge(order, PHONE, "Three", 400, "GBP")
        set_faults(simulator)
        assert (operators.status(order) is not None) == work_done
