"""Account recovery: a one-time token by e-mail (a real SMTP server) sets a new password."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest
from aiosmtpd.controller import Controller

from tests.conftest import new_database
from tests.support import PASSWORD, Mailbox, free_port, gopay_env, login, register

NEW_PASSWORD = "a brand new passphrase"


@pytest.fixture(scope="module")
def mailbox() -> Iterator[Mailbox]:
    box = Mailbox()
    controller = Controller(box, hostname="127.0.0.1", port=free_port())
    controller.start()
    box.port = controller.port  # type: ignore[attr-defined]
    yield box
    controller.stop()


@pytest.fixture(scope="module")
def server_env(postgres_server, tmp_path_factory, mailbox) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return gopay_env(new_database(postgres_server), tmp_path_factory.mktemp("var"),
                     GOPAY_SMTP_URL=f"smtp://127.0.0.1:{mailbox.port}")


def ask(url: str, email: str) -> httpx.Response:
    return httpx.post(f"{url}/v1/auth/recovery", json={"email": email})


def confirm(url: str, token: str, password: str = NEW_PASSWORD) -> httpx.Response:
    return httpx.post(f"{url}/v1/auth/recovery/confirm",
                      json={"token": token, "new_password": password})


class TestRecovery:
    def test_the_token_sets_a_new_password_and_ends_every_session(self, server, mailbox) -> None:  # type: ignore[no-untyped-def]
        me = register(server.url)
        email = me.user["email"]
        other_session = login(server.url, email)
        assert ask(server.url, email).status_code == 202
        token = mailbox.token_for(email)

        done = confirm(server.url, token)
        assert done.status_code == 200, done.text
        for client in (me, other_session):
            assert client.get("/v1/wallet").status_code == 401
            refreshed = httpx.post(f"{server.url}/v1/auth/refresh",
                                   json={"refresh_token": client.refresh_token})
            assert refreshed.status_code == 401
        old = httpx.post(f"{server.url}/v1/auth/login", json={"email": email, "password": PASSWORD})
        assert old.status_code == 401
        assert login(server.url, email, NEW_PASSWORD).get("/v1/wallet").status_code == 200

    def test_a_token_works_once(self, server, mailbox) -> None:  # type: ignore[no-untyped-def]
        email = register(server.url).user["email"]
        ask(server.url, email)
        token = mailbox.token_for(email)
        assert confirm(server.url, token).status_code == 200
        reused = confirm(server.url, token, "yet another passphrase")
        assert reused.status_code == 401 and reused.json()["code"] == "unauthenticated"
        assert login(server.url, email, NEW_PASSWORD)

    def test_only_the_latest_token_works(self, server, mailbox) -> None:  # type: ignore[no-untyped-def]
        email = register(server.url).user["email"]
        ask(server.url, email)
        first = mailbox.token_for(email)
        mailbox.messages.clear()
        ask(server.url, email)
        second = mailbox.token_for(email)
        assert confirm(server.url, first).status_code == 401
        assert confirm(server.url, second).status_code == 200

    def test_the_answer_never_tells_whether_the_e_mail_exists(self, server, mailbox) -> None:  # type: ignore[no-untyped-def]
        known = ask(server.url, register(server.url).user["email"])
        unknown = ask(server.url, "nobody-at-all@example.com")
        assert known.status_code == unknown.status_code == 202
        assert known.json() == unknown.json()
        time.sleep(1.5)
        assert not any(m["To"] == "nobody-at-all@example.com" for m in mailbox.messages)

    @pytest.mark.parametrize("token", ["", "nonsense", "not-a-uuid.secret",
                                       "00000000-0000-0000-0000-000000000000.secret",
                                       "x" * 500])
    def test_forged_tokens_change_nothing(self, server, token) -> None:  # type: ignore[no-untyped-def]
        response = confirm(server.url, token)
        assert response.status_code in (401, 422)
        assert response.headers["content-type"] == "application/problem+json"

    def test_a_short_new_password_is_422(self, server, mailbox) -> None:  # type: ignore[no-untyped-def]
        email = register(server.url).user["email"]
        ask(server.url, email)
        response = confirm(server.url, mailbox.token_for(email), "short")
        assert response.status_code == 422
        assert login(server.url, email, PASSWORD)  # nothing changed
