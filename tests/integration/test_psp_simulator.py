"""The PSP simulator as its own process, reached only through GoPay's HTTP adapter, its webhooks
received by a small server in the test that verifies every signature."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from gopay.psp.http_adapter import HttpPsp
from gopay.psp.port import (
    BankAccount,
    Card,
    DigitalWallet,
    NonceReused,
    OperationStatus,
    PspBusy,
    PspNoAnswer,
    PspRefused,
    PspResult,
)
from gopay.psp.webhooks import (
    HEADER,
    MalformedSignature,
    SignatureError,
    StaleSignature,
    WrongSignature,
    verify,
)
from tests.support import PSP_API_KEY, PSP_WEBHOOK_SECRET, PspSimulator, psp_env

T = TypeVar("T")

SUCCEEDS, DECLINED, NO_FUNDS, DISPUTED = ("4242424242424242", "4000000000000002",
                                          "4000000000009995", "4000000000000259")
OTHER_CARD = "5555555555554444"
IBAN = "DE89370400440532013000"
CLOSED_IBAN = "GB33BUKB20201555555555"
SETTLEMENT_HEADER = "psp_reference,merchant_reference,type,amount,currency,fee,status,settled_at"


def card_fee(amount: int) -> int:
    """The default card fee, 2.9 % + 30, rounded half up (written out, not imported)."""
    return (amount * 290 + 5_000) // 10_000 + 30


@dataclass(frozen=True)
class Received:
    event: dict[str, Any]
    body: bytes
    header: str


class WebhookReceiver:
    """GoPay's webhook endpoint in miniature: verifies each signature and keeps what it accepted."""

    def __init__(self) -> None:
        self.accepted: list[Received] = []
        self.refused: list[str] = []
        self.attempts = 0
        self.answer = 200  # what it answers a well-signed delivery; set >= 300 to refuse them
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                header = self.headers.get(HEADER)
                with receiver.lock:
                    receiver.attempts += 1
                    try:
                        verify(PSP_WEBHOOK_SECRET, header, body)
                        status = receiver.answer
                        if status < 300:
                            receiver.accepted.append(Received(json.loads(body), body, header or ""))
                    except SignatureError as error:
                        receiver.refused.append(str(error))
                        status = 400
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1/psp/webhooks"

    def events(self, nonce: str) -> list[dict[str, Any]]:
        with self.lock:
            return [item.event for item in self.accepted
                    if item.event["data"]["merchant_reference"] == nonce]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def eventually(check: Callable[[], T], timeout: float = 10.0) -> T:
    """The first truthy answer of `check`, polled until `timeout` seconds have passed."""
    deadline = time.monotonic() + timeout
    while True:
        answer = check()
        if answer or time.monotonic() > deadline:
            assert answer, f"not within {timeout} s"
            return answer
        time.sleep(0.05)


def settlement_lines(psp: HttpPsp, nonces: set[str], days: set[date]) -> list[dict[str, str]]:
    """The settlement files' lines for these nonces, from each day the test may have spanned."""
    lines = []
    for day in sorted(days):
        text = psp.settlement_file(day)
        assert text.splitlines()[0] == SETTLEMENT_HEADER
        lines += [line for line in csv.DictReader(io.StringIO(text))
                  if line["merchant_reference"] in nonces]
    return lines


def today() -> date:
    return datetime.now(UTC).date()


_nonces = iter(range(10**9))


def nonce(label: str = "order") -> str:
    return f"{label}-{time.time_ns()}-{next(_nonces)}"


@pytest.fixture(scope="module")
def receiver() -> Iterator[WebhookReceiver]:
    running = WebhookReceiver()
    yield running
    running.close()


@pytest.fixture(scope="module")
def simulator(receiver: WebhookReceiver, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PspSimulator]:
    var_dir = tmp_path_factory.mktemp("psp-var")
    env = psp_env(var_dir, receiver.url, GOPAY_PSP_SIM_DISPUTE_DELAY="0.5")
    running = PspSimulator.create(env, var_dir / "psp-sim.log", "--seed", "7").start()
    yield running
    running.stop()


@pytest.fixture
def psp(simulator: PspSimulator) -> Iterator[HttpPsp]:
    """The adapter as GoPay uses it, with a short timeout; faults cleared after each test."""
    with HttpPsp(simulator.url, PSP_API_KEY, timeout=1.0) as adapter:
        yield adapter
    assert httpx.post(f"{simulator.url}/sim/faults", json={}).status_code == 200


def set_faults(simulator: PspSimulator, **faults: float) -> None:
    response = httpx.post(f"{simulator.url}/sim/faults", json={"seed": 11, **faults})
    assert response.status_code == 200, response.text


class TestCharges:
    @pytest.mark.parametrize(("number", "status", "reason"), [
        (SUCCEEDS, "succeeded", None), (DECLINED, "failed", "card_declined"),
        (NO_FUNDS, "failed", "insufficient_funds"), (DISPUTED, "succeeded", None),
        (OTHER_CARD, "succeeded", None)])
    def test_each_test_card_ends_as_documented(self, psp: HttpPsp, receiver: WebhookReceiver,
                                               number: str, status: str, reason: str | None) -> None:
        """A test card's charge ends as API.md says, with its fee, and the webhook tells the same."""
        order = nonce()
        result = psp.charge(order, 1_000, "USD", Card(number))
        assert (result.kind, result.status, result.failure_reason) == ("charge", status, reason)
        assert result.fee == (card_fee(1_000) if status == "succeeded" else 0)
        assert (result.nonce, result.amount, result.currency) == (order, 1_000, "USD")
        event = eventually(lambda: receiver.events(order))[0]
        assert event["type"] == f"charge.{status}"
        assert event["data"] == {
            "object": "charge", "psp_reference": result.psp_reference, "merchant_reference": order,
            "charge_reference": None, "amount": 1_000, "currency": "USD", "fee": result.fee,
            "status": status, "failure_reason": reason}

    def test_bank_accounts_and_digital_wallets_are_debited(self, psp: HttpPsp) -> None:
        """A bank account or a digital wallet is charged too; a closed account fails."""
        bank = psp.charge(nonce(), 100_000, "EUR", BankAccount(IBAN))
        assert (bank.status, bank.fee) == ("succeeded", 500)  # 0.8 %, capped at 5.00
        closed = psp.charge(nonce(), 1_000, "GBP", BankAccount(CLOSED_IBAN))
        assert (closed.status, closed.failure_reason, closed.fee) == ("failed", "account_closed", 0)
        wallet = psp.charge(nonce(), 1_000, "USD", DigitalWallet("paypal", "buyer@example.com"))
        assert (wallet.status, wallet.fee) == ("succeeded", 64)  # 3.4 % + 30

    def test_the_same_nonce_twice_charges_once(self, psp: HttpPsp, receiver: WebhookReceiver) -> None:
        """The pay button clicked twice: one charge, one settlement line, one webhook event."""
        order = nonce()
        first = psp.charge(order, 2_500, "USD", Card(SUCCEEDS))
        second = psp.charge(order, 2_500, "USD", Card(SUCCEEDS))
        assert second == first
        assert psp.status(order) == first
        lines = settlement_lines(psp, {order}, {today()})
        assert [(line["psp_reference"], line["type"], line["amount"]) for line in lines] == [
            (first.psp_reference, "charge", "2500")]
        eventually(lambda: receiver.events(order))
        time.sleep(0.3)
        assert len({event["id"] for event in receiver.events(order)}) == 1

    def test_the_same_nonce_for_another_request_is_refused(self, psp: HttpPsp) -> None:
        """A nonce names one operation: a different amount or card under it is refused, the first stands."""
        order = nonce()
        first = psp.charge(order, 1_000, "USD", Card(SUCCEEDS))
        with pytest.raises(NonceReused) as refused:
            psp.charge(order, 1_001, "USD", Card(SUCCEEDS))
        assert refused.value.http_status == 409
        with pytest.raises(NonceReused):
            psp.payout(order, 1_000, "USD", BankAccount(IBAN))
        assert psp.status(order) == first

    def test_an_unknown_nonce_has_no_status(self, psp: HttpPsp) -> None:
        """The PSP never saw this nonce: `status` says so with None, not with an error."""
        assert psp.status(nonce("never-sent")) is None

    def test_bad_input_is_refused_with_a_reason_never_a_500(self, psp: HttpPsp,
                                                            simulator: PspSimulator) -> None:
        """Bad cards, amounts, currencies, bodies and keys get a 4xx problem with a code."""
        with pytest.raises(PspRefused) as refused:
            psp.charge(nonce(), 1_000, "USD", Card("4242424242424241"))
        assert (refused.value.http_status, refused.value.code) == (422, "invalid_card_number")
        with pytest.raises(PspRefused) as refused:
            psp.charge(nonce(), 1_000, "ZZZ", Card(SUCCEEDS))
        assert refused.value.code == "invalid_currency"
        with pytest.raises(PspRefused) as refused:
            psp.payout(nonce(), 1_000, "EUR", BankAccount("DE00370400440532013000"))
        assert refused.value.code == "invalid_iban"
        order = nonce()
        good = {"nonce": order, "amount": 100, "currency": "USD",
                "source": {"type": "card", "number": SUCCEEDS}}
        key = {"Authorization": f"Bearer {PSP_API_KEY}"}
        for body, headers, status in [
            ({**good, "amount": 10.5}, key, 422), ({**good, "amount": "100"}, key, 422),
            ({**good, "amount": 0}, key, 422), ({**good, "nonce": "a/b"}, key, 422),
            ({**good, "source": {"type": "cash"}}, key, 422), ([1, 2], key, 422),
            ({**good, "extra": 1}, key, 422), (good, {}, 401),
            (good, {"Authorization": "Bearer sk_wrong"}, 401)]:
            response = httpx.post(f"{simulator.url}/v1/charges", json=body, headers=headers)
            assert response.status_code == status, (body, response.text)
            assert response.headers["content-type"] == "application/problem+json"
            assert response.json()["code"]
        assert psp.status(order) is None, "a refused request did something"


class TestPayoutsAndRefunds:
    def test_payouts_go_to_bank_accounts_and_cards(self, psp: HttpPsp,
                                                   receiver: WebhookReceiver) -> None:
        """A payout to a bank account or card is paid, with its fee; the closed account fails."""
        paid = psp.payout(order := nonce(), 5_000, "EUR", BankAccount(IBAN))
        assert (paid.kind, paid.status, paid.fee) == ("payout", "succeeded", 25)
        assert eventually(lambda: receiver.events(order))[0]["type"] == "payout.paid"
        to_card = psp.payout(nonce(), 5_000, "USD", Card(SUCCEEDS))
        assert (to_card.status, to_card.fee) == ("succeeded", 100)  # 1.5 % + 25
        failed = psp.payout(order := nonce(), 5_000, "GBP", BankAccount(CLOSED_IBAN))
        assert (failed.status, failed.failure_reason, failed.fee) == ("failed", "account_closed", 0)
        event = eventually(lambda: receiver.events(order))[0]
        assert (event["type"], event["data"]["failure_reason"]) == ("payout.failed", "account_closed")

    def test_refunds_never_exceed_the_charge(self, psp: HttpPsp, receiver: WebhookReceiver) -> None:
        """Refunds give back a charge in parts, never more than it took, and each is announced."""
        charge = psp.charge(nonce(), 1_000, "USD", Card(SUCCEEDS))
        first = psp.refund(order := nonce(), charge.psp_reference, 600)
        assert (first.kind, first.status, first.charge_reference, first.currency) == (
            "refund", "succeeded", charge.psp_reference, "USD")
        assert psp.refund(order, charge.psp_reference, 600) == first  # the same nonce: no second refund
        event = eventually(lambda: receiver.events(order))[0]
        assert (event["type"], event["data"]["charge_reference"]) == ("refund.succeeded",
                                                                      charge.psp_reference)
        with pytest.raises(PspRefused) as refused:
            psp.refund(nonce(), charge.psp_reference, 401)
        assert refused.value.code == "amount_too_large"
        assert psp.refund(nonce(), charge.psp_reference, 400).status == "succeeded"
        with pytest.raises(PspRefused) as refused:
            psp.refund(nonce(), "ch_unknown", 1)
        assert (refused.value.http_status, refused.value.code) == (404, "no_such_charge")
        declined = psp.charge(nonce(), 1_000, "USD", Card(DECLINED))
        with pytest.raises(PspRefused) as refused:
            psp.refund(nonce(), declined.psp_reference, 1)
        assert refused.value.code == "charge_not_refundable"


class TestChargebacks:
    def test_the_disputed_card_is_charged_back_a_little_later(self, psp: HttpPsp,
                                                              receiver: WebhookReceiver) -> None:
        """4000000000000259 succeeds, then a `charge.disputed` webhook and a chargeback line follow."""
        charge = psp.charge(order := nonce(), 3_000, "USD", Card(DISPUTED))
        assert charge.status == "succeeded" and not charge.disputed
        events = eventually(lambda: [e for e in receiver.events(order) if e["type"] == "charge.disputed"])
        dispute = events[0]["data"]
        assert (dispute["merchant_reference"], dispute["charge_reference"], dispute["amount"],
                dispute["fee"]) == (order, charge.psp_reference, 3_000, 1_500)
        assert psp.status(order).disputed  # type: ignore[union-attr]
        lines = settlement_lines(psp, {order}, {today(), today() - timedelta(days=1)})
        assert [(line["type"], line["psp_reference"], line["amount"], line["fee"], line["status"])
                for line in lines] == [
            ("charge", charge.psp_reference, "3000", str(card_fee(3_000)), "settled"),
            ("chargeback", dispute["psp_reference"], "3000", "1500", "settled")]
        with pytest.raises(PspRefused) as refused:
            psp.refund(nonce(), charge.psp_reference, 100)
        assert refused.value.code == "charge_disputed"


class TestFaults:
    def test_a_dropped_answer_leaves_the_charge_done_once(self, psp: HttpPsp, simulator: PspSimulator,
                                                          receiver: WebhookReceiver) -> None:
        """The PSP charged but its answer never came: the adapter says so, and the nonce finds the charge."""
        set_faults(simulator, drop_response=1.0)
        order = nonce()
        with pytest.raises(PspNoAnswer):
            psp.charge(order, 1_500, "USD", Card(SUCCEEDS))
        with pytest.raises(PspNoAnswer):  # status queries lose their answers too
            psp.status(order)
        set_faults(simulator)
        found = psp.status(order)
        assert found is not None and (found.status, found.amount) == ("succeeded", 1_500)
        assert psp.charge(order, 1_500, "USD", Card(SUCCEEDS)) == found  # the client's retry
        lines = settlement_lines(psp, {order}, {today()})
        assert [line["psp_reference"] for line in lines] == [found.psp_reference]
        eventually(lambda: receiver.events(order))
        time.sleep(0.3)
        assert len(receiver.events(order)) == 1

    def test_a_timeout_may_do_the_work_after_the_client_gave_up(self, psp: HttpPsp,
                                                                simulator: PspSimulator) -> None:
        """A hung request does its work late: `status` says None first, then the charge."""
        set_faults(simulator, timeout=1.0, timeout_work_done=1.0, timeout_seconds=2.0)
        order = nonce()
        started = time.monotonic()
        with pytest.raises(PspNoAnswer):
            psp.charge(order, 700, "USD", Card(SUCCEEDS))
        assert time.monotonic() - started < 1.9, "the adapter waited past its own timeout"
        set_faults(simulator)
        assert psp.status(order) is None, "not done yet: None, which is not a failure"
        found = eventually(lambda: psp.status(order), timeout=5)
        assert found is not None and (found.status, found.amount) == ("succeeded", 700)

    @pytest.mark.parametrize("work_done", [False, True])
    def test_a_5xx_may_or_may_not_have_done_the_work(self, psp: HttpPsp, simulator: PspSimulator,
                                                     work_done: bool) -> None:
        """A 5xx is no answer either way; `status` tells which way it went."""
        set_faults(simulator, error_5xx=1.0, error_5xx_work_done=float(work_done))
        order = nonce()
        with pytest.raises(PspNoAnswer, match="answered 5"):
            psp.payout(order, 900, "EUR", BankAccount(IBAN))
        set_faults(simulator)
        found = psp.status(order)
        assert (found is not None) == work_done
        if found is None:  # nothing happened: the same nonce now pays, once
            assert psp.payout(order, 900, "EUR", BankAccount(IBAN)).status == "succeeded"
        assert len(settlement_lines(psp, {order}, {today()})) == 1

    def test_a_request_turned_away_did_nothing_and_says_when_to_come_back(
            self, psp: HttpPsp, simulator: PspSimulator) -> None:
        """429 `rate_limited`: the adapter says busy, with the Retry-After, for calls and status
        queries alike, awaited or not; nothing was charged, and the same nonce charges once later."""
        set_faults(simulator, rate_limited=1.0, rate_limit_retry_after=7)
        order = nonce()
        with pytest.raises(PspBusy) as busy:
            psp.charge(order, 1_300, "USD", Card(SUCCEEDS))
        assert busy.value.retry_after == 7.0
        with pytest.raises(PspBusy):
            psp.status(order)

        async def awaited() -> None:
            try:
                with pytest.raises(PspBusy) as turned_away:
                    await psp.charge_async(order, 1_300, "USD", Card(SUCCEEDS))
                assert turned_away.value.retry_after == 7.0
                with pytest.raises(PspBusy):
                    await psp.status_async(order)
            finally:
                await psp.aclose()

        asyncio.run(awaited())
        set_faults(simulator)
        assert psp.status(order) is None, "turned away: nothing was done"
        assert psp.charge(order, 1_300, "USD", Card(SUCCEEDS)).status == "succeeded"
        assert len(settlement_lines(psp, {order}, {today()})) == 1

    def test_a_refused_status_query_is_no_answer(self, psp: HttpPsp,
                                                 simulator: PspSimulator) -> None:
        """A status query refused for another reason than "no such nonce" (here the API key)
        says nothing of what was done: no answer, never a refusal that could fail the order."""
        order = nonce()
        charged = psp.charge(order, 400, "USD", Card(SUCCEEDS))
        with HttpPsp(simulator.url, "sk_wrong", timeout=1.0) as stranger:
            with pytest.raises(PspNoAnswer, match="refused to say"):
                stranger.status(order)
            with pytest.raises(PspRefused) as refused:  # a call refused: nothing was done
                stranger.charge(nonce(), 400, "USD", Card(SUCCEEDS))
            assert refused.value.http_status == 401
        assert psp.status(order) == charged

    def test_duplicated_webhooks_arrive_twice_with_the_same_event(
            self, psp: HttpPsp, simulator: PspSimulator, receiver: WebhookReceiver) -> None:
        """A duplicated webhook is the same event (same id and body) delivered twice, both signed."""
        set_faults(simulator, duplicate_webhook=1.0)
        psp.charge(order := nonce(), 1_000, "USD", Card(SUCCEEDS))
        eventually(lambda: len(receiver.events(order)) >= 2)
        time.sleep(0.3)
        events = receiver.events(order)
        assert len(events) == 2 and events[0] == events[1]

    def test_delayed_webhooks_are_overtaken_by_later_ones(
            self, psp: HttpPsp, simulator: PspSimulator, receiver: WebhookReceiver) -> None:
        """A delayed webhook arrives after the webhooks of operations done after it."""
        set_faults(simulator, delay_webhook=1.0, webhook_delay_seconds=1.5)
        charge = psp.charge(first := nonce(), 1_000, "USD", Card(SUCCEEDS))
        set_faults(simulator)
        psp.refund(second := nonce(), charge.psp_reference, 1_000)
        eventually(lambda: receiver.events(second))
        assert receiver.events(first) == [], "the delayed webhook was not delayed"
        eventually(lambda: receiver.events(first))
        with receiver.lock:
            order = [item.event["data"]["merchant_reference"] for item in receiver.accepted]
        assert order.index(second) < order.index(first)

    def test_a_dropped_webhook_is_never_sent_but_the_operation_stands(
            self, psp: HttpPsp, simulator: PspSimulator, receiver: WebhookReceiver) -> None:
        """Without its webhook, GoPay learns of the charge only by asking: status has it."""
        set_faults(simulator, drop_webhook=1.0)
        charge = psp.charge(order := nonce(), 1_000, "USD", Card(SUCCEEDS))
        set_faults(simulator)
        events = httpx.get(f"{simulator.url}/sim/events", params={"nonce": order}).json()["data"]
        assert [(event["type"], event["deliveries"]) for event in events] == [("charge.succeeded", [])]
        time.sleep(0.5)
        assert receiver.events(order) == []
        assert psp.status(order) == charge

    def test_faults_are_shown_replaced_and_cleared(self, psp: HttpPsp, simulator: PspSimulator) -> None:
        """POST /sim/faults replaces the set, GET shows it, `{}` clears it, nonsense is a 422."""
        faults = f"{simulator.url}/sim/faults"
        assert httpx.post(faults, json={"drop_response": 0.2, "duplicate_webhook": 0.2}).status_code == 200
        shown = httpx.get(faults).json()
        assert (shown["drop_response"], shown["duplicate_webhook"], shown["timeout"]) == (0.2, 0.2, 0.0)
        for nonsense in [{"drop_response": 1.5}, {"drop_response": "often"}, {"lightning": 0.1}, [0.2]]:
            assert httpx.post(faults, json=nonsense).status_code == 422, nonsense
        assert httpx.get(faults).json() == shown
        assert httpx.post(faults, json={}).status_code == 200
        assert httpx.get(faults).json()["drop_response"] == 0.0

    def test_faults_can_be_set_from_the_start(self, receiver: WebhookReceiver, tmp_path: Path) -> None:
        """`--faults` and GOPAY_PSP_SIM_FAULTS start the simulator with faults already on."""
        env = psp_env(tmp_path, receiver.url, GOPAY_PSP_SIM_FAULTS='{"duplicate_webhook": 0.5}')
        running = PspSimulator.create(env, tmp_path / "sim.log", "--faults", '{"error_5xx": 1}').start()
        try:
            shown = httpx.get(f"{running.url}/sim/faults").json()
            assert (shown["error_5xx"], shown["duplicate_webhook"]) == (1.0, 0.0)  # the option wins
            with HttpPsp(running.url, PSP_API_KEY) as psp, pytest.raises(PspNoAnswer):
                psp.status("anything")
        finally:
            running.stop()
        env = psp_env(tmp_path, receiver.url, GOPAY_PSP_SIM_FAULTS='{"duplicate_webhook": 0.5}')
        running = PspSimulator.create(env, tmp_path / "sim.log").start()
        try:
            assert httpx.get(f"{running.url}/sim/faults").json()["duplicate_webhook"] == 0.5
        finally:
            running.stop()


class TestAwaitedCalls:
    """The calls an API process awaits (aiohttp) answer exactly as the threaded ones (httpx)."""

    def test_outcomes_refusals_and_statuses_are_the_same(self, psp: HttpPsp) -> None:
        async def calls() -> None:
            try:
                order = nonce()
                charged = await psp.charge_async(order, 1_000, "USD", Card(SUCCEEDS))
                assert (charged.status, charged.fee) == ("succeeded", card_fee(1_000))
                assert await psp.charge_async(order, 1_000, "USD", Card(SUCCEEDS)) == charged
                assert await psp.status_async(order) == charged == psp.status(order)
                with pytest.raises(NonceReused):
                    await psp.charge_async(order, 1_001, "USD", Card(SUCCEEDS))
                declined = await psp.charge_async(nonce(), 1_000, "USD", Card(DECLINED))
                assert (declined.status, declined.failure_reason) == ("failed", "card_declined")
                paid = await psp.payout_async(nonce(), 900, "EUR", BankAccount(IBAN))
                assert (paid.kind, paid.status) == ("payout", "succeeded")
                with pytest.raises(PspRefused) as refused:
                    await psp.charge_async(nonce(), 1_000, "USD", Card("4242424242424241"))
                assert (refused.value.http_status, refused.value.code) == (422, "invalid_card_number")
                assert await psp.status_async(nonce("never-sent")) is None
            finally:
                await psp.aclose()

        asyncio.run(calls())

    @pytest.mark.parametrize("faults", [{"drop_response": 1.0},
                                        {"error_5xx": 1.0, "error_5xx_work_done": 1.0},
                                        {"timeout": 1.0, "timeout_work_done": 1.0,
                                         "timeout_seconds": 2.0}],
                             ids=["dropped", "5xx", "timeout"])
    def test_no_answer_is_no_answer_and_the_nonce_finds_the_work(
            self, psp: HttpPsp, simulator: PspSimulator, faults: dict[str, float]) -> None:
        order = nonce()
        set_faults(simulator, **faults)

        async def charge() -> None:
            try:
                await psp.charge_async(order, 1_500, "USD", Card(SUCCEEDS))
            finally:
                await psp.aclose()

        started = time.monotonic()
        with pytest.raises(PspNoAnswer):
            asyncio.run(charge())
        assert time.monotonic() - started < 1.9, "the adapter waited past its own timeout"
        set_faults(simulator)
        found = eventually(lambda: psp.status(order), timeout=5)
        assert (found.status, found.amount) == ("succeeded", 1_500)


class TestWebhookSignatures:
    def test_a_real_delivery_verifies_and_any_tampering_is_refused(
            self, psp: HttpPsp, receiver: WebhookReceiver) -> None:
        """A delivery's signature holds over its raw body; tampering, other secrets, age and junk fail."""
        psp.charge(order := nonce(), 1_000, "USD", Card(SUCCEEDS))
        eventually(lambda: receiver.events(order))
        with receiver.lock:
            delivery = next(item for item in receiver.accepted
                            if item.event["data"]["merchant_reference"] == order)
        timestamp = verify(PSP_WEBHOOK_SECRET, delivery.header, delivery.body)
        assert abs(timestamp - time.time()) < 10
        tampered = delivery.body.replace(b'"amount":1000', b'"amount":9000')
        assert tampered != delivery.body
        with pytest.raises(WrongSignature):
            verify(PSP_WEBHOOK_SECRET, delivery.header, tampered)
        with pytest.raises(WrongSignature):
            verify("whsec_another", delivery.header, delivery.body)
        with pytest.raises(StaleSignature):
            verify(PSP_WEBHOOK_SECRET, delivery.header, delivery.body, now=timestamp + 301)
        with pytest.raises(MalformedSignature):
            verify(PSP_WEBHOOK_SECRET, delivery.header.replace("v1=", "v2="), delivery.body)
        assert receiver.refused == [], "the simulator sent a webhook that did not verify"


class TestSettlementFiles:
    def test_the_file_holds_exactly_what_was_done(self, psp: HttpPsp, receiver: WebhookReceiver,
                                                  simulator: PspSimulator) -> None:
        """Every operation is one line with its amount, fee and status; nothing else, nothing twice."""
        days = {today()}
        results: list[PspResult] = [
            psp.charge(nonce(), 1_000 + index, "USD", Card(card))
            for index, card in enumerate([SUCCEEDS, DECLINED, NO_FUNDS, OTHER_CARD, SUCCEEDS])]
        results.append(psp.charge(nonce(), 20_000, "EUR", BankAccount(IBAN)))
        results.append(psp.payout(nonce(), 3_000, "EUR", BankAccount(IBAN)))
        results.append(psp.payout(nonce(), 3_000, "EUR", BankAccount(CLOSED_IBAN)))
        results.append(psp.refund(nonce(), results[0].psp_reference, 250))
        results.append(psp.charge(results[0].nonce, 1_000, "USD", Card(SUCCEEDS)))  # a replay
        days.add(today())
        nonces = {result.nonce for result in results}
        lines = settlement_lines(psp, nonces, days)
        expected = {(r.psp_reference, r.nonce, r.kind.value, str(r.amount), r.currency, str(r.fee),
                     "settled" if r.status == OperationStatus.SUCCEEDED else "failed") for r in results}
        assert len(lines) == len(expected) == 9
        assert {(line["psp_reference"], line["merchant_reference"], line["type"], line["amount"],
                 line["currency"], line["fee"], line["status"]) for line in lines} == expected
        settled = [line for line in lines if line["status"] == "settled"]
        assert sum(int(line["fee"]) for line in lines) == sum(r.fee for r in set(results))
        assert sum(int(line["amount"]) for line in settled if line["type"] == "charge"
                   and line["currency"] == "USD") == 1_000 + 1_003 + 1_004
        for line in lines:
            assert datetime.fromisoformat(line["settled_at"]).tzinfo is not None
        response = httpx.get(f"{simulator.url}/sim/settlements/yesterday.csv")
        assert response.status_code == 404
        assert psp.settlement_file(date(2000, 1, 1)) == SETTLEMENT_HEADER + "\n"


class TestDurability:
    def test_kill_9_keeps_the_books_and_the_pending_webhooks(self, receiver: WebhookReceiver,
                                                             tmp_path: Path) -> None:
        """After kill -9 and a restart: operations, nonces, files, due chargebacks and undelivered
        webhooks are all still there, and the webhooks go out."""
        refusing = WebhookReceiver()
        refusing.answer = 503
        env = psp_env(tmp_path, refusing.url, GOPAY_PSP_SIM_DISPUTE_DELAY="2")
        running = PspSimulator.create(env, tmp_path / "sim.log").start()
        try:
            with HttpPsp(running.url, PSP_API_KEY, timeout=2) as psp:
                charge = psp.charge(order := nonce(), 4_200, "USD", Card(DISPUTED))
                payout = psp.payout(paid := nonce(), 1_200, "EUR", BankAccount(IBAN))
                before = psp.settlement_file(today())
            eventually(lambda: refusing.attempts >= 2)  # both webhooks tried and refused
            running.kill()
            assert refusing.accepted == []
            refusing.answer = 200
            running = PspSimulator.create(env, tmp_path / "sim.log").start()
            with HttpPsp(running.url, PSP_API_KEY, timeout=2) as psp:
                assert psp.status(paid) == payout
                # The same operation, kept across the kill (disputed by now or not, as the
                # dispute's delay and the machine's load have it).
                replayed = psp.charge(order, 4_200, "USD", Card(DISPUTED))
                assert replace(replayed, disputed=charge.disputed) == charge
                events = eventually(lambda: {event["type"] for event in refusing.events(order)} | {
                    event["type"] for event in refusing.events(paid)} >= {
                    "charge.succeeded", "charge.disputed", "payout.paid"}, timeout=15)
                assert events
                after = psp.settlement_file(today())
                assert after.startswith(before) and after.count("\n") == before.count("\n") + 1
                assert "chargeback" in after.splitlines()[-1]
        finally:
            running.stop()
            refusing.close()
