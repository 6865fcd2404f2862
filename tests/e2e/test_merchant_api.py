"""The merchant API over HTTP: secret keys (shown once, hashed, scoped, revoked at once across
API processes), webhook endpoints' address rules, and fee quotes."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.merchants import api_key, merchant, qr_code
from tests.support import GoPayServer, register


@pytest.fixture(scope="module")
def server(server_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[GoPayServer]:
    """Two API processes on one socket: a revocation made through one holds in the other."""
    log = Path(tmp_path_factory.mktemp("logs")) / "serve.log"
    running = GoPayServer.create(server_env, log, workers=2).start()
    yield running
    running.stop()


def fresh(url: str, token: str, method: str, path: str, **kwargs: object) -> httpx.Response:
    """A request on a new connection, so that either API process may answer it."""
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=30) as http:
        return http.request(method, path, **kwargs)  # type: ignore[arg-type]


class TestKeys:
    def test_the_secret_is_shown_once_and_listed_by_prefix_and_last_four(self, server) -> None:  # type: ignore[no-untyped-def]
        shop = merchant(server.url)
        _, key = api_key(shop, "till server")
        secret = key["secret"]
        assert secret.startswith("sk_live_") and len(secret) == 83
        [listed] = shop.get("/v1/merchant/api-keys").json()["data"]
        assert listed == {"id": key["id"], "name": "till server", "prefix": "sk_live_",
                          "last4": secret[-4:], "created_at": listed["created_at"],
                          "revoked_at": None}
        assert secret not in shop.get("/v1/merchant/api-keys").text

    def test_a_repeated_request_finds_the_key_but_cannot_show_its_secret_again(self, server) -> None:  # type: ignore[no-untyped-def]
        shop = merchant(server.url)
        key = str(uuid.uuid4())
        first = shop.post("/v1/merchant/api-keys", {"name": "a"}, key=key)
        again = shop.post("/v1/merchant/api-keys", {"name": "a"}, key=key)
        assert (first.status_code, again.status_code) == (201, 201)
        assert first.json()["secret"].startswith("sk_live_") and again.json()["secret"] is None
        assert {**again.json(), "secret": None} == {**first.json(), "secret": None}
        assert len(shop.get("/v1/merchant/api-keys").json()["data"]) == 1

    def test_a_key_may_do_the_merchant_s_server_work_and_nothing_else(self, server, admin) -> None:  # type: ignore[no-untyped-def]
        """QR codes, payments, refunds: yes. A person's endpoints, the merchant's own settings: 401."""
        shop = merchant(server.url)
        server_side, key = api_key(shop)
        assert server_side.post("/v1/merchant/qr", {"amount": 100}).status_code == 201
        assert server_side.get("/v1/merchant/payments").status_code == 200
        assert server_side.get(f"/v1/merchant/payments/{uuid.uuid4()}").status_code == 404
        assert server_side.post(f"/v1/payments/{uuid.uuid4()}/refunds", {}).status_code == 404
        code = qr_code(shop, 100)
        refused = [("GET", "/v1/wallet"), ("GET", "/v1/wallet/transactions"), ("GET", "/v1/me"),
                   ("POST", "/v1/transfers"), ("GET", "/v1/merchant/api-keys"),
                   ("POST", "/v1/merchant/api-keys"), ("DELETE", f"/v1/merchant/api-keys/{key['id']}"),
                   ("GET", "/v1/merchant/webhook-endpoints"), ("POST", "/v1/merchant/webhook-endpoints"),
                   ("GET", f"/v1/merchant/qr/{code['id']}"), ("GET", f"/v1/merchant/qr/{code['id']}.png"),
                   ("POST", "/v1/qr-payments"), ("GET", "/v1/fees?type=transfer&amount=1"),
                   ("POST", "/v1/auth/logout"), ("GET", "/v1/admin/users")]
        for method, path in refused:
            answer = server_side.http.request(method, path, json={})
            assert answer.status_code == 401, (method, path, answer.text)
            assert answer.json()["code"] == "unauthenticated"
        assert shop.get("/v1/merchant/api-keys").json()["data"][0]["revoked_at"] is None

    def test_a_revoked_key_stops_working_at_once_in_every_process(self, server) -> None:  # type: ignore[no-untyped-def]
        shop = merchant(server.url)
        _, key = api_key(shop)
        for _ in range(12):  # both processes have read the key by now
            assert fresh(server.url, key["secret"], "GET", "/v1/merchant/payments").status_code == 200
        revoked = shop.http.delete(f"/v1/merchant/api-keys/{key['id']}")
        assert revoked.status_code == 200, revoked.text
        answers = [fresh(server.url, key["secret"], "GET", "/v1/merchant/payments")
                   for _ in range(12)]
        assert [a.status_code for a in answers] == [401] * 12
        assert shop.get("/v1/merchant/api-keys").json()["data"][0]["revoked_at"] is not None
        assert shop.get("/v1/merchant/payments").status_code == 200  # the merchant itself still may

    def test_a_forged_or_altered_secret_is_refused(self, server) -> None:  # type: ignore[no-untyped-def]
        shop = merchant(server.url)
        _, key = api_key(shop)
        secret = key["secret"]
        altered = secret[:-1] + ("a" if secret[-1] != "a" else "b")
        for token in (altered, "sk_live_" + uuid.uuid4().hex + "x" * 43, "sk_live_nope", "sk_"):
            answer = fresh(server.url, token, "GET", "/v1/merchant/payments")
            assert answer.status_code == 401 and answer.json()["code"] == "unauthenticated"

    def test_only_merchants_have_keys_and_only_their_own(self, server) -> None:  # type: ignore[no-untyped-def]
        shop, kiosk, person = merchant(server.url), merchant(server.url, "Kiosk"), register(server.url)
        _, key = api_key(shop)
        assert person.post("/v1/merchant/api-keys", {"name": "x"}).status_code == 403
        biller = register(server.url, kind="company", business_name="Water", category="biller")
        assert biller.post("/v1/merchant/api-keys", {"name": "x"}).status_code == 403
        assert kiosk.http.delete(f"/v1/merchant/api-keys/{key['id']}").status_code == 404
        assert fresh(server.url, key["secret"], "GET", "/v1/merchant/payments").status_code == 200


class TestWebhookEndpoints:
    @pytest.mark.parametrize("url", [
        "https://127.0.0.1/hooks", "https://localhost/hooks", "https://10.1.2.3/hooks",
        "https://192.168.0.10/hooks", "https://169.254.169.254/latest", "https://[::1]/hooks",
        "http://93.184.215.14/hooks", "ftp://93.184.215.14/hooks", "not a url"])
    def test_loopback_private_and_plain_http_addresses_are_refused(self, server, url: str) -> None:  # type: ignore[no-untyped-def]
        shop = merchant(server.url)
        answer = shop.post("/v1/merchant/webhook-endpoints",
                           {"url": url, "events": ["payment.succeeded"]})
        assert answer.status_code == 422, answer.text
        assert answer.json()["code"] == "validation_error"
        assert shop.get("/v1/merchant/webhook-endpoints").json()["data"] == []

    def test_a_public_https_endpoint_is_added_listed_and_removed(self, server) -> None:  # type: ignore[no-untyped-def]
        """(Nothing is ever sent there: this merchant receives no payments.)"""
        shop = merchant(server.url)
        added = shop.post("/v1/merchant/webhook-endpoints", {
            "url": "https://93.184.215.14/gopay", "events": ["refund.succeeded", "payment.succeeded"]})
        assert added.status_code == 201, added.text
        endpoint = added.json()
        assert endpoint["secret"].startswith("whsec_")
        assert endpoint["events"] == ["payment.succeeded", "refund.succeeded"]
        [listed] = shop.get("/v1/merchant/webhook-endpoints").json()["data"]
        assert listed["id"] == endpoint["id"] and "secret" not in listed
        assert shop.http.delete(f"/v1/merchant/webhook-endpoints/{endpoint['id']}").status_code == 200
        assert shop.get("/v1/merchant/webhook-endpoints").json()["data"] == []

    @pytest.mark.parametrize("events", [[], ["payment.failed"], "payment.succeeded"])
    def test_only_known_event_types_are_subscribed_to(self, server, events: object) -> None:  # type: ignore[no-untyped-def]
        answer = merchant(server.url).post("/v1/merchant/webhook-endpoints", {
            "url": "https://93.184.215.14/gopay", "events": events})
        assert answer.status_code == 422, answer.text


class TestFeeQuotes:
    def test_a_free_payment_quotes_no_fee(self, server) -> None:  # type: ignore[no-untyped-def]
        person = register(server.url)
        quote = person.get("/v1/fees", params={"type": "qr_payment", "amount": 1_000})
        assert quote.status_code == 200, quote.text
        assert quote.json() == {"type": "qr_payment", "amount": 1_000, "currency": "USD", "fee": 0,
                                "paid_by": None, "payer_pays": 1_000, "payee_receives": 1_000}

    @pytest.mark.parametrize("params", [{"type": "lottery", "amount": 1}, {"type": "transfer"},
                                        {"type": "transfer", "amount": 0},
                                        {"type": "transfer", "amount": "1.5"},
                                        {"type": "transfer", "amount": 1, "currency": "XXX"}])
    def test_a_bad_question_is_a_422(self, server, params: dict[str, object]) -> None:  # type: ignore[no-untyped-def]
        answer = register(server.url).get("/v1/fees", params=params)
        assert answer.status_code == 422 and answer.json()["code"] == "validation_error"


