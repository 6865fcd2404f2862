"""Notifications over HTTP: the inbox, read marks, preferences, the live stream and e-mail."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller

from tests.conftest import new_database
from tests.support import Client, Mailbox, free_port, fund, gopay_env, register


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


def send(admin: Client, sender: Client, recipient: Client, amount: int) -> None:
    answer = sender.post("/v1/transfers", {"recipient": recipient.user["email"], "amount": amount,
                                           "currency": "USD"})
    assert answer.status_code == 201, answer.text


def events(client: Client, last_event_id: str | None, count: int,
           timeout: float = 15) -> list[dict[str, Any]]:
    """The first `count` notifications the live stream sends (with their `id:`)."""
    headers = {"Authorization": client.http.headers["Authorization"]}
    if last_event_id:
        headers["Last-Event-ID"] = last_event_id
    found: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    with httpx.stream("GET", f"{client.http.base_url}/v1/notifications/stream", headers=headers,
                      timeout=timeout) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        event_id = None
        for line in response.iter_lines():
            if line.startswith("id: "):
                event_id = line[4:]
            elif line.startswith("data: "):
                found.append({"event_id": event_id, **json.loads(line[6:])})
                if len(found) == count:
                    break
            assert time.monotonic() < deadline
    return found


class TestInbox:
    def test_list_unread_read_and_pages(self, server, admin: Client) -> None:  # type: ignore[no-untyped-def]
        """Each transfer is one unread notice; reading one takes it off the unread list."""
        alice, bob = register(server.url), register(server.url)
        fund(admin, bob.user["wallet_id"], 10_000)
        send(admin, bob, alice, 150)
        send(admin, bob, alice, 250)
        unread = alice.get("/v1/notifications?unread=true").json()
        assert [n["type"] for n in unread["data"]] == ["transfer.received"] * 2
        assert unread["data"][0]["title"] == "You received 2.50 USD"
        assert unread["unread_count"] == 2
        first = alice.get("/v1/notifications?limit=1").json()
        second = alice.get(f"/v1/notifications?limit=1&cursor={first['next_cursor']}").json()
        assert [first["data"][0]["id"], second["data"][0]["id"]] == [n["id"] for n in unread["data"]]
        read = alice.post(f"/v1/notifications/{first['data'][0]['id']}/read")
        assert read.status_code == 200 and read.json()["read_at"]
        assert alice.get("/v1/notifications/unread-count").json() == {"unread_count": 1}
        assert bob.get("/v1/notifications?unread=true").json()["data"] == []

    def test_the_stream_needs_a_token(self, server) -> None:  # type: ignore[no-untyped-def]
        assert httpx.get(f"{server.url}/v1/notifications/stream").status_code == 401


class TestLiveStream:
    def test_delivers_live_and_resumes_from_last_event_id(self, server, admin: Client) -> None:  # type: ignore[no-untyped-def]
        """A connected app hears of a transfer; after a reconnect it gets what it missed, once."""
        alice, bob = register(server.url), register(server.url)
        fund(admin, bob.user["wallet_id"], 10_000)
        send(admin, bob, alice, 100)
        [first] = events(alice, "0", 1)
        assert first["type"] == "transfer.received" and first["data"]["amount"] == 100
        send(admin, bob, alice, 200)
        send(admin, bob, alice, 300)
        missed = events(alice, first["event_id"], 2)
        assert [e["data"]["amount"] for e in missed] == [200, 300]
        assert int(missed[0]["event_id"]) > int(first["event_id"])


class TestPreferencesAndEmail:
    def test_email_goes_once_and_preferences_are_honoured(self, server, admin: Client,  # type: ignore[no-untyped-def]
                                                          mailbox: Mailbox) -> None:
        alice, bob = register(server.url), register(server.url)
        fund(admin, bob.user["wallet_id"], 10_000)
        off = alice.http.patch("/v1/me", json={"notification_preferences": {
            "login.new_device": {"email": False}}})
        assert off.status_code == 422, off.text
        send(admin, bob, alice, 111)
        deadline = time.monotonic() + 20
        while not [m for m in mailbox.messages if m["To"] == alice.user["email"]]:
            assert time.monotonic() < deadline, "no e-mail reached the SMTP server"
            time.sleep(0.2)
        changed = alice.http.patch("/v1/me", json={"notification_preferences": {
            "transfer.received": {"email": False}}})
        assert changed.status_code == 200, changed.text
        assert changed.json()["notification_preferences"] == {"transfer.received": {"email": False}}
        send(admin, bob, alice, 222)
        assert len(alice.get("/v1/notifications").json()["data"]) == 2
        time.sleep(3)  # the outbox job runs every second
        to_alice = [m for m in mailbox.messages if m["To"] == alice.user["email"]]
        assert [m["Subject"] for m in to_alice] == ["GoPay: You received 1.11 USD"]
