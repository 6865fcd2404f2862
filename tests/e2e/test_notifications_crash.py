"""Notifications survive kill -9 of the process that sends them: told once in the app, and by
e-mail under one Message-ID per notice, however often the sender died mid-way."""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller

from tests.conftest import new_database
from tests.e2e.test_concurrency_and_crash import (
    WORKER_RUNNING,
    projection_locks_held,
    restart,
    wait_for,
)
from tests.support import (
    Client,
    GoPayProcess,
    GoPayServer,
    Mailbox,
    free_port,
    fund,
    gopay_env,
    register,
    staff,
)

TRANSFERS = 60


def received(client: Client) -> list[dict[str, Any]]:
    """Every `transfer.received` notice in the client's in-app list, all pages."""
    found: list[dict[str, Any]] = []
    cursor = None
    while True:
        page = client.get("/v1/notifications", params={"limit": 100, **(
            {"cursor": cursor} if cursor else {})}).json()
        found += [n for n in page["data"] if n["type"] == "transfer.received"]
        cursor = page.get("next_cursor")
        if not cursor:
            return found


class TestNotificationsAfterKill9:
    def test_each_transfer_is_told_once_per_channel(self, postgres_server: Any,
                                                    tmp_path: Path) -> None:
        """Sixty transfers while the worker, which leads the notification process and the
        e-mail outbox, is killed with -9 twice (the API takes over, the worker comes back):
        each transfer is one in-app notice and one e-mail Message-ID, none missing."""
        box = Mailbox()
        smtp = Controller(box, hostname="127.0.0.1", port=free_port())
        smtp.start()
        env = gopay_env(new_database(postgres_server), tmp_path / "var", PYTHONUNBUFFERED="1",
                        GOPAY_SMTP_URL=f"smtp://127.0.0.1:{smtp.port}")
        worker = GoPayProcess(args=("worker",), env=env, log_path=tmp_path / "worker.log")
        server = GoPayServer.create(env, tmp_path / "serve.log")
        try:
            restart(worker)
            server.start()
            wait_for(lambda: projection_locks_held(env["GOPAY_DATABASE_URL"]) >= 1, 30,
                     "the worker's projection lock")
            admin = staff(server.url, env)
            alice, bob = register(server.url), register(server.url)
            fund(admin, alice.user["wallet_id"], 1_000_000)

            def kill_and_restart_twice() -> None:
                for kill in kills:
                    kill.wait(60)
                    worker.kill()
                    restart(worker)

            kills = [threading.Event(), threading.Event()]
            killer = threading.Thread(target=kill_and_restart_twice)
            killer.start()
            sent = []
            for i in range(TRANSFERS):
                answer = alice.post("/v1/transfers", {
                    "recipient": bob.user["email"], "amount": 100 + i, "currency": "USD",
                    "note": f"transfer {i}"}, key=str(uuid.uuid4()))
                assert answer.status_code == 201, answer.text
                sent.append(answer.json()["id"])
                if i in (TRANSFERS // 4, TRANSFERS // 2):
                    kills[i != TRANSFERS // 4].set()
            killer.join(120)
            assert worker.log_path.read_text().count(WORKER_RUNNING) == 3, "two kills, two restarts"

            wait_for(lambda: len(received(bob)) >= TRANSFERS, 90, "every in-app notice")
            notices = received(bob)
            told = Counter(n["data"]["transaction_id"] for n in notices)
            assert told == dict.fromkeys(sent, 1), "a transfer told twice or not at all"

            expected = {f"<outbox-{n['id']}@gopay>" for n in notices}

            def emailed() -> set[str]:
                return {str(m["Message-ID"]) for m in box.to(bob.user["email"])} & expected

            wait_for(lambda: emailed() == expected, 90, "every e-mail")
            ids = Counter(str(m["Message-ID"]) for m in box.to(bob.user["email"])
                          if str(m["Subject"]).startswith("GoPay: You received"))
            # At least once by SMTP: a sender killed between the server's "250" and marking
            # the row sent sends it again, under the same Message-ID for the mail system to
            # drop; no notice ever goes under two ids, and none is left out.
            assert set(ids) == expected
            assert sum(ids.values()) - len(ids) <= 2, f"more copies than kills: {ids}"
        finally:
            server.stop()
            worker.stop()
            smtp.stop()
