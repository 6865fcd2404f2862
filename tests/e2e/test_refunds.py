"""Refunds over HTTP: a merchant gives payments back, in full or in part, never more than was paid.
And the README's merchant integration, run as it is written."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.test_topups_and_payouts import Deployment, top_up
from tests.merchants import api_key, merchant, pay, qr_code, refund
from tests.support import Client, fund, register


@pytest.fixture(scope="module")
def gopay(postgres_server: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    """GoPay with the PSP simulator beside it: some payers top up by card first."""
    deployment = Deployment(postgres_server, tmp_path_factory.mktemp("refunds"),
                            GOPAY_WEBHOOK_ALLOW_PRIVATE="true").start()
    yield deployment
    deployment.stop()


def paid(gopay: Deployment, shop: Client, amount: int = 1_000, funds: int = 5_000,
         payer: Client | None = None) -> tuple[Client, dict[str, Any]]:
    """A person who paid `shop` `amount` by QR code: the person and the payment."""
    payer = payer or register(gopay.server.url)
    if funds:
        fund(gopay.admin, payer.user["wallet_id"], funds)
    answer = pay(payer, qr_code(shop, amount, reference="order 17"))
    assert answer.status_code == 201, answer.text
    return payer, answer.json()


def problem(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == code
    return response.json()


class TestRefunding:
    def test_a_full_refund_is_a_refund_in_both_histories(self, gopay: Deployment) -> None:
        shop = merchant(gopay.server.url)
        ada, payment = paid(gopay, shop)
        answer = refund(shop, payment["id"])
        assert answer.status_code == 201, answer.text
        body = answer.json()
        assert {k: body[k] for k in ("payment_id", "status", "amount", "currency",
                                     "payer_wallet_id")} == {
            "payment_id": payment["id"], "status": "succeeded", "amount": 1_000,
            "currency": "USD", "payer_wallet_id": ada.user["wallet_id"]}
        assert (ada.balance(), shop.balance()) == (5_000, 0)
        for party, direction in ((ada, "credit"), (shop, "debit")):
            line = party.history()[0]
            assert (line["type"], line["direction"], line["amount"], line["id"],
                    line["reference"]) == ("refund", direction, 1_000, body["id"], payment["id"])
        shown = shop.get(f"/v1/merchant/payments/{payment['id']}").json()
        assert (shown["status"], shown["refunded"], shown["refundable"]) == ("refunded", 1_000, 0)

    def test_partial_refunds_then_the_rest_then_nothing(self, gopay: Deployment) -> None:
        shop = merchant(gopay.server.url)
        ada, payment = paid(gopay, shop)
        assert refund(shop, payment["id"], 300).json()["amount"] == 300
        shown = shop.get(f"/v1/merchant/payments/{payment['id']}").json()
        assert (shown["status"], shown["refundable"]) == ("partially_refunded", 700)
        over = problem(refund(shop, payment["id"], 701), 409, "invalid_state")
        assert over["refundable"] == 700
        assert refund(shop, payment["id"]).json()["amount"] == 700
        problem(refund(shop, payment["id"], 1), 409, "invalid_state")
        problem(refund(shop, payment["id"]), 409, "invalid_state")
        assert (ada.balance(), shop.balance()) == (5_000, 0)

    def test_a_merchant_server_refunds_with_its_api_key(self, gopay: Deployment) -> None:
        shop = merchant(gopay.server.url)
        server_side, _ = api_key(shop)
        ada, payment = paid(gopay, shop)
        assert refund(server_side, payment["id"], 250).status_code == 201
        assert ada.balance() == 4_250

    def test_money_from_a_card_goes_back_to_the_wallet_not_the_card(self, gopay: Deployment) -> None:
        """The payer topped up by card and paid; the refund credits the wallet, the PSP refunds nothing."""
        shop = merchant(gopay.server.url)
        person, card = gopay.customer()
        topup = top_up(person, card, 3_000).json()
        assert topup["status"] == "succeeded"
        _, payment = paid(gopay, shop, 2_000, funds=0, payer=person)
        answer = refund(shop, payment["id"])
        assert answer.status_code == 201, answer.text
        assert person.balance() == 3_000
        assert person.history()[0]["type"] == "refund"
        assert gopay.lines_for(answer.json()["id"]) == []
        assert [line["type"] for line in gopay.lines_for(topup["id"])] == ["charge"]


class TestRefusals:
    def test_only_the_payee_refunds_and_only_its_payments(self, gopay: Deployment) -> None:
        """Another merchant, a transfer's id, an unknown id, not an id: all 404; the payer
        (a person) may not refund at all (403)."""
        shop, kiosk = merchant(gopay.server.url), merchant(gopay.server.url, "Kiosk")
        fund(gopay.admin, kiosk.user["wallet_id"], 5_000)
        ada, payment = paid(gopay, shop)
        transfer = ada.post("/v1/transfers", {"recipient": shop.user["email"], "amount": 100,
                                              "currency": "USD"}).json()
        problem(refund(kiosk, payment["id"]), 404, "not_found")
        for unknown in (transfer["id"], str(uuid.uuid4()), "not-an-id"):
            problem(refund(shop, unknown), 404, "not_found")
        problem(refund(ada, payment["id"]), 403, "forbidden")
        assert ada.balance() == 3_900

    def test_a_merchant_without_the_money_or_frozen_cannot_refund(self, gopay: Deployment) -> None:
        shop = merchant(gopay.server.url)
        ada, payment = paid(gopay, shop)
        assert shop.post("/v1/transfers", {"recipient": ada.user["email"], "amount": 900,
                                           "currency": "USD"}).status_code == 201
        problem(refund(shop, payment["id"]), 422, "insufficient_funds")
        assert gopay.admin.post(f"/v1/admin/users/{shop.user['id']}/freeze").status_code == 200
        problem(refund(shop, payment["id"], 50), 423, "account_frozen")
        assert (ada.balance(), shop.balance()) == (4_900, 100)


class TestRepeats:
    def test_the_same_key_refunds_once(self, gopay: Deployment) -> None:
        shop = merchant(gopay.server.url)
        ada, payment = paid(gopay, shop)
        key = str(uuid.uuid4())
        first, again = (refund(shop, payment["id"], 400, key=key) for _ in range(2))
        assert (first.status_code, again.status_code) == (201, 201)
        assert again.json() == first.json()
        assert ada.balance() == 4_400
        _, other = paid(gopay, shop)
        problem(refund(shop, other["id"], 400, key=key), 409, "idempotency_conflict")


class TestConcurrency:
    def test_fifty_partial_refunds_at_once_never_pass_the_payment(self, gopay: Deployment) -> None:
        """50 refunds of 30 of a 1,000 payment at once: 33 succeed, 17 are refused, 990 back."""
        shop = merchant(gopay.server.url)
        ada, payment = paid(gopay, shop)
        server_side, _ = api_key(shop)
        callers = [shop, server_side]
        with ThreadPoolExecutor(max_workers=50) as pool:
            answers = list(pool.map(lambda n: refund(callers[n % 2], payment["id"], 30), range(50)))
        statuses = sorted(a.status_code for a in answers)
        assert statuses == [201] * 33 + [409] * 17
        assert (ada.balance(), shop.balance()) == (4_990, 10)
        shown = shop.get(f"/v1/merchant/payments/{payment['id']}").json()
        assert (shown["refunded"], shown["refundable"]) == (990, 10)
        assert len([line for line in ada.history() if line["type"] == "refund"]) == 33


class TestTheReadmeIntegration:
    def test_the_merchant_demo_runs_as_written(self, gopay: Deployment, tmp_path: Path) -> None:
        """QR code by API key, signed webhooks verified by the recipe, a refund: all as shown."""
        readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
        [script] = [block for block in re.findall(r"```python\n(.*?)```", readme, flags=re.DOTALL)
                    if block.startswith('"""merchant_demo.py')]
        (tmp_path / "merchant_demo.py").write_text(script)
        run = subprocess.run([sys.executable, "merchant_demo.py"], cwd=tmp_path, text=True, check=False,
                             capture_output=True, timeout=180,
                             env={**os.environ, "GOPAY_URL": gopay.server.url})
        assert run.returncode == 0, run.stdout + run.stderr
        lines = run.stdout.splitlines()
        assert lines[1].startswith("verified payment.succeeded") and lines[1].endswith(" 1250")
        assert lines[2].startswith("verified refund.succeeded")
        assert '"refunded": 250' in lines[3].replace("'", '"')
