"""Payment methods over HTTP: saved once, shown masked, yours alone, and the number kept nowhere plain."""

from __future__ import annotations

import concurrent.futures
import json
import re
import uuid
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest
from stdnum import luhn

from tests.support import Client, register

NUMBER, CVC = "4000056655665556", "7391"
YEAR = datetime.now(UTC).year + 3


def card_body(number: str = NUMBER, cvc: str = CVC, **card: Any) -> dict[str, Any]:
    return {"type": "card", "card": {"number": number, "exp_month": 12, "exp_year": YEAR,
                                     "cvc": cvc, "holder_name": "Ada Lovelace", **card}}


def other_card() -> str:
    """A fresh Luhn-valid 16-digit Visa number."""
    payload = "4" + f"{uuid.uuid4().int % 10**14:014d}"
    return payload + luhn.calc_check_digit(payload)


BANK_ACCOUNT = {"type": "bank_account",
                "bank_account": {"iban": "GB82 WEST 1234 5698 7654 32", "holder_name": "Ada Lovelace"}}
DIGITAL_WALLET = {"type": "digital_wallet",
                  "digital_wallet": {"provider": "paypal", "account": "ada.lovelace@example.com"}}
CRYPTO = {"type": "crypto",
          "crypto": {"network": "btc", "address": "bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq"}}


def add(client: Client, body: dict[str, Any], key: str | None = None) -> dict[str, Any]:
    response = client.post("/v1/payment-methods", body, key=key)
    assert response.status_code == 201, response.text
    return response.json()


def listed(client: Client, **params: Any) -> dict[str, Any]:
    response = client.get("/v1/payment-methods", params=params)
    assert response.status_code == 200, response.text
    return response.json()


class TestSaving:
    def test_a_card_answers_brand_last_four_and_expiry_only(self, server) -> None:
        """201 with the masked card; neither the number nor the CVC is in the answer."""
        alice = register(server.url)
        response = alice.post("/v1/payment-methods", card_body(number="4000 0566 5566 5556"))
        assert response.status_code == 201, response.text
        method = response.json()
        assert method["type"] == "card"
        assert method["card"] == {"brand": "visa", "last4": "5556", "exp_month": 12,
                                  "exp_year": YEAR}
        assert set(method) == {"id", "type", "card", "created_at"}
        assert NUMBER not in response.text and CVC not in response.text
        assert alice.get(f"/v1/payment-methods/{method['id']}").json() == method

    @pytest.mark.parametrize(("body", "shown"), [
        (BANK_ACCOUNT, {"bank_account": {"last4": "5432", "country": "GB",
                                         "holder_name": "Ada Lovelace"}}),
        (DIGITAL_WALLET, {"digital_wallet": {"provider": "paypal",
                                             "account": "a***@example.com"}}),
        (CRYPTO, {"crypto": {"network": "btc", "address": "bc1qar...5mdq"}}),
        ({"type": "crypto", "crypto": {"network": "usdc",
                                       "address": "0x52908400098527886E0F7030069857D2E4169EE7"}},
         {"crypto": {"network": "usdc", "address": "0x5290...9ee7"}}),
    ])
    def test_other_kinds_answer_their_masked_details(self, server, body, shown) -> None:
        alice = register(server.url)
        method = add(alice, body)
        assert {k: v for k, v in method.items() if k not in ("id", "created_at")} == {
            "type": body["type"], **shown}
        assert alice.get(f"/v1/payment-methods/{method['id']}").json() == method

    def test_every_kind_of_customer_may_save_one(self, server) -> None:
        for kind, extra in (("company", {"business_name": "Shop", "category": "merchant"}),
                            ("agent", {})):
            assert add(register(server.url, kind=kind, **extra), card_body())["type"] == "card"


class TestRefusals:
    @pytest.mark.parametrize("body", [
        card_body(number="4000056655665557"),  # Luhn
        card_body(number="400005665566"),  # 12 digits
        card_body(number="40000566556655560000"),  # 20 digits
        card_body(number="4000-0566-5566-555x"),
        card_body(number="\uff14" * 16),  # full-width digits
        card_body(number=4000056655665556),  # a number, not a string
        card_body(exp_month=13), card_body(exp_month=0), card_body(exp_month="12"),
        card_body(exp_year=2001), card_body(exp_month=1, exp_year=datetime.now(UTC).year - 1),
        card_body(exp_year=10**20), card_body(exp_year=YEAR + 100),
        card_body(cvc="12"), card_body(cvc="12345"), card_body(cvc="12a"), card_body(cvc=123),
        card_body(holder_name=""),
        {"type": "card", "card": {"number": NUMBER, "exp_month": 12, "exp_year": YEAR}},
        {"type": "bank_account", "bank_account": {"iban": "GB82 WEST 1234 5698 7654 33",
                                                  "holder_name": "Ada"}},  # mod-97
        {"type": "bank_account", "bank_account": {"iban": "GB29 WEST 1234 5698 7654 3",
                                                  "holder_name": "Ada"}},  # length
        {"type": "bank_account", "bank_account": {"iban": "XX82WEST12345698765432",
                                                  "holder_name": "Ada"}},
        {"type": "bank_account", "bank_account": {"iban": "x" * 65, "holder_name": "Ada"}},
        {"type": "digital_wallet", "digital_wallet": {"provider": "myspace", "account": "a@b.co"}},
        {"type": "digital_wallet", "digital_wallet": {"provider": "paypal", "account": "a b"}},
        {"type": "crypto", "crypto": {"network": "btc",
                                      "address": "1BvBMSEYstWetqTFn5Au4m4GFg7xJaNVN3"}},
        {"type": "crypto", "crypto": {"network": "eth", "address": "0x1234"}},
        {"type": "crypto", "crypto": {"network": "doge", "address": "D" * 34}},
        {"type": "cash", "cash": {}},
        {"type": "card"},
        {"type": "card", "bank_account": BANK_ACCOUNT["bank_account"]},
        {**card_body(), "cvc": CVC},  # a field where none belongs
        {}, [], None, "card",
    ])
    def test_bad_input_is_a_422_problem_that_echoes_nothing(self, server, body) -> None:
        alice = register(server.url)
        response = alice.post("/v1/payment-methods", body)
        assert response.status_code == 422, (body, response.text)
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["code"] == "validation_error"
        assert NUMBER not in response.text and f'"{CVC}"' not in response.text
        assert listed(alice)["data"] == []

    def test_malformed_bodies_are_problems_not_crashes(self, server) -> None:
        alice = register(server.url)
        for raw in (b"", b"{", b'{"type": "card", "card": {"number": {}}}', b"\xff"):
            response = alice.http.post("/v1/payment-methods", content=raw,
                                       headers={"content-type": "application/json"})
            assert 400 <= response.status_code < 500, raw
            assert response.headers["content-type"] == "application/problem+json"


class TestOneCopyOfEachCard:
    def test_the_same_card_again_is_409_naming_the_saved_one(self, server) -> None:
        """However it is typed, a saved card is recognised by its fingerprint."""
        alice = register(server.url)
        first = add(alice, card_body())
        for body in (card_body(), card_body(number="4000-0566-5566-5556", exp_month=1,
                                            cvc="123")):
            again = alice.post("/v1/payment-methods", body)
            assert (again.status_code, again.json()["code"]) == (409, "payment_method_exists")
            assert again.json()["payment_method_id"] == first["id"]
        assert [m["id"] for m in listed(alice)["data"]] == [first["id"]]

    def test_the_same_card_sent_at_once_is_saved_once(self, server) -> None:
        """Without keys, concurrent copies of one card race: exactly one wins."""
        alice = register(server.url)
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(
                lambda _: alice.post("/v1/payment-methods", card_body()), range(8)))
        assert sorted(a.status_code for a in answers) == [201] + [409] * 7
        [method] = listed(alice)["data"]
        assert all(a.json().get("payment_method_id") == method["id"]
                   for a in answers if a.status_code == 409)

    def test_other_customers_may_save_the_same_card(self, server) -> None:
        alice, bob = register(server.url), register(server.url)
        assert add(alice, card_body())["id"] != add(bob, card_body())["id"]

    def test_a_removed_card_may_be_saved_again(self, server) -> None:
        alice = register(server.url)
        first = add(alice, card_body())
        assert alice.http.delete(f"/v1/payment-methods/{first['id']}").status_code == 200
        assert add(alice, card_body())["id"] != first["id"]


class TestIdempotency:
    def test_same_key_same_body_answers_again_without_a_second_method(self, server) -> None:
        alice = register(server.url)
        first = alice.post("/v1/payment-methods", card_body(), key="save-card")
        again = alice.post("/v1/payment-methods", card_body(), key="save-card")
        assert first.status_code == again.status_code == 201
        assert first.json() == again.json()
        assert len(listed(alice)["data"]) == 1

    def test_same_key_other_body_is_a_conflict(self, server) -> None:
        alice = register(server.url)
        add(alice, card_body(), key="k")
        for body in (card_body(number=other_card()), card_body(exp_month=11), BANK_ACCOUNT):
            other = alice.post("/v1/payment-methods", body, key="k")
            assert (other.status_code, other.json()["code"]) == (409, "idempotency_conflict")
        assert len(listed(alice)["data"]) == 1

    def test_concurrent_duplicates_save_one_method(self, server) -> None:
        """Sixteen copies of one keyed request at once: one method, every 201 the same."""
        alice = register(server.url)
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(
                lambda _: alice.post("/v1/payment-methods", card_body(), key="dup"), range(16)))
        assert {a.status_code for a in answers} <= {201, 409}, [a.text for a in answers]
        created = [a.json() for a in answers if a.status_code == 201]
        assert created and all(c == created[0] for c in created)
        assert [m["id"] for m in listed(alice)["data"]] == [created[0]["id"]]

    def test_keys_are_scoped_to_the_caller(self, server) -> None:
        alice, bob = register(server.url), register(server.url)
        assert add(alice, card_body(), key="same")["id"] != add(bob, card_body(), key="same")["id"]


class TestOwnership:
    def test_another_customers_method_does_not_exist(self, server) -> None:
        """GET and DELETE of someone else's method answer 404, and leave it alone."""
        alice, mallory = register(server.url), register(server.url)
        method = add(alice, card_body())
        for path in (f"/v1/payment-methods/{method['id']}", f"/v1/payment-methods/{uuid.uuid4()}",
                     "/v1/payment-methods/not-an-id"):
            for response in (mallory.get(path), mallory.http.delete(path)):
                assert (response.status_code, response.json()["code"]) == (404, "not_found")
        assert listed(mallory)["data"] == []
        assert alice.get(f"/v1/payment-methods/{method['id']}").status_code == 200

    def test_staff_have_no_payment_methods(self, server, admin: Client) -> None:
        response = admin.post("/v1/payment-methods", card_body())
        assert (response.status_code, response.json()["code"]) == (403, "forbidden")


class TestRemoving:
    def test_a_removed_method_is_gone_from_reads_and_lists(self, server) -> None:
        alice = register(server.url)
        kept, removed = add(alice, BANK_ACCOUNT), add(alice, card_body())
        response = alice.http.delete(f"/v1/payment-methods/{removed['id']}")
        assert response.status_code == 200
        assert response.json() == {"id": removed["id"], "deleted": True}
        assert [m["id"] for m in listed(alice)["data"]] == [kept["id"]]
        assert alice.get(f"/v1/payment-methods/{removed['id']}").status_code == 404
        assert alice.http.delete(f"/v1/payment-methods/{removed['id']}").status_code == 404


class TestListing:
    def test_pages_newest_first(self, server) -> None:
        alice = register(server.url)
        ids = [add(alice, card_body(number=other_card()))["id"] for _ in range(5)]
        pages, cursor = [], None
        while True:
            page = listed(alice, limit=2, **({"cursor": cursor} if cursor else {}))
            pages.append([m["id"] for m in page["data"]])
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert pages == [ids[4:2:-1], ids[2:0:-1], ids[:1]]
        assert listed(alice)["next_cursor"] is None

    @pytest.mark.parametrize("params", [{"limit": 0}, {"limit": 201}, {"limit": "x"},
                                        {"cursor": "nope"}, {"cursor": str(uuid.uuid4())}])
    def test_bad_limits_and_cursors_are_422(self, server, params) -> None:
        alice = register(server.url)
        add(alice, CRYPTO)
        response = alice.get("/v1/payment-methods", params=params)
        assert (response.status_code, response.json()["code"]) == (422, "validation_error")


class TestNothingPlain:
    def test_no_card_number_or_cvc_in_the_database_or_the_log(self, server, server_env) -> None:
        """A raw scan of the event table, the vault table and the server log finds no card
        number (nor any Luhn-valid 13-19 digit run), no IBAN, no CVC and no holder name."""
        alice = register(server.url)
        add(alice, card_body())
        add(alice, BANK_ACCOUNT)
        alice.post("/v1/payment-methods", card_body(number="4000056655665557"))  # refused
        iban = BANK_ACCOUNT["bank_account"]["iban"].replace(" ", "")

        with psycopg.connect(server_env["GOPAY_DATABASE_URL"]) as conn:
            states = [bytes(r[0]) for r in conn.execute("SELECT state FROM gopay_events")]
            vault = conn.execute("SELECT payment_method_id::text, fingerprint, owner_id::text, "
                                 "sealed FROM vault_secrets").fetchall()
        assert vault and states
        for state in states:
            assert NUMBER.encode() not in state and iban.encode() not in state
            assert b"Ada Lovelace" not in state  # the holder's name is sealed
            assert not _luhn_valid_runs(state.decode())
            keys, values = _keys_and_values(json.loads(state))
            assert CVC not in values and "cvc" not in keys
        for row in vault:
            text = " ".join(row)
            assert NUMBER not in text and iban not in text and not _luhn_valid_runs(text)
            assert CVC not in row and row[3].startswith("sealed:v1:")
        log = server.log_path.read_text()
        assert NUMBER not in log and "4000056655665557" not in log and f'"{CVC}"' not in log


def _luhn_valid_runs(text: str) -> list[str]:
    """Luhn-valid runs of 13-19 digits standing alone: inside a longer hex digest (a session's
    refresh digest, say) such a run is chance, not a card number."""
    return [run for run in re.findall(r"(?<![0-9A-Za-z])[0-9]{13,19}(?![0-9A-Za-z])", text)
            if luhn.is_valid(run)]


def _keys_and_values(tree: Any) -> tuple[set[str], list[Any]]:
    """Every key and every value in a decoded JSON document, however deep."""
    keys: set[str] = set()
    values: list[Any] = []
    items = tree.items() if isinstance(tree, dict) else enumerate(tree) if isinstance(tree, list) else ()
    for key, value in items:
        keys.add(str(key))
        values.append(value)
        inner_keys, inner_values = _keys_and_values(value)
        keys |= inner_keys
        values += inner_values
    return keys, values
