"""QR payments over HTTP: merchants make codes, people pay them, the merchant sees it at once."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pyotp
import pytest

from tests.conftest import new_database
from tests.merchants import api_key, merchant, pay, qr_code
from tests.support import Client, fund, gopay_env, register

PER_PAYMENT = 60_000  # the unverified tier's limit here; 2FA step-up from 50,000 (the default)
LIMITS = {"per_payment": PER_PAYMENT, "per_day": 10**15, "max_balance": 10**15}
# Merchants pay 1.5 % (at least 1) of what they receive.
FEES = {"qr_payment": {"bps": 150, "minimum": 1, "paid_by": "payee"}}


@pytest.fixture(scope="module")
def server_env(postgres_server, tmp_path_factory) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return gopay_env(new_database(postgres_server), tmp_path_factory.mktemp("var"),
                     GOPAY_KYC_LIMITS=json.dumps({"unverified": LIMITS, "verified": LIMITS}),
                     GOPAY_FEES=json.dumps(FEES))


def funded_person(url: str, admin: Client, amount: int = 100_000) -> Client:
    person = register(url)
    fund(admin, person.user["wallet_id"], amount)
    return person


def fee_of(person: Client, amount: int) -> int:
    quote = person.get("/v1/fees", params={"type": "qr_payment", "amount": amount, "currency": "USD"})
    assert quote.status_code == 200, quote.text
    return int(quote.json()["fee"])


def problem(response: Any, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == code


class TestPayingACode:
    def test_a_person_pays_a_fixed_code_and_the_merchant_sees_it_at_once(self, server, admin) -> None:  # type: ignore[no-untyped-def]
        """201 with the payment; both histories show a qr_payment; the merchant lists it."""
        shop, ada = merchant(server.url), funded_person(server.url, admin)
        code = qr_code(shop, 2_000, reference="order 17")
        assert (code["amount"], code["status"], code["currency"]) == (2_000, "open", "USD")
        paid = pay(ada, code)
        assert paid.status_code == 201, paid.text
        payment = paid.json()
        fee = fee_of(ada, 2_000)
        assert fee == 30
        assert {k: payment[k] for k in ("status", "amount", "currency", "merchant_wallet_id",
                                        "reference", "fee")} == {
            "status": "succeeded", "amount": 2_000, "currency": "USD",
            "merchant_wallet_id": shop.user["wallet_id"], "reference": "order 17", "fee": fee}
        assert ada.balance() == 98_000 and shop.balance() == 2_000 - fee
        [received, fee_line] = shop.history()[:2][::-1] if shop.history()[0]["type"] == "fee" \
            else shop.history()[:2]
        assert (received["type"], received["direction"], received["id"]) == (
            "qr_payment", "credit", payment["id"])
        assert (fee_line["type"], fee_line["amount"]) == ("fee", fee)
        spent = ada.history()[0]
        assert (spent["type"], spent["direction"], spent["amount"], spent["reference"]) == (
            "qr_payment", "debit", 2_000, "order 17")
        [listed] = shop.get("/v1/merchant/payments").json()["data"]
        assert {k: listed[k] for k in ("id", "amount", "fee", "net", "refunded", "status")} == {
            "id": payment["id"], "amount": 2_000, "fee": fee, "net": 2_000 - fee, "refunded": 0,
            "status": "succeeded"}
        assert shop.get(f"/v1/merchant/qr/{code['id']}").json()["status"] == "paid"
        for party in (ada, shop):
            assert party.get(f"/v1/qr-payments/{payment['id']}").json()["id"] == payment["id"]

    def test_an_open_code_is_paid_by_many_for_what_each_enters(self, server, admin) -> None:  # type: ignore[no-untyped-def]
        shop = merchant(server.url)
        code = qr_code(shop, reference="till 1")
        assert code["amount"] is None and code["expires_at"] is None
        payers = [funded_person(server.url, admin) for _ in range(3)]
        for payer, amount in zip(payers, (100, 250, 1_000), strict=True):
            assert pay(payer, code, amount).status_code == 201
        problem(pay(payers[0], code), 422, "validation_error")  # no amount entered
        listed = shop.get("/v1/merchant/payments").json()["data"]
        assert sorted(p["amount"] for p in listed) == [100, 250, 1_000]

    def test_the_png_scans_back_to_the_signed_payload(self, server, tmp_path: Path) -> None:
        """The image is a real QR code: zbar (Debian's zbar-tools) reads the payload out of it."""
        shop = merchant(server.url)
        code = qr_code(shop, 1_500, reference="order 18")
        image = shop.get(f"/v1/merchant/qr/{code['id']}.png")
        assert image.status_code == 200 and image.headers["content-type"] == "image/png"
        path = tmp_path / "qr.png"
        path.write_bytes(image.content)
        scanned = subprocess.run([_zbarimg(), "--raw", "-q", str(path)], capture_output=True,
                                 text=True, check=True, timeout=60)
        assert scanned.stdout.strip() == code["qr_payload"]

    def test_a_merchant_server_makes_codes_with_its_api_key(self, server, admin) -> None:  # type: ignore[no-untyped-def]
        shop = merchant(server.url)
        server_side, _ = api_key(shop)
        code = qr_code(server_side, 700, expires_in=120)
        assert pay(funded_person(server.url, admin), code).status_code == 201
        assert server_side.get("/v1/merchant/payments").json()["data"][0]["amount"] == 700


class TestRefusals:
    def test_an_altered_code_is_refused(self, server, admin) -> None:  # type: ignore[no-untyped-def]
        shop, ada = merchant(server.url), funded_person(server.url, admin)
        code = qr_code(shop, 2_000)
        payload = code["qr_payload"]
        position = len("GOPAY1.") + 5
        altered = payload[:position] + ("B" if payload[position] != "B" else "C") + payload[position + 1:]
        problem(pay(ada, {**code, "qr_payload": altered}), 422, "qr_invalid")
        problem(pay(ada, {**code, "qr_payload": "https://evil.example/pay"}), 422, "qr_invalid")
        assert ada.balance() == 100_000

    def test_an_expired_code_is_refused(self, server, admin) -> None:  # type: ignore[no-untyped-def]
        shop, ada = merchant(server.url), funded_person(server.url, admin)
        code = qr_code(shop, 500, expires_in=1)
        time.sleep(2.1)
        problem(pay(ada, code), 422, "qr_expired")
        assert shop.get(f"/v1/merchant/qr/{code['id']}").json()["status"] == "expired"
        assert ada.balance() == 100_000

    def test_a_fixed_code_already_paid_is_refused(self, server, admin) -> None:  # type: ignore[no-untyped-def]
        shop = merchant(server.url)
        code = qr_code(shop, 500)
        first = pay(funded_person(server.url, admin), code)
        again = pay(funded_person(server.url, admin), code)
        problem(again, 409, "invalid_state")
        assert again.json()["payment_id"] == first.json()["id"]

    def test_insufficient_funds_frozen_and_limits(self, server, admin) -> None:  # type: ignore[no-untyped-def]
        """Each refusal is the transfer's refusal, and moves nothing."""
        shop = merchant(server.url)
        poor = funded_person(server.url, admin, 100)
        problem(pay(poor, qr_code(shop, 101)), 422, "insufficient_funds")
        rich = funded_person(server.url, admin, 200_000)
        problem(pay(rich, qr_code(shop), PER_PAYMENT + 1), 422, "limit_exceeded")
        frozen = funded_person(server.url, admin)
        assert admin.post(f"/v1/admin/users/{frozen.user['id']}/freeze").status_code == 200
        problem(pay(frozen, qr_code(shop, 100)), 423, "account_frozen")
        assert (poor.balance(), rich.balance(), frozen.balance(), shop.balance()) == (
            100, 200_000, 100_000, 0)

    def test_only_people_pay_codes(self, server, admin) -> None:  # type: ignore[no-untyped-def]
        shop, other = merchant(server.url), merchant(server.url, "Kiosk")
        fund(admin, other.user["wallet_id"], 1_000)
        problem(pay(other, qr_code(shop, 100)), 403, "forbidden")

    def test_a_large_payment_needs_a_fresh_second_factor(self, server, admin) -> None:  # type: ignore[no-untyped-def]
        """From the step-up amount (50,000) up, as for transfers; the code is spent once."""
        shop, ada = merchant(server.url), funded_person(server.url, admin)
        secret = ada.post("/v1/auth/2fa/setup").json()["secret"]
        assert ada.post("/v1/auth/2fa/enable", {"otp": pyotp.TOTP(secret).now()}).status_code == 200
        code = qr_code(shop, 55_000)
        problem(pay(ada, code), 401, "otp_required")
        paid = pay(ada, code, **{"GoPay-OTP": pyotp.TOTP(secret).at(time.time() + 30)})
        assert paid.status_code == 201, paid.text


class TestRepeats:
    def test_the_same_key_answers_the_same_payment_once(self, server, admin) -> None:  # type: ignore[no-untyped-def]
        shop, ada = merchant(server.url), funded_person(server.url, admin)
        code = qr_code(shop)
        key = str(uuid.uuid4())
        first, again = pay(ada, code, 300, key=key), pay(ada, code, 300, key=key)
        assert (first.status_code, again.status_code) == (201, 201)
        assert again.json() == first.json()
        problem(pay(ada, code, 301, key=key), 409, "idempotency_conflict")
        assert ada.balance() == 99_700

    def test_the_same_key_makes_one_code(self, server) -> None:  # type: ignore[no-untyped-def]
        shop = merchant(server.url)
        key = str(uuid.uuid4())
        first = shop.post("/v1/merchant/qr", {"amount": 900}, key=key)
        again = shop.post("/v1/merchant/qr", {"amount": 900}, key=key)
        assert (first.status_code, again.status_code) == (201, 201)
        assert again.json() == first.json()


@pytest.fixture(scope="module")
def crowd(server, admin) -> list[Client]:  # type: ignore[no-untyped-def]
    """Sixteen funded people, registered side by side (each registration hashes a password)."""
    with ThreadPoolExecutor(max_workers=8) as pool:
        return list(pool.map(lambda _: funded_person(server.url, admin, 100_000), range(16)))


class TestConcurrency:
    def test_fifty_payments_of_one_fixed_code_pay_it_once(self, server, crowd: list[Client]) -> None:  # type: ignore[no-untyped-def]
        """Fifty requests at once from sixteen people: one 201, forty-nine 409, one charge."""
        shop = merchant(server.url)
        code = qr_code(shop, 5_000)
        before = sum(p.balance() for p in crowd)
        with ThreadPoolExecutor(max_workers=50) as pool:
            answers = list(pool.map(lambda n: pay(crowd[n % len(crowd)], code), range(50)))
        assert sorted(a.status_code for a in answers) == [201] + [409] * 49
        assert sum(p.balance() for p in crowd) == before - 5_000
        assert shop.balance() == 5_000 - fee_of(shop, 5_000)
        assert len(shop.get("/v1/merchant/payments").json()["data"]) == 1

    def test_a_hot_merchant_wallet_paid_by_64_clients_at_once_loses_nothing(  # type: ignore[no-untyped-def]
            self, server, crowd: list[Client]) -> None:
        """64 clients (four per person), 5 payments each at once to one till's open code:
        every 201 is there once, and the money adds up on both sides."""
        shop = merchant(server.url)
        code = qr_code(shop, reference="till")
        before = sum(p.balance() for p in crowd)

        def pay_five(n: int) -> list[int]:
            payer = Client(server.url, crowd[n % len(crowd)].http.headers["Authorization"].split()[1])
            return [pay(payer, code, 100 + n + i).status_code for i in range(5)]

        with ThreadPoolExecutor(max_workers=64) as pool:
            statuses = [s for answers in pool.map(pay_five, range(64)) for s in answers]
        assert statuses == [201] * 320
        amounts = [100 + n + i for n in range(64) for i in range(5)]
        received = _all_payments(shop)
        assert sorted(p["amount"] for p in received) == sorted(amounts)
        assert all(p["fee"] == _merchant_fee(p["amount"]) for p in received)
        assert shop.balance() == sum(p["net"] for p in received) == sum(
            a - _merchant_fee(a) for a in amounts)
        assert sum(p.balance() for p in crowd) == before - sum(amounts)


def _merchant_fee(amount: int) -> int:
    """FEES' rule: 1.5 %, rounded half up, at least 1."""
    return max(1, (amount * 150 + 5_000) // 10_000)


def _all_payments(owner: Client) -> list[dict[str, Any]]:
    rows, cursor = [], None
    while True:
        page = owner.get("/v1/merchant/payments",
                         params={"limit": 200, **({"cursor": cursor} if cursor else {})}).json()
        rows += page["data"]
        cursor = page["next_cursor"]
        if cursor is None:
            return rows


def _zbarimg() -> str:
    """zbar's command-line scanner, installed from Debian when missing (the test fails without)."""
    found = shutil.which("zbarimg")
    if found is None:
        subprocess.run(["apt-get", "install", "-y", "-q", "zbar-tools"], check=True,
                       capture_output=True, timeout=600)
        found = shutil.which("zbarimg")
    assert found, "zbarimg (Debian's zbar-tools) could not be installed"
    return found
