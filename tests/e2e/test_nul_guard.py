"""The NUL character, which PostgreSQL's text cannot hold, is refused at the door (422) in any
field and any query, and the read side goes on showing everyone's writes."""

from __future__ import annotations

import uuid

import httpx
import pytest

from gopay.api.nul_guard import holds_nul
from tests.support import Client, fund, register


class TestTheBody:
    @pytest.mark.parametrize(("path", "body"), [
        ("/v1/auth/register", {"email": "nul@example.com", "password": "correct horse battery",
                               "full_name": "Ada\u0000", "phone": "+12025550199",
                               "country": "US", "kind": "person", "currency": "USD"}),
        ("/v1/transfers", {"recipient": "x@example.com", "amount": 100, "currency": "USD",
                           "note": "rent\u0000"}),
        ("/v1/support/tickets", {"subject": "help", "body": "\u0000"}),
        ("/v1/disputes", {"transaction_id": str(uuid.uuid4()), "reason": "no\u0000"}),
    ])
    def test_any_field_holding_nul_is_422(self, server, admin: Client, path: str,  # type: ignore[no-untyped-def]
                                          body: dict[str, object]) -> None:
        customer = register(server.url)
        answer = customer.post(path, body)
        assert answer.status_code == 422, answer.text
        assert answer.headers["content-type"] == "application/problem+json"
        assert "NUL" in answer.json()["detail"]

    def test_the_read_side_goes_on(self, server, admin: Client) -> None:  # type: ignore[no-untyped-def]
        """After every kind of NUL, a transfer is still shown to its sender at once."""
        alice, bob = register(server.url), register(server.url)
        fund(admin, alice.user["wallet_id"], 1_000)
        for raw in (b'{"full_name": "A\\u0000"}', b'{"full_name": "A\x00"}'):
            answer = alice.http.patch("/v1/me", content=raw,
                                      headers={"Content-Type": "application/json"})
            assert answer.status_code == 422, answer.text
        answer = httpx.get(f"{server.url}/v1/wallet/transactions?type=%00",
                           headers=alice.http.headers)
        assert answer.status_code == 422, answer.text
        sent = alice.post("/v1/transfers", {"recipient": bob.user["email"], "amount": 250,
                                            "currency": "USD", "note": "after the NULs"})
        assert sent.status_code == 201, sent.text
        assert bob.balance() == 250
        assert ("transfer", 250) in [(line["type"], line["amount"]) for line in alice.history()]


class TestTheCheck:
    @pytest.mark.parametrize(("body", "holds"), [
        (b'{"a": "\\u0000"}', True),
        (b'{"a": "x\\\\\\u0000"}', True),  # an escaped backslash, then NUL
        (b'{"a": "\\\\u0000"}', False),  # a backslash and the text "u0000"
        (b'{"a": "\x00"}', True),
        (b'{"a": "u0000"}', False),
    ])
    def test_escapes(self, body: bytes, holds: bool) -> None:
        assert holds_nul(body) is holds
