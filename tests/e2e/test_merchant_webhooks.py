"""Merchant webhooks over real HTTP both ways: signed as the README says, retried with backoff
until marked failed, and each event sent once, also across a crash and a rebuild of the read side."""

from __future__ import annotations

import ast
import itertools
import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

import pytest

from tests.conftest import new_database
from tests.merchants import merchant, pay, qr_code, refund
from tests.support import Client, GoPayServer, fund, gopay_env, register, run_gopay, staff

T = TypeVar("T")
README = Path(__file__).resolve().parents[2] / "README.md"
# Retries quick enough for a test: about 1 s, then 2, then 4, for 6 s in all.
RETRIES = {"GOPAY_WEBHOOK_FIRST_RETRY": "1", "GOPAY_WEBHOOK_MAX_RETRY_DELAY": "4",
           "GOPAY_WEBHOOK_RETRY_FOR": "6", "GOPAY_WEBHOOK_ALLOW_PRIVATE": "true"}


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float

    @property
    def event(self) -> dict[str, Any]:
        return json.loads(self.body)


@dataclass
class Receiver:
    """A merchant's web server: /ok answers 200, /fail answers 500; it keeps every request."""

    requests: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with receiver.lock:
                    receiver.requests.append(Received(self.path, dict(self.headers), body,
                                                      time.monotonic()))
                self.send_response(500 if self.path.startswith("/fail") else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.http.serve_forever, daemon=True).start()
        return self

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.http.server_port}{path}"

    def at(self, path: str) -> list[Received]:
        with self.lock:
            return [r for r in self.requests if r.path == path]

    def stop(self) -> None:
        self.http.shutdown()


def eventually(check: Callable[[], T], timeout: float = 30.0) -> T:
    deadline = time.monotonic() + timeout
    while True:
        answer = check()
        if answer or time.monotonic() > deadline:
            return answer
        time.sleep(0.2)


def documented_verifier() -> Callable[[str, str, bytes], bool]:
    """The verification recipe exactly as README.md gives it to merchants: its function and
    the imports of the script it is in."""
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)
    [script] = [block for block in blocks if "def verify_gopay_signature" in block]
    recipe = ast.Module(body=[node for node in ast.parse(script).body if isinstance(
        node, ast.Import | ast.ImportFrom) or getattr(node, "name", "") == "verify_gopay_signature"],
        type_ignores=[])
    namespace: dict[str, Any] = {}
    exec(compile(recipe, "README.md", "exec"), namespace)  # noqa: S102 - the README's own recipe
    return namespace["verify_gopay_signature"]


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    running = Receiver().start()
    yield running
    running.stop()


@pytest.fixture(scope="module")
def server_env(postgres_server, tmp_path_factory) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return gopay_env(new_database(postgres_server), tmp_path_factory.mktemp("var"), **RETRIES)


def endpoint(shop: Client, url: str, events: tuple[str, ...] = ("payment.succeeded",
                                                                "refund.succeeded")) -> dict[str, Any]:
    added = shop.post("/v1/merchant/webhook-endpoints", {"url": url, "events": list(events)})
    assert added.status_code == 201, added.text
    return added.json()


def deliveries(shop: Client, endpoint_id: str) -> list[dict[str, Any]]:
    answer = shop.get("/v1/merchant/webhook-deliveries", params={"endpoint_id": endpoint_id})
    assert answer.status_code == 200, answer.text
    return answer.json()["data"]


def paying_customer(url: str, admin: Client) -> Client:
    person = register(url)
    fund(admin, person.user["wallet_id"], 10_000)
    return person


class TestDelivery:
    def test_payment_and_refund_events_arrive_signed_as_documented(self, server, admin,  # type: ignore[no-untyped-def]
                                                                  receiver: Receiver) -> None:
        shop = merchant(server.url)
        hook = endpoint(shop, receiver.url("/ok/signed"))
        payment = pay(paying_customer(server.url, admin), qr_code(shop, 1_500, reference="order 9")).json()
        refunded = refund(shop, payment["id"], 500).json()
        arrived = eventually(lambda: len(receiver.at("/ok/signed")) >= 2 and receiver.at("/ok/signed"))
        assert arrived, "no webhooks arrived"
        by_type = {r.event["type"]: r for r in arrived}
        assert set(by_type) == {"payment.succeeded", "refund.succeeded"} and len(arrived) == 2
        verify = documented_verifier()
        for request in arrived:
            assert request.headers["Content-Type"] == "application/json"
            assert verify(hook["secret"], request.headers["GoPay-Signature"], request.body)
            assert not verify(hook["secret"], request.headers["GoPay-Signature"], request.body + b" ")
            assert not verify("whsec_" + "0" * 64, request.headers["GoPay-Signature"], request.body)
            assert set(request.event) == {"id", "type", "created_at", "data"}
        paid_event = by_type["payment.succeeded"].event["data"]
        assert {k: paid_event[k] for k in ("id", "amount", "currency", "reference", "status")} == {
            "id": payment["id"], "amount": 1_500, "currency": "USD", "reference": "order 9",
            "status": "succeeded"}
        refund_event = by_type["refund.succeeded"].event["data"]
        assert (refund_event["id"], refund_event["payment_id"], refund_event["amount"]) == (
            refunded["id"], payment["id"], 500)
        log = eventually(lambda: all(d["status"] == "succeeded" for d in deliveries(shop, hook["id"]))
                         and deliveries(shop, hook["id"]))
        assert sorted(d["event_type"] for d in log) == ["payment.succeeded", "refund.succeeded"]
        assert all(len(d["attempts"]) == 1 and d["attempts"][0]["status_code"] == 200 for d in log)

    def test_only_subscribed_events_of_the_merchant_s_own_wallet_are_sent(self, server, admin,  # type: ignore[no-untyped-def]
                                                                         receiver: Receiver) -> None:
        shop, kiosk = merchant(server.url), merchant(server.url, "Kiosk")
        endpoint(shop, receiver.url("/ok/refunds-only"), ("refund.succeeded",))
        endpoint(kiosk, receiver.url("/ok/kiosk"))
        payment = pay(paying_customer(server.url, admin), qr_code(shop, 800)).json()
        assert refund(shop, payment["id"]).status_code == 201
        arrived = eventually(lambda: receiver.at("/ok/refunds-only"))
        time.sleep(2)  # time enough for anything wrongly sent to arrive too
        assert [r.event["type"] for r in receiver.at("/ok/refunds-only")] == ["refund.succeeded"]
        assert arrived and receiver.at("/ok/kiosk") == []

    def test_a_failing_endpoint_is_retried_with_backoff_then_marked_failed(self, server, admin,  # type: ignore[no-untyped-def]
                                                                          receiver: Receiver) -> None:
        """Each attempt carries the same event and body; the waits grow; the last is marked failed."""
        shop = merchant(server.url)
        hook = endpoint(shop, receiver.url("/fail/always"), ("payment.succeeded",))
        pay(paying_customer(server.url, admin), qr_code(shop, 700))
        failed = eventually(lambda: [d for d in deliveries(shop, hook["id"]) if d["status"] == "failed"],
                            timeout=60)
        assert failed, deliveries(shop, hook["id"])
        [delivery] = failed
        attempts = receiver.at("/fail/always")
        assert 3 <= len(attempts) == len(delivery["attempts"]) <= 6
        assert {a.event["id"] for a in attempts} == {delivery["event_id"]}
        assert {a.body for a in attempts} == {attempts[0].body}
        gaps = [later.at - earlier.at for earlier, later in itertools.pairwise(attempts)]
        assert gaps[0] < 3 <= gaps[-1], gaps
        assert all(a["status_code"] == 500 for a in delivery["attempts"])
        assert delivery["next_attempt_at"] is None
        time.sleep(2)
        assert len(receiver.at("/fail/always")) == len(attempts)  # given up: nothing more

    def test_another_merchant_s_deliveries_are_not_found(self, server, receiver: Receiver) -> None:  # type: ignore[no-untyped-def]
        shop, kiosk = merchant(server.url), merchant(server.url, "Kiosk")
        hook = endpoint(shop, receiver.url("/ok/private"))
        answer = kiosk.get("/v1/merchant/webhook-deliveries", params={"endpoint_id": hook["id"]})
        assert answer.status_code == 404 and answer.json()["code"] == "not_found"


class TestOncePerEvent:
    def test_a_crash_and_a_rebuild_of_the_read_side_send_nothing_again(
            self, postgres_server, tmp_path: Path, receiver: Receiver) -> None:  # type: ignore[no-untyped-def]
        """kill -9, `gopay projections rebuild`, a new server: each event reached the endpoint once."""
        env = gopay_env(new_database(postgres_server), tmp_path / "var", **RETRIES)
        first = GoPayServer.create(env, tmp_path / "first.log").start()
        try:
            admin = staff(first.url, env)
            shop = merchant(first.url)
            endpoint(shop, receiver.url("/ok/once"), ("payment.succeeded",))
            payer = paying_customer(first.url, admin)
            code = qr_code(shop)
            for amount in (101, 102, 103, 104, 105):
                assert pay(payer, code, amount).status_code == 201
            assert eventually(lambda: len(receiver.at("/ok/once")) >= 5)
        finally:
            first.kill()
        run_gopay("projections", "rebuild", env=env)
        second = GoPayServer.create(env, tmp_path / "second.log").start()
        try:
            token = payer.http.headers["Authorization"].split()[1]
            assert pay(Client(second.url, token), code, 106).status_code == 201
            assert eventually(lambda: len(receiver.at("/ok/once")) >= 6)
            time.sleep(3)  # anything sent again would have arrived by now
        finally:
            second.stop()
        events = [r.event for r in receiver.at("/ok/once")]
        assert sorted(e["data"]["amount"] for e in events) == [101, 102, 103, 104, 105, 106]
        assert len({e["id"] for e in events}) == 6
