"""Failed sign-ins are throttled per account and per client address (429 with Retry-After)."""

from __future__ import annotations

import time
import uuid

import httpx
import pytest

from tests.conftest import new_database
from tests.support import PASSWORD, gopay_env, register

WINDOW_SECONDS = 3


@pytest.fixture(scope="module")
def server_env(postgres_server, tmp_path_factory) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """A server with small limits and a short window, so the test can watch one end."""
    return gopay_env(new_database(postgres_server), tmp_path_factory.mktemp("var"),
                     GOPAY_LOGIN_FAILURES_PER_ACCOUNT="3", GOPAY_LOGIN_FAILURES_PER_ADDRESS="8",
                     GOPAY_LOGIN_WINDOW_SECONDS=str(WINDOW_SECONDS))


def sign_in(url: str, email: str, password: str) -> httpx.Response:
    return httpx.post(f"{url}/v1/auth/login", json={"email": email, "password": password})


class TestPerAccount:
    def test_the_door_closes_after_the_limit_then_opens_again(self, server) -> None:
        """Three failures, then even the right password answers 429 until the window ends."""
        email = register(server.url).user["email"]
        assert [sign_in(server.url, email, "wrong password!").status_code
                for _ in range(3)] == [401, 401, 401]
        closed = sign_in(server.url, email, PASSWORD)
        assert closed.status_code == 429
        assert closed.json()["code"] == "rate_limited"
        assert 0 < int(closed.headers["Retry-After"]) <= WINDOW_SECONDS
        time.sleep(int(closed.headers["Retry-After"]) + 0.5)
        assert sign_in(server.url, email, PASSWORD).status_code == 200

    def test_unknown_emails_are_throttled_like_known_ones(self, server) -> None:
        """The answers for an e-mail nobody has look exactly like those for a real account."""
        known = register(server.url).user["email"]
        unknown = f"{uuid.uuid4().hex[:10]}@example.com"
        answers = {}
        for email in (known, unknown):
            answers[email] = [sign_in(server.url, email, "wrong password!").status_code
                              for _ in range(4)]
        assert answers[known] == answers[unknown] == [401, 401, 401, 429]
        time.sleep(WINDOW_SECONDS + 0.5)

    def test_a_correct_password_clears_the_count(self, server) -> None:
        email = register(server.url).user["email"]
        for _ in range(2):
            assert sign_in(server.url, email, "wrong password!").status_code == 401
        assert sign_in(server.url, email, PASSWORD).status_code == 200
        for _ in range(2):
            assert sign_in(server.url, email, "wrong password!").status_code == 401
        assert sign_in(server.url, email, PASSWORD).status_code == 200


class TestPerAddress:
    def test_one_address_guessing_many_accounts_is_stopped(self, server) -> None:
        """Spreading guesses over many e-mails does not escape the per-address limit."""
        time.sleep(WINDOW_SECONDS + 0.5)  # a fresh window for this address
        statuses = [sign_in(server.url, f"{uuid.uuid4().hex[:10]}@example.com",
                            "wrong password!").status_code for _ in range(9)]
        assert statuses == [401] * 8 + [429]
