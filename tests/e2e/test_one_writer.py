"""API processes on one machine hand their payments to one writer: same answers, and its
kill -9 mid-load loses, doubles and invents nothing (a lost answer is a 503 to retry)."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest

from tests.e2e.test_concurrency_and_crash import (
    Deployment,
    TransferLoad,
    assert_answers_are_expected,
    assert_books_balance,
    assert_ledger_matches_answers,
    assert_logs_clean,
    assert_ready_soon,
    new_env,
    register_people,
    wait_for,
)
from tests.support import GoPayServer, fund, register, staff


@pytest.fixture
def gopay(postgres_server, tmp_path: Path) -> Iterator[Deployment]:  # type: ignore[no-untyped-def]
    """API processes sharing one var dir (one machine) over a fresh database."""
    with ExitStack() as stack:
        yield Deployment(new_env(postgres_server, tmp_path / "var"), tmp_path, stack)


def writer_pid(deployment: Deployment) -> int | None:
    """The pid the writer wrote into its lock file, if one leads."""
    [lock] = Path(deployment.env["GOPAY_VAR_DIR"]).glob("writer-*.lock")
    text = lock.read_text()
    return int(text) if text.strip() else None


def writer_and_other(deployment: Deployment, first: GoPayServer, second: GoPayServer
                     ) -> tuple[GoPayServer, GoPayServer]:
    pid = writer_pid(deployment)
    assert first.process and second.process
    assert pid in (first.process.pid, second.process.pid), pid
    return (first, second) if pid == first.process.pid else (second, first)


def commands_ran(url: str) -> dict[str, float]:
    """This process's payment commands by where they ran (its metrics)."""
    text = httpx.get(f"{url}/metrics", timeout=10).text
    return {ran: float(value) for ran, value in
            re.findall(r'gopay_one_writer_commands_total\{ran="(\w+)"\} (\S+)', text)}


def test_the_other_process_forwards_and_answers_as_the_writer_would(gopay: Deployment) -> None:
    """Payments, their replays, conflicts and refusals through either process: one effect."""
    writer, other = writer_and_other(gopay, gopay.serve(), gopay.serve())
    admin = staff(writer.url, gopay.env)
    alice, bob = register(writer.url), register(writer.url)
    fund(admin, alice.user["wallet_id"], 1_000)
    body = {"recipient": bob.user["email"], "amount": 300, "currency": "USD"}

    def pay(url: str, key: str, amount: int = 300) -> httpx.Response:
        return httpx.post(f"{url}/v1/transfers", json={**body, "amount": amount},
                          headers={**alice.http.headers, "Idempotency-Key": key}, timeout=30)

    paid = pay(other.url, "rent")
    assert paid.status_code == 201, paid.text
    again = pay(writer.url, "rent")
    assert (again.status_code, again.json()) == (201, paid.json())
    conflict = pay(other.url, "rent", amount=301)
    assert (conflict.status_code, conflict.json()["code"]) == (409, "idempotency_conflict")
    too_much_there, too_much_here = pay(other.url, "big-1", 5_000), pay(writer.url, "big-2", 5_000)
    assert too_much_there.status_code == 422
    assert too_much_there.headers["content-type"] == "application/problem+json"
    assert too_much_there.json() == too_much_here.json()
    assert (alice.balance(), bob.balance()) == (700, 300)
    # The other process ran none of them itself, and said so.
    assert commands_ran(other.url).get("forwarded", 0) == 3
    assert commands_ran(other.url).get("taking_turns", 0) == 0
    assert commands_ran(writer.url).get("writer", 0) == 2
    assert_logs_clean(writer, other)


@pytest.mark.slow
def test_kill_9_of_the_writer_while_the_other_forwards_to_it(gopay: Deployment) -> None:
    """Every 201 happens once; lost answers are 503 problems whose retry has one effect; the
    survivor becomes the writer, and the restarted process forwards to it."""
    first, second = gopay.serve(), gopay.serve()
    admin = staff(first.url, gopay.env)
    people = register_people(first.url, admin)
    writer, survivor = writer_and_other(gopay, first, second)
    killed: dict[str, float] = {}

    def kill_writer() -> None:
        killed["at"] = time.monotonic()
        writer.kill()
        assert survivor.process is not None
        wait_for(lambda: writer_pid(gopay) == survivor.process.pid, 10,  # type: ignore[union-attr]
                 "the survivor to become the writer")
        killed["taken_over"] = time.monotonic()
        writer.start()

    load = TransferLoad(people, [first.url, second.url], requests=900, threads=16, seed=5,
                        read_checks=0.1, duplicates=False, retry_unavailable=True)
    load.run(milestones={300: kill_writer})
    figures = load.figures()
    figures["takeover_seconds"] = round(killed["taken_over"] - killed["at"], 2)
    print("writer killed:", figures)  # noqa: T201 - the run's figures, with -s

    assert_answers_are_expected(load)
    assert figures["unavailable_answers"] > 0, "no forwarded command lost its writer"
    assert figures["takeover_seconds"] < 2
    assert writer_and_other(gopay, first, second) == (survivor, writer)
    for url in (first.url, second.url):
        assert_ledger_matches_answers(people, load, url)
        assert_ready_soon(url)
    assert_books_balance(gopay.database_url, people)
    # Restarted, the killed process forwards to the survivor.
    payer, payee = people[0], people[1]
    paid = httpx.post(f"{writer.url}/v1/transfers", timeout=30,
                      json={"recipient": payee.wallet_id, "amount": 1, "currency": "USD"},
                      headers={**payer.auth, "Idempotency-Key": "after-the-crash"})
    assert paid.status_code == 201, paid.text
    assert commands_ran(writer.url).get("forwarded", 0) >= 1
    assert_logs_clean(survivor)
