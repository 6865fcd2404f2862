"""P2P transfers over HTTP: money moves exactly once, or not at all."""

from __future__ import annotations

import concurrent.futures
import uuid

from tests.support import Client, fund, register


class TestTransfer:
    def test_moves_money_and_both_parties_read_it(self, server, admin: Client) -> None:
        """A 201 transfer debits the sender, credits the recipient, and both histories show it."""
        alice, bob = register(server.url), register(server.url)
        fund(admin, alice.user["wallet_id"], 10_000)

        response = alice.post("/v1/transfers", {"recipient": bob.user["email"], "amount": 1_050,
                                                "currency": "USD", "note": "lunch"})

        assert response.status_code == 201, response.text
        transfer = response.json()
        assert transfer["status"] == "succeeded"
        assert (transfer["amount"], transfer["currency"]) == (1_050, "USD")
        assert alice.balance() == 8_950
        assert bob.balance() == 1_050
        [credit] = bob.history()
        assert (credit["type"], credit["direction"], credit["amount"]) == ("transfer", "credit", 1_050)
        assert credit["balance_after"] == 1_050 and credit["reference"] == "lunch"
        debit = alice.history()[0]
        assert (debit["direction"], debit["balance_after"], debit["id"]) == ("debit", 8_950, transfer["id"])

    def test_recipient_by_phone_and_by_wallet_id(self, server, admin: Client) -> None:
        """The recipient may be named by E.164 phone number or by wallet id."""
        alice, bob = register(server.url), register(server.url)
        fund(admin, alice.user["wallet_id"], 500)
        for recipient in (bob.user["phone"], bob.user["wallet_id"]):
            response = alice.post("/v1/transfers", {"recipient": recipient, "amount": 100,
                                                    "currency": "USD"})
            assert response.status_code == 201, response.text
        assert bob.balance() == 200

    def test_either_party_reads_it_and_nobody_else(self, server, admin: Client) -> None:
        """GET /v1/transfers/{id} answers the sender and recipient, and 404 to anyone else."""
        alice, bob, eve = (register(server.url) for _ in range(3))
        fund(admin, alice.user["wallet_id"], 500)
        transfer = alice.post("/v1/transfers", {"recipient": bob.user["email"], "amount": 100,
                                                "currency": "USD"}).json()
        for party in (alice, bob):
            response = party.get(f"/v1/transfers/{transfer['id']}")
            assert response.status_code == 200
            assert response.json() == transfer
        assert eve.get(f"/v1/transfers/{transfer['id']}").status_code == 404
        assert eve.get(f"/v1/transfers/{uuid.uuid4()}").status_code == 404
        assert eve.get("/v1/transfers/not-an-id").status_code == 404


class TestRefusals:
    def test_insufficient_funds_moves_nothing(self, server, admin: Client) -> None:
        alice, bob = register(server.url), register(server.url)
        fund(admin, alice.user["wallet_id"], 100)
        response = alice.post("/v1/transfers", {"recipient": bob.user["email"], "amount": 101,
                                                "currency": "USD"})
        assert response.status_code == 422
        assert response.headers["content-type"].startswith("application/problem+json")
        assert response.json()["code"] == "insufficient_funds"
        assert (alice.balance(), bob.balance()) == (100, 0)

    def test_bad_amounts_are_422_validation_errors(self, server, admin: Client) -> None:
        """Floats, strings, zero, negatives and absurd sizes never reach the ledger."""
        alice, bob = register(server.url), register(server.url)
        fund(admin, alice.user["wallet_id"], 100)
        for amount in (1.5, "100", 0, -5, 10**20, None, True, [100]):
            response = alice.post("/v1/transfers", {"recipient": bob.user["email"],
                                                    "amount": amount, "currency": "USD"})
            assert response.status_code == 422, (amount, response.text)
            assert response.json()["code"] == "validation_error"
        assert (alice.balance(), bob.balance()) == (100, 0)

    def test_self_transfer_and_unknown_recipient(self, server, admin: Client) -> None:
        alice = register(server.url)
        fund(admin, alice.user["wallet_id"], 100)
        to_self = alice.post("/v1/transfers", {"recipient": alice.user["email"], "amount": 1,
                                               "currency": "USD"})
        assert (to_self.status_code, to_self.json()["code"]) == (422, "validation_error")
        unknown = alice.post("/v1/transfers", {"recipient": "nobody@example.com", "amount": 1,
                                               "currency": "USD"})
        assert (unknown.status_code, unknown.json()["code"]) == (404, "not_found")
        assert alice.balance() == 100

    def test_currency_mismatch(self, server, admin: Client) -> None:
        """A USD wallet cannot send EUR, nor receive it."""
        alice, bob = register(server.url), register(server.url, currency="EUR")
        fund(admin, alice.user["wallet_id"], 100)
        for currency in ("EUR", "USD"):
            response = alice.post("/v1/transfers", {"recipient": bob.user["email"], "amount": 1,
                                                    "currency": currency})
            assert (response.status_code, response.json()["code"]) == (422, "currency_mismatch")
        assert alice.balance() == 100

    def test_malformed_bodies_are_problems_not_crashes(self, server) -> None:
        alice = register(server.url)
        for raw in (b"", b"{", b"null", b"[]", b'{"amount": {}}', "\u00ff".encode("latin-1")):
            response = alice.http.post("/v1/transfers", content=raw,
                                       headers={"content-type": "application/json"})
            assert 400 <= response.status_code < 500, raw
            assert response.headers["content-type"] == "application/problem+json"
            assert response.json()["status"] == response.status_code

    def test_frozen_wallet_cannot_send_but_can_receive(self, server, admin: Client) -> None:
        alice, bob = register(server.url), register(server.url)
        fund(admin, alice.user["wallet_id"], 300)
        fund(admin, bob.user["wallet_id"], 300)
        frozen = admin.post(f"/v1/admin/users/{alice.user['id']}/freeze")
        assert frozen.status_code == 200 and frozen.json()["frozen"] is True

        sent = alice.post("/v1/transfers", {"recipient": bob.user["email"], "amount": 1,
                                            "currency": "USD"})
        assert (sent.status_code, sent.json()["code"]) == (423, "account_frozen")
        received = bob.post("/v1/transfers", {"recipient": alice.user["email"], "amount": 50,
                                              "currency": "USD"})
        assert received.status_code == 201
        assert admin.post(f"/v1/admin/users/{alice.user['id']}/unfreeze").json()["frozen"] is False
        assert alice.post("/v1/transfers", {"recipient": bob.user["email"], "amount": 1,
                                            "currency": "USD"}).status_code == 201
        assert (alice.balance(), bob.balance()) == (349, 251)


class TestIdempotency:
    def test_same_key_same_body_answers_again_without_moving_twice(self, server, admin) -> None:
        alice, bob = register(server.url), register(server.url)
        fund(admin, alice.user["wallet_id"], 1_000)
        body = {"recipient": bob.user["email"], "amount": 100, "currency": "USD"}
        first = alice.post("/v1/transfers", body, key="pay-rent")
        again = alice.post("/v1/transfers", body, key="pay-rent")
        assert first.status_code == again.status_code == 201
        assert first.json() == again.json()
        assert (alice.balance(), bob.balance()) == (900, 100)

    def test_same_key_other_body_is_a_conflict(self, server, admin) -> None:
        alice, bob = register(server.url), register(server.url)
        fund(admin, alice.user["wallet_id"], 1_000)
        alice.post("/v1/transfers", {"recipient": bob.user["email"], "amount": 100,
                                     "currency": "USD"}, key="k")
        other = alice.post("/v1/transfers", {"recipient": bob.user["email"], "amount": 200,
                                             "currency": "USD"}, key="k")
        assert (other.status_code, other.json()["code"]) == (409, "idempotency_conflict")
        assert alice.balance() == 900

    def test_keys_are_scoped_to_the_caller(self, server, admin) -> None:
        alice, bob, carol = (register(server.url) for _ in range(3))
        for sender in (alice, bob):
            fund(admin, sender.user["wallet_id"], 1_000)
            response = sender.post("/v1/transfers", {"recipient": carol.user["email"],
                                                     "amount": 100, "currency": "USD"}, key="same")
            assert response.status_code == 201
        assert carol.balance() == 200

    def test_concurrent_duplicates_have_exactly_one_effect(self, server, admin) -> None:
        alice, bob = register(server.url), register(server.url)
        fund(admin, alice.user["wallet_id"], 1_000)
        body = {"recipient": bob.user["email"], "amount": 100, "currency": "USD"}
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda _: alice.post("/v1/transfers", body, key="dup"),
                                    range(16)))
        statuses = {answer.status_code for answer in answers}
        assert statuses <= {201, 409}, [a.text for a in answers]
        created = [a.json() for a in answers if a.status_code == 201]
        assert created and all(c == created[0] for c in created)
        assert (alice.balance(), bob.balance()) == (900, 100)

    def test_key_longer_than_255_is_refused(self, server, admin) -> None:
        alice, bob = register(server.url), register(server.url)
        fund(admin, alice.user["wallet_id"], 1_000)
        response = alice.post("/v1/transfers", {"recipient": bob.user["email"], "amount": 1,
                                                "currency": "USD"}, key="k" * 256)
        assert response.status_code == 422
        assert alice.balance() == 1_000
