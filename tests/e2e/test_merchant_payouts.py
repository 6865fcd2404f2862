"""Automated merchant payouts, with the PSP simulator as its own process: the scheduled job pays
a merchant out, a payout to a closed account gives the money back, and the job racing itself
in several processes pays a period once; merchants hear of each by webhook."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import pytest

from gopay.commands.merchant_payouts import PayOutMerchant
from gopay.processes.merchant_payouts import pay_out_due
from gopay.settings import Settings
from gopay.system import System
from tests.e2e.test_merchant_webhooks import Receiver
from tests.e2e.test_topups_and_payouts import CLOSED_IBAN, IBAN, Deployment, eventually
from tests.merchants import merchant
from tests.support import Client, fund, staff

JOB = {"GOPAY_MERCHANT_PAYOUT_INTERVAL_SECONDS": "1", "GOPAY_WEBHOOK_ALLOW_PRIVATE": "true",
       "GOPAY_WEBHOOK_FIRST_RETRY": "1", "GOPAY_WEBHOOK_MAX_RETRY_DELAY": "2",
       "GOPAY_WEBHOOK_RETRY_FOR": "10"}


@pytest.fixture(scope="module")
def gopay(postgres_server: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    deployment = Deployment(postgres_server, tmp_path_factory.mktemp("payouts"), **JOB).start()
    yield deployment
    deployment.stop()


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    running = Receiver().start()
    yield running
    running.stop()


def shop_with_schedule(gopay: Deployment, receiver: Receiver, path: str, iban: str = IBAN,
                       funds: int = 8_000, shop: Client | None = None) -> Client:
    """A merchant listening for payout webhooks at `path`, with `funds` and a daily schedule."""
    shop = shop or merchant(gopay.server.url)
    added = shop.post("/v1/merchant/webhook-endpoints",
                      {"url": receiver.url(path), "events": ["payout.paid", "payout.failed"]})
    assert added.status_code == 201, added.text
    saved = shop.post("/v1/payment-methods", {"type": "bank_account", "bank_account": {
        "iban": iban, "holder_name": "Corner Shop Ltd"}})
    assert saved.status_code == 201, saved.text
    fund(gopay.admin, shop.user["wallet_id"], funds)
    set_ = shop.http.put("/v1/merchant/payout-schedule", json={
        "frequency": "daily", "minimum": 1_000, "payment_method_id": saved.json()["id"]})
    assert set_.status_code == 200, set_.text
    assert (set_.json()["status"], set_.json()["last_period"]) == ("active", None)
    return shop


def settled_payouts(shop: Client) -> list[dict[str, Any]]:
    """The schedule's payouts once one is there and none is pending."""
    def answer() -> list[dict[str, Any]] | None:
        rows = shop.get("/v1/merchant/payouts").json()["data"]
        return rows if rows and all(row["status"] != "pending" for row in rows) else None
    return eventually(answer) or shop.get("/v1/merchant/payouts").json()["data"]


class TestTheScheduledJob:
    def test_a_merchant_is_paid_out_what_is_available(self, gopay: Deployment,
                                                      receiver: Receiver) -> None:
        """The job pays all of it to the bank account, once; the merchant gets `payout.paid`,
        the PSP's file a payout line, finance's report the merchant and period."""
        shop = shop_with_schedule(gopay, receiver, "/paid")
        [payout] = settled_payouts(shop)
        today = datetime.now(UTC).date().isoformat()
        assert (payout["status"], payout["amount"], payout["period"]) == ("succeeded", 8_000, today)
        wallet = shop.get("/v1/wallet").json()
        assert (wallet["balance"], wallet["held"]) == (0, 0)
        assert shop.history()[0]["type"] == "payout"
        [line] = gopay.lines_for(payout["id"])
        assert (line["type"], line["amount"], line["status"]) == ("payout", "8000", "settled")
        [event] = [r.event for r in eventually(lambda: receiver.at("/paid"))]
        assert (event["type"], event["data"]["id"], event["data"]["amount"]) == (
            "payout.paid", payout["id"], 8_000)
        finance = staff(gopay.server.url, gopay.server.env, "finance")
        report = finance.get("/v1/reconciliation/payouts", params={"date": today}).json()
        [listed] = [row for row in report["data"] if row["id"] == payout["id"]]
        assert (listed["merchant_id"], listed["schedule_period"], listed["status"]) == (
            shop.user["id"], today, "succeeded")
        assert shop.get("/v1/merchant/payout-schedule").json()["last_period"] == today

    def test_a_payout_to_a_closed_account_gives_the_money_back(self, gopay: Deployment,
                                                               receiver: Receiver) -> None:
        """`account_closed`: the hold is released, the merchant told with `payout.failed`."""
        shop = shop_with_schedule(gopay, receiver, "/failed", iban=CLOSED_IBAN, funds=3_000)
        [payout] = settled_payouts(shop)
        assert (payout["status"], payout["failure_reason"]) == ("failed", "account_closed")
        wallet = shop.get("/v1/wallet").json()
        assert (wallet["balance"], wallet["held"]) == (3_000, 0)
        [event] = [r.event for r in eventually(lambda: receiver.at("/failed"))]
        assert (event["type"], event["data"]["id"], event["data"]["failure_reason"]) == (
            "payout.failed", payout["id"], "account_closed")

    def test_the_job_racing_itself_in_several_processes_pays_once(
            self, gopay: Deployment, receiver: Receiver, monkeypatch: pytest.MonkeyPatch) -> None:
        """A frozen merchant is not paid; unfrozen, three more GoPay processes' jobs and the
        server's run at once, and the period is paid out exactly once."""
        shop = merchant(gopay.server.url)
        user_id = shop.user["id"]
        frozen = gopay.admin.post(f"/v1/admin/users/{user_id}/freeze")
        assert frozen.status_code == 200, frozen.text
        shop_with_schedule(gopay, receiver, "/raced", funds=6_000, shop=shop)
        for name, value in gopay.server.env.items():
            if name.startswith("GOPAY_"):
                monkeypatch.setenv(name, value)
        systems = [System.connect(Settings(), gopay.database_url) for _ in range(3)]
        try:
            assert shop.get("/v1/merchant/payouts").json()["data"] == []  # frozen: none
            unfrozen = gopay.admin.post(f"/v1/admin/users/{user_id}/unfreeze")
            assert unfrozen.status_code == 200, unfrozen.text
            assert eventually(lambda: any(
                str(row["merchant_id"]) == user_id
                for row in systems[0].read_side.payout_schedules.payable_schedules(500)))
            start = threading.Barrier(len(systems))
            today = datetime.now(UTC).date().isoformat()
            orders: list[str] = []

            def job(system: System) -> None:
                """The job's run, then its command for this merchant once more, at once."""
                start.wait()
                pay_out_due(system.commands, system.read_side)
                order = system.commands.run(PayOutMerchant.for_period(UUID(user_id), today))
                orders.append(str(order.value.id))

            threads = [threading.Thread(target=job, args=(system,)) for system in systems]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(timeout=60)
        finally:
            for system in systems:
                system.close()
        [payout] = settled_payouts(shop)
        assert orders == [payout["id"]] * len(systems)
        assert (payout["status"], payout["amount"]) == ("succeeded", 6_000)
        assert shop.get("/v1/wallet").json()["balance"] == 0
        assert len(gopay.lines_for(payout["id"])) == 1
        audit = [row["type"] for row in shop.history()]
        assert audit.count("payout") == 1

