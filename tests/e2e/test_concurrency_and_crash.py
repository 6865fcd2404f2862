"""Many clients at once, and crashes in the middle of them: money is neither lost nor invented.

Every test here starts its own `gopay serve` (and `gopay worker`) over a database of its own,
drives random transfers from many threads over HTTP, keeps every request with its final answer,
and then checks the ledger against those answers: what was acknowledged happened exactly once,
what was refused did nothing, and the read side agrees with itself and with the answers.
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from tests.conftest import new_database
from tests.support import (
    Client,
    GoPayProcess,
    GoPayServer,
    fund,
    gopay_env,
    register,
    run_gopay,
    staff,
)

WALLETS = 20
FUNDING = 100_000  # minor units per wallet
TOTAL_FUNDING = WALLETS * FUNDING

# How a client's requests are mixed (the rest are new transfers), as probabilities.
REPLAY = 0.07  # same key, same body as an answered 201: the same answer again, no effect
CONFLICT = 0.04  # same key as an answered 201, another body: 409 idempotency_conflict
DUPLICATE = 0.04  # same key and body as a request still in flight: one effect between them
REFUSAL_REPLAY = 0.02  # same key and body as an answered 422 insufficient_funds

# How long a client keeps retrying one request through connection errors.
RETRY_DEADLINE = 90.0


@dataclass(frozen=True)
class Person:
    """A registered customer with a funded wallet and a valid access token."""

    index: int
    user_id: str
    wallet_id: str
    email: str
    phone: str
    token: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    @property
    def names(self) -> tuple[str, str, str]:
        """Every way a sender may name this person as a recipient."""
        return self.email, self.phone, self.wallet_id


@dataclass
class Exchange:
    """One POST /v1/transfers as a client meant it, and the final answer it got."""

    kind: str  # new, replay, conflict, duplicate or refusal_replay
    sender: int
    recipient: int
    key: str
    body: dict[str, Any]
    original: Exchange | None = None
    status: int = 0
    payload: dict[str, Any] = field(default_factory=dict)
    answered_by: str = ""
    acknowledged_at: float = 0.0  # time.monotonic() when the final answer arrived
    transport_errors: int = 0  # connection failures retried with the same key and body
    in_progress_answers: int = 0  # 409 request_in_progress answers retried
    unavailable_answers: int = 0  # 503 answers retried (only when the load allows them)

    @property
    def code(self) -> str | None:
        return self.payload.get("code")


class TransferLoad:
    """Client threads sending random transfers among `people`, keeping every exchange.

    Each thread has its own HTTP connection pool and sends as whichever person it picks, to
    whichever of `urls` it picks. Requests that fail with a connection error are sent again
    with the same Idempotency-Key and body (as mobile clients do); so is 409 request_in_progress.
    After a fraction `read_checks` of the 201s the sender immediately reads its own
    transfer, wallet and history (on any server) and every read must show the transfer.
    """

    def __init__(self, people: list[Person], urls: list[str], *, requests: int, threads: int,
                 seed: int, read_checks: float, duplicates: bool = True,
                 retry_unavailable: bool = False) -> None:
        self.people = people
        self.urls = urls
        self.requests = requests
        self.threads = threads
        self.seed = seed
        self.read_checks = read_checks
        self.duplicates = duplicates
        self.retry_unavailable = retry_unavailable  # a 503 problem is retried with the same key
        self.exchanges: list[Exchange] = []
        self.failures: list[str] = []  # read-your-writes violations and crashed client threads
        self.read_checks_done = 0
        self.elapsed = 0.0
        self._lock = threading.Lock()
        self._issued = 0
        self._created: list[Exchange] = []
        self._refused: list[Exchange] = []
        self._in_flight: dict[str, Exchange] = {}

    @property
    def completed(self) -> int:
        return len(self.exchanges)

    def run(self, milestones: dict[int, Callable[[], None]] | None = None) -> TransferLoad:
        """Send every request; run each milestone's action once that many have been answered."""
        clients = [threading.Thread(target=self._client, args=(n,), name=f"client-{n}")
                   for n in range(self.threads)]
        started = time.monotonic()
        for thread in clients:
            thread.start()
        for threshold, action in sorted((milestones or {}).items()):
            while self.completed < threshold and any(t.is_alive() for t in clients):
                time.sleep(0.005)
            action()
        for thread in clients:
            thread.join(timeout=600)
            assert not thread.is_alive(), "a client thread is stuck"
        self.elapsed = time.monotonic() - started
        return self

    # One client thread

    def _client(self, number: int) -> None:
        rng = random.Random(self.seed * 1000 + number)
        with httpx.Client(timeout=30) as http:
            while True:
                exchange = self._next_request(rng)
                if exchange is None:
                    return
                try:
                    self._send(http, exchange, rng)
                    if exchange.status == 201 and rng.random() < self.read_checks:
                        self._check_read_your_writes(http, exchange, rng)
                except Exception as error:  # noqa: BLE001 - a client thread must not die silently
                    with self._lock:
                        self.failures.append(f"{exchange.kind} {exchange.key}: {error!r}")
                        self._in_flight.pop(exchange.key, None)
                    return

    def _next_request(self, rng: random.Random) -> Exchange | None:
        with self._lock:
            if self._issued >= self.requests:
                return None
            self._issued += 1
            roll = rng.random()
            if roll < REPLAY and self._created:
                original = rng.choice(self._created)
                return Exchange("replay", original.sender, original.recipient, original.key,
                                dict(original.body), original)
            roll -= REPLAY
            if roll < CONFLICT and self._created:
                original = rng.choice(self._created)
                other_body = {**original.body, "amount": original.body["amount"] + 1}
                return Exchange("conflict", original.sender, original.recipient, original.key,
                                other_body, original)
            roll -= CONFLICT
            if roll < DUPLICATE and self._in_flight and self.duplicates:
                original = rng.choice(list(self._in_flight.values()))
                return Exchange("duplicate", original.sender, original.recipient, original.key,
                                dict(original.body), original)
            roll -= DUPLICATE
            if roll < REFUSAL_REPLAY and self._refused:
                original = rng.choice(self._refused)
                return Exchange("refusal_replay", original.sender, original.recipient,
                                original.key, dict(original.body), original)
            sender, recipient = rng.sample(range(len(self.people)), 2)
            # Mostly affordable amounts; some larger than any balance is likely to be.
            amount = rng.randint(1, 15000) if rng.random() < 0.85 else rng.randint(FUNDING // 2, FUNDING * 3)
            body: dict[str, Any] = {"recipient": rng.choice(self.people[recipient].names),
                                    "amount": amount, "currency": "USD"}
            if rng.random() < 0.3:
                body["note"] = f"load {self._issued}"
            exchange = Exchange("new", sender, recipient, f"load-{uuid.uuid4()}", body)
            self._in_flight[exchange.key] = exchange
            return exchange

    def _send(self, http: httpx.Client, exchange: Exchange, rng: random.Random) -> None:
        person = self.people[exchange.sender]
        headers = {**person.auth, "Idempotency-Key": exchange.key}
        deadline = time.monotonic() + RETRY_DEADLINE
        while True:
            url = rng.choice(self.urls)
            try:
                response = http.post(f"{url}/v1/transfers", json=exchange.body, headers=headers)
            except httpx.TransportError:
                exchange.transport_errors += 1
                if time.monotonic() > deadline:
                    raise
                time.sleep(rng.uniform(0.05, 0.15))
                continue
            payload = response.json()
            if response.status_code == 503 and self.retry_unavailable:
                assert response.headers["content-type"] == "application/problem+json", response.text
                assert response.headers["retry-after"] == "1", response.headers
                exchange.unavailable_answers += 1
                if time.monotonic() > deadline:
                    raise AssertionError(f"{exchange.key} stayed unavailable")
                time.sleep(rng.uniform(0.05, 0.15))
                continue
            if response.status_code == 409 and payload.get("code") == "request_in_progress":
                exchange.in_progress_answers += 1
                if time.monotonic() > deadline:
                    raise AssertionError(f"{exchange.key} stayed in progress")
                time.sleep(rng.uniform(0.02, 0.05))
                continue
            break
        exchange.status, exchange.payload = response.status_code, payload
        exchange.answered_by, exchange.acknowledged_at = url, time.monotonic()
        with self._lock:
            self.exchanges.append(exchange)
            if exchange.kind == "new":
                self._in_flight.pop(exchange.key, None)
                if exchange.status == 201:
                    self._created.append(exchange)
                elif exchange.code == "insufficient_funds":
                    self._refused.append(exchange)

    def _check_read_your_writes(self, http: httpx.Client, exchange: Exchange,
                                rng: random.Random) -> None:
        """Right after its 201, the sender's own reads, on any server, show the transfer."""
        person = self.people[exchange.sender]
        transfer_id = exchange.payload["id"]

        def read(path: str, **params: Any) -> httpx.Response:
            deadline = time.monotonic() + RETRY_DEADLINE
            while True:
                try:
                    return http.get(f"{rng.choice(self.urls)}{path}", params=params,
                                    headers=person.auth)
                except httpx.TransportError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(rng.uniform(0.05, 0.15))

        problems = []
        shown = read(f"/v1/transfers/{transfer_id}")
        if shown.status_code != 200 or shown.json() != exchange.payload:
            problems.append(f"GET /v1/transfers/{transfer_id}: {shown.status_code} {shown.text}")
        balance = read("/v1/wallet").json()["balance"]
        # The history read after the balance holds every row the balance could reflect.
        rows_since: list[dict[str, Any]] = []
        cursor = None
        while True:
            page = read("/v1/wallet/transactions", limit=100,
                        **({"cursor": cursor} if cursor else {})).json()
            for row in page["data"]:
                rows_since.append(row)
                if row["id"] == transfer_id:
                    break
            else:
                cursor = page["next_cursor"]
                if cursor is None:
                    problems.append(f"the sender's history lacks the debit of {transfer_id}")
                    break
                continue
            break
        debit = rows_since[-1] if rows_since and rows_since[-1]["id"] == transfer_id else None
        if debit is not None and debit["direction"] != "debit":
            problems.append(f"the sender's history shows {transfer_id} as {debit['direction']}")
        if debit is not None and balance not in {row["balance_after"] for row in rows_since}:
            problems.append(f"GET /v1/wallet showed {balance}, from before the debit of "
                            f"{transfer_id} (balance_after {debit['balance_after']})")
        with self._lock:
            self.read_checks_done += 1
            self.failures += [f"read-your-writes: {problem}" for problem in problems]

    # What happened

    def created(self) -> dict[str, Exchange]:
        """Every transfer the clients were told about (201), by id, first answer kept."""
        transfers: dict[str, Exchange] = {}
        for exchange in self.exchanges:
            if exchange.status == 201:
                transfers.setdefault(exchange.payload["id"], exchange)
        return transfers

    def figures(self) -> dict[str, Any]:
        outcomes = Counter(f"{e.kind}:{e.status}{'/' + e.code if e.code else ''}"
                           for e in self.exchanges)
        return {
            "requests": self.completed,
            "seconds": round(self.elapsed, 1),
            "requests_per_second": round(self.completed / self.elapsed, 1) if self.elapsed else 0,
            "transfers": len(self.created()),
            "outcomes": dict(sorted(outcomes.items())),
            "read_checks": self.read_checks_done,
            "transport_errors": sum(e.transport_errors for e in self.exchanges),
            "in_progress_answers": sum(e.in_progress_answers for e in self.exchanges),
            "unavailable_answers": sum(e.unavailable_answers for e in self.exchanges),
        }


# Checking the answers and the ledger

EXPECTED_ANSWERS = {
    # Which (status, code) each kind of request may get.
    "new": {(201, None), (422, "insufficient_funds")},
    "duplicate": {(201, None), (422, "insufficient_funds")},
    "replay": {(201, None)},
    "conflict": {(409, "idempotency_conflict")},
    # The contract says a refusal replays as the same refusal; GoPay does not store refusals
    # (see test_a_refused_key_replays_its_refusal), so a later retry may still succeed here.
    "refusal_replay": {(201, None), (422, "insufficient_funds")},
}


def assert_answers_are_expected(load: TransferLoad) -> None:
    """No 5xx, only the statuses each kind of request may get, and replays that repeat."""
    assert not load.failures, "\n".join(load.failures[:20])
    assert load.completed == load.requests
    server_errors = [e for e in load.exchanges if e.status >= 500]
    assert not server_errors, [(e.status, e.payload) for e in server_errors[:5]]
    unexpected = [(e.kind, e.status, e.payload) for e in load.exchanges
                  if (e.status, e.code) not in EXPECTED_ANSWERS[e.kind]]
    assert not unexpected, unexpected[:10]
    by_id: dict[str, dict[str, Any]] = {}
    for exchange in load.exchanges:
        if exchange.status != 201:
            continue
        transfer = exchange.payload
        assert transfer["status"] == "succeeded"
        assert transfer["amount"] == exchange.body["amount"]
        assert transfer["sender_wallet_id"] == load.people[exchange.sender].wallet_id
        assert transfer["recipient_wallet_id"] == load.people[exchange.recipient].wallet_id
        # Every answer about one transfer id is the very same answer.
        assert by_id.setdefault(transfer["id"], transfer) == transfer, exchange.key
        original = exchange.original
        if exchange.kind in ("replay", "duplicate") and original and original.status == 201:
            assert transfer == original.payload, exchange.key
    # One key, one transfer id: a replay never became a second transfer.
    ids_by_key: dict[tuple[int, str], set[str]] = {}
    for exchange in load.exchanges:
        if exchange.status == 201:
            key = (exchange.sender, exchange.key)
            ids_by_key.setdefault(key, set()).add(exchange.payload["id"])
    assert all(len(ids) == 1 for ids in ids_by_key.values())


def assert_ledger_matches_answers(people: list[Person], load: TransferLoad, url: str) -> None:
    """Balances and histories are exactly the funding plus the acknowledged transfers."""
    transfers = load.created()
    expected = [FUNDING] * len(people)
    debits: list[Counter[str]] = [Counter() for _ in people]
    credited: list[Counter[str]] = [Counter() for _ in people]
    for transfer_id, exchange in transfers.items():
        amount = exchange.payload["amount"]
        expected[exchange.sender] -= amount
        expected[exchange.recipient] += amount
        debits[exchange.sender][transfer_id] += 1
        credited[exchange.recipient][transfer_id] += 1

    balances = []
    with httpx.Client(base_url=url, timeout=30) as http:
        for person in people:
            wallet = http.get("/v1/wallet", headers=person.auth).json()
            history = read_history(http, person)
            balances.append(wallet["balance"])
            label = f"wallet {person.index}"
            assert wallet["held"] == 0 and wallet["available"] == wallet["balance"], label
            assert wallet["balance"] == expected[person.index], label
            assert history[0]["balance_after"] == wallet["balance"], label
            running = 0
            for row in reversed(history):  # oldest to newest
                change = row["amount"] if row["direction"] == "credit" else -row["amount"]
                assert row["amount"] > 0, (label, row)
                assert row["balance_after"] == running + change, (label, row)
                assert row["balance_after"] >= 0, (label, row)
                running = row["balance_after"]
            funding = [(r["type"], r["direction"], r["amount"]) for r in history
                       if r["type"] == "adjustment"]
            assert funding == [("adjustment", "credit", FUNDING)], label
            # Exactly the acknowledged transfers, each once: none lost, none doubled, none extra.
            assert Counter(r["id"] for r in history
                           if r["type"] == "transfer" and r["direction"] == "debit") \
                == debits[person.index], label
            assert Counter(r["id"] for r in history
                           if r["type"] == "transfer" and r["direction"] == "credit") \
                == credited[person.index], label
    assert sum(balances) == TOTAL_FUNDING


def assert_books_balance(database_url: str, people: list[Person]) -> None:
    """The double-entry ledger sums to zero, and each wallet's account equals its balance."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        totals = dict(conn.execute("SELECT currency, SUM(balance)::bigint FROM ledger_accounts "
                                   "GROUP BY currency").fetchall())
        accounts = dict(conn.execute("SELECT account_id::text, balance FROM ledger_accounts "
                                     "WHERE currency = 'USD'").fetchall())
        wallets = dict(conn.execute("SELECT wallet_id::text, balance FROM wallets").fetchall())
    assert totals == {"USD": 0}
    assert {p.wallet_id: accounts[p.wallet_id] for p in people} \
        == {p.wallet_id: wallets[p.wallet_id] for p in people}
    system_accounts = [balance for account, balance in accounts.items() if account not in wallets]
    assert system_accounts == [-TOTAL_FUNDING]  # the adjustments account paid every funding


def read_history(http: httpx.Client, person: Person) -> list[dict[str, Any]]:
    """The person's whole wallet history, newest first."""
    rows: list[dict[str, Any]] = []
    cursor = None
    while True:
        params = {"limit": 200, **({"cursor": cursor} if cursor else {})}
        response = http.get("/v1/wallet/transactions", params=params, headers=person.auth)
        assert response.status_code == 200, response.text
        rows += response.json()["data"]
        cursor = response.json()["next_cursor"]
        if cursor is None:
            return rows


def assert_ready_soon(url: str, within: float = 5.0) -> None:
    """/health/ready answers 200 within `within` seconds: the projections have caught up."""
    deadline = time.monotonic() + within
    while True:
        response = httpx.get(f"{url}/health/ready", timeout=5)
        if response.status_code == 200 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert response.status_code == 200, response.text


def assert_logs_clean(*processes: GoPayProcess) -> None:
    """No process logged an unexpected error (each one would have been a 500)."""
    for process in processes:
        text = process.log_path.read_text(errors="replace")
        assert "unexpected error" not in text, text[-5000:]


# Starting GoPay and its customers


def register_people(url: str, admin: Client) -> list[Person]:
    """WALLETS customers, each funded with FUNDING by an admin adjustment."""

    def one(index: int) -> Person:
        client = register(url)
        fund(admin, client.user["wallet_id"], FUNDING)
        me = client.get("/v1/me").json()
        token = client.http.headers["Authorization"].removeprefix("Bearer ")
        client.http.close()
        return Person(index, me["id"], me["wallet_id"], me["email"], me["phone"], token)

    with ThreadPoolExecutor(4) as pool:
        return list(pool.map(one, range(WALLETS)))


class Deployment:
    """GoPay processes over one fresh database, each stopped when the test ends."""

    def __init__(self, env: dict[str, str], log_dir: Path, stack: ExitStack) -> None:
        self.env = env
        self.database_url = env["GOPAY_DATABASE_URL"]
        self.log_dir = log_dir
        self._stack = stack

    def serve(self) -> GoPayServer:
        server = GoPayServer.create(self.env, self.log_dir / f"serve-{uuid.uuid4().hex[:6]}.log")
        self._stack.callback(server.stop)
        return server.start()

    def worker(self, *, wait: bool = True) -> GoPayProcess:
        worker = GoPayProcess(args=("worker",), env=self.env,
                              log_path=self.log_dir / f"worker-{uuid.uuid4().hex[:6]}.log")
        self._stack.callback(worker.stop)
        return restart(worker, wait=wait)


WORKER_RUNNING = "GoPay worker: projections running"


def restart(worker: GoPayProcess, *, wait: bool = True) -> GoPayProcess:
    """Start `gopay worker` (again) and, if `wait`, until it says its projections run."""
    log = worker.log_path
    runs_before = log.read_text().count(WORKER_RUNNING) if log.exists() else 0
    worker.start()
    if wait:
        wait_for(lambda: worker_started(worker, runs_before), 60, "gopay worker to start")
    return worker


def worker_started(worker: GoPayProcess, runs_before: int = 0) -> bool:
    """True once the worker has said it runs; fails if it exited instead."""
    log = worker.log_path.read_text(errors="replace")
    if worker.process is None or worker.process.poll() is not None:
        pytest.fail(f"gopay worker exited:\n{log[-3000:]}")
    return log.count(WORKER_RUNNING) > runs_before


@pytest.fixture
def gopay(postgres_server, tmp_path: Path) -> Iterator[Deployment]:  # type: ignore[no-untyped-def]
    with ExitStack() as stack:
        yield Deployment(new_env(postgres_server, tmp_path / "var"), tmp_path, stack)


def new_env(postgres_server, var_dir: Path) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """GoPay's environment over a fresh database (unbuffered, so logs show at once)."""
    return gopay_env(new_database(postgres_server), var_dir, PYTHONUNBUFFERED="1")


def projection_locks_held(database_url: str) -> int:
    """How many projection advisory locks some process holds in this database."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted "
            "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
        ).fetchone()
    return row[0] if row else 0


def wait_for(condition: Callable[[], bool], within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


# The tests


@pytest.mark.slow
class TestConcurrentTransfers:
    def test_one_server_keeps_the_books_exact(self, gopay: Deployment) -> None:
        """2,000 concurrent random transfers on one server: exact balances, histories, answers."""
        server = gopay.serve()
        admin = staff(server.url, gopay.env)
        people = register_people(server.url, admin)

        load = TransferLoad(people, [server.url], requests=2_000, threads=32, seed=1,
                            read_checks=0.25).run()
        print("one server:", load.figures())  # noqa: T201 - the run's figures, with -s

        assert_answers_are_expected(load)
        assert_ledger_matches_answers(people, load, server.url)
        assert_books_balance(gopay.database_url, people)
        assert_ready_soon(server.url)
        assert_logs_clean(server)

    def test_two_servers_on_one_database_keep_the_books_exact(self, gopay: Deployment) -> None:
        """The same load over two API processes: exact books, and reads show writes on either."""
        first, second = gopay.serve(), gopay.serve()
        admin = staff(first.url, gopay.env)
        people = register_people(second.url, admin)

        # Every 201 is followed by reads on either server, so a stale read side shows up.
        load = TransferLoad(people, [first.url, second.url], requests=2_000, threads=32,
                            seed=2, read_checks=0.35).run()
        print("two servers:", load.figures())  # noqa: T201 - the run's figures, with -s

        assert_answers_are_expected(load)
        assert {e.answered_by for e in load.exchanges} == {first.url, second.url}
        assert load.read_checks_done > 300
        for url in (first.url, second.url):
            assert_ledger_matches_answers(people, load, url)
            assert_ready_soon(url)
        assert_books_balance(gopay.database_url, people)
        assert_logs_clean(first, second)


@pytest.mark.slow
class TestCrash:
    def test_kill_9_mid_load_loses_no_acknowledged_transfer(self, gopay: Deployment) -> None:
        """kill -9 of worker, then API and worker, mid-load: every 201 survives, exactly once."""
        worker = gopay.worker()
        # The worker runs the projections; the API only stands by for them.
        wait_for(lambda: projection_locks_held(gopay.database_url) == 1, 30, "the worker's lock")
        server = gopay.serve()
        admin = staff(server.url, gopay.env)
        people = register_people(server.url, admin)
        killed_at: dict[str, float] = {}

        def kill_worker() -> None:
            """The API's stand-by runner must take the projections over."""
            killed_at["worker"] = time.monotonic()
            worker.kill()
            restart(worker, wait=False)

        def kill_everything() -> None:
            killed_at["all"] = time.monotonic()
            server.kill()
            worker.kill()
            # One after the other: started at the same moment they may die on startup, which
            # test_serve_and_workers_started_together_all_run shows on its own.
            restart(worker)
            server.start()
            killed_at["back"] = time.monotonic()

        load = TransferLoad(people, [server.url], requests=1_000, threads=16, seed=3,
                            read_checks=0.25, duplicates=False)
        load.run(milestones={250: kill_worker, 600: kill_everything})
        figures = load.figures()
        figures["api_down_seconds"] = round(killed_at["back"] - killed_at["all"], 1)
        figures["retried_then_201"] = sum(1 for e in load.exchanges
                                          if e.transport_errors and e.status == 201)
        print("crash:", figures)  # noqa: T201 - the run's figures, with -s

        assert_answers_are_expected(load)
        acknowledged_before = [e for e in load.exchanges
                               if e.status == 201 and e.acknowledged_at < killed_at["all"]]
        assert len(acknowledged_before) > 250
        assert figures["transport_errors"] > 0, "the crash interrupted no request"
        # Every acknowledged transfer is there for its sender, before or after the crash.
        with httpx.Client(base_url=server.url, timeout=30) as http:
            for transfer_id, exchange in load.created().items():
                shown = http.get(f"/v1/transfers/{transfer_id}",
                                 headers=people[exchange.sender].auth)
                assert shown.status_code == 200, (transfer_id, shown.text)
                assert shown.json() == exchange.payload
        assert_ledger_matches_answers(people, load, server.url)
        assert_books_balance(gopay.database_url, people)
        assert_ready_soon(server.url)

        # The read models equal a rebuild from the events: no drift from the crashes.
        def snapshot() -> list[tuple[dict[str, Any], list[dict[str, Any]]]]:
            with httpx.Client(base_url=server.url, timeout=30) as http:
                return [(http.get("/v1/wallet", headers=p.auth).json(), read_history(http, p))
                        for p in people]

        before = snapshot()
        server.stop()
        worker.stop()
        run_gopay("projections", "rebuild", env=gopay.env)
        server.start()
        assert snapshot() == before
        assert_logs_clean(server, worker)


class TestIdempotentRefusals:
    def test_a_refused_key_replays_its_refusal(self, gopay: Deployment) -> None:
        """Same key and body after a 422 insufficient_funds gets that 422 again, moving nothing."""
        server = gopay.serve()
        admin = staff(server.url, gopay.env)
        alice, bob = register(server.url), register(server.url)
        fund(admin, alice.user["wallet_id"], 100)
        body = {"recipient": bob.user["email"], "amount": 150, "currency": "USD"}
        first = alice.post("/v1/transfers", body, key="pay-150")
        assert (first.status_code, first.json()["code"]) == (422, "insufficient_funds")

        fund(admin, alice.user["wallet_id"], 100)  # now the same request could succeed
        again = alice.post("/v1/transfers", body, key="pay-150")

        assert (again.status_code, again.json()) == (first.status_code, first.json())
        assert (alice.balance(), bob.balance()) == (200, 0)


@pytest.mark.slow
class TestStartup:
    def test_serve_and_workers_started_together_all_run(
            self, postgres_server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
        """`gopay serve` and `gopay worker`s started at one moment (as after a reboot) all run."""
        for attempt in range(6):  # a start-up meets the race about half the time: try a few
            with ExitStack() as stack:
                deployment = Deployment(new_env(postgres_server, tmp_path / f"var-{attempt}"),
                                        tmp_path, stack)
                workers = [deployment.worker(wait=False) for _ in range(3)]
                try:
                    deployment.serve()
                except RuntimeError as error:  # it exited: its log is the message
                    pytest.fail(f"attempt {attempt}: {error}"[-3000:])
                for worker in workers:
                    wait_for(lambda w=worker: worker_started(w), 60, "gopay worker to start")
