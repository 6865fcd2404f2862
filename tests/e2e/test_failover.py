"""Failover under load: the primary's PostgreSQL dies mid-load and GoPay carries on by itself.

GoPay (`gopay serve` and `gopay worker`) runs on a three-node Patroni cluster with quorum
commit, through a multi-host URL. Client threads send transfers, each with its own
Idempotency-Key, and retry a failed or timed-out request with the same key and body. The
primary's PostgreSQL is killed with SIGKILL mid-load; Patroni promotes a synchronous
standby, the same GoPay processes find it, and every acknowledged transfer is in the
ledger exactly once.
"""

from __future__ import annotations

import random
import shutil
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from eventsourcing.utils import get_topic

from gopay.aggregates.payment_order import PaymentOrder
from gopay.operations.ha_cluster import LocalCluster
from tests.support import Client, GoPayProcess, GoPayServer, fund, gopay_env, register, staff

WALLETS = 12
FUNDING = 1_000_000  # minor units per wallet: no transfer here is refused for lack of money
REQUESTS = 1_500
THREADS = 16
CRASH_AFTER = 400  # answered requests before the primary's PostgreSQL is killed
RETRY_DEADLINE = 60.0  # how long one client keeps retrying one transfer
BACK_WITHIN = 30.0  # GoPay serves again (and a new primary is up) this soon after the crash
SUCCEEDED_TOPIC = get_topic(PaymentOrder.Succeeded)


@dataclass(frozen=True)
class Person:
    index: int
    wallet_id: str
    token: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@dataclass
class Transfer:
    """One transfer as its client meant it, every answer it got, and the final one."""

    sender: int
    recipient: int
    key: str
    body: dict[str, Any]
    sent_at: float = 0.0
    status: int = 0
    payload: dict[str, Any] = field(default_factory=dict)
    acknowledged_at: float = 0.0
    failed_attempts: list[str] = field(default_factory=list)  # retried with the same key

    @property
    def retried(self) -> bool:
        return bool(self.failed_attempts)


class FailoverLoad:
    """THREADS clients sending REQUESTS transfers among `people`, retrying with the same key."""

    def __init__(self, url: str, people: list[Person], seed: int = 7) -> None:
        self.url = url
        self.people = people
        self.rng = random.Random(seed)
        self.transfers: list[Transfer] = []
        self.answered = 0
        self.server_errors: list[str] = []  # 5xx other than 503 problem+json: must stay empty
        self.failures: list[str] = []
        self._lock = threading.Lock()

    def run(self, crash_after: int, crash: Any) -> None:
        threads = [threading.Thread(target=self._client, args=(n,)) for n in range(THREADS)]
        for thread in threads:
            thread.start()
        while self.answered < crash_after and any(t.is_alive() for t in threads):
            time.sleep(0.01)
        crash()
        for thread in threads:
            thread.join(timeout=RETRY_DEADLINE * 3)
            assert not thread.is_alive(), "a client thread is stuck"

    def _next(self) -> Transfer | None:
        with self._lock:
            if len(self.transfers) >= REQUESTS:
                return None
            sender, recipient = self.rng.sample(range(len(self.people)), 2)
            body = {"recipient": self.people[recipient].wallet_id,
                    "amount": self.rng.randint(1, 500), "currency": "USD"}
            transfer = Transfer(sender, recipient, f"failover-{uuid.uuid4()}", body)
            self.transfers.append(transfer)
            return transfer

    def _client(self, number: int) -> None:
        with httpx.Client(base_url=self.url, timeout=10) as http:
            while (transfer := self._next()) is not None:
                try:
                    self._send(http, transfer)
                except Exception as error:  # noqa: BLE001 - a client thread must not die silently
                    with self._lock:
                        self.failures.append(f"{transfer.key}: {error!r}")
                    return

    def _send(self, http: httpx.Client, transfer: Transfer) -> None:
        headers = {**self.people[transfer.sender].auth, "Idempotency-Key": transfer.key}
        deadline = time.monotonic() + RETRY_DEADLINE
        transfer.sent_at = time.monotonic()
        while True:
            try:
                response = http.post("/v1/transfers", json=transfer.body, headers=headers)
            except httpx.TransportError as error:  # timed out or cut: send it again
                transfer.failed_attempts.append(type(error).__name__)
            else:
                payload = response.json()
                if response.status_code < 500 and payload.get("code") != "request_in_progress":
                    break
                transfer.failed_attempts.append(f"{response.status_code} {payload.get('code')}")
                if response.status_code >= 500 and not _retryable_problem(response):
                    with self._lock:
                        self.server_errors.append(f"{response.status_code} {response.text}")
            if time.monotonic() > deadline:
                raise AssertionError(f"no answer but {transfer.failed_attempts[-3:]}")
            time.sleep(0.1)
        transfer.status, transfer.payload = response.status_code, payload
        transfer.acknowledged_at = time.monotonic()
        with self._lock:
            self.answered += 1

    def acknowledged(self) -> dict[str, Transfer]:
        return {t.payload["id"]: t for t in self.transfers if t.status == 201}


def _retryable_problem(response: httpx.Response) -> bool:
    """A 503 problem+json that tells the client to retry: what a lost primary must answer."""
    return (response.status_code == 503
            and response.headers.get("content-type") == "application/problem+json"
            and response.json().get("code") == "unavailable"
            and "retry-after" in response.headers)


@dataclass
class Deployment:
    cluster: LocalCluster
    env: dict[str, str]
    server: GoPayServer
    worker: GoPayProcess
    admin: Client
    people: list[Person]


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    """A Patroni cluster, GoPay serving and a worker on its multi-host URL, funded wallets."""
    base = tmp_path_factory.mktemp("failover")
    # Not under pytest's own temporary folder: every pytest session that starts makes that
    # one private to root again, and the cluster's processes run as gopay-postgres.
    cluster_dir = Path(tempfile.mkdtemp(prefix="gopay-ha-"))
    cluster = LocalCluster.create(cluster_dir)
    env = gopay_env(cluster.url(), base / "var", PYTHONUNBUFFERED="1")
    server = GoPayServer.create(env, base / "serve.log")
    worker = GoPayProcess(args=("worker",), env=env, log_path=base / "worker.log")
    try:
        cluster.start()
        server.start()
        worker.start()
        admin = staff(server.url, env)

        def person(index: int) -> Person:
            client = register(server.url)
            fund(admin, client.user["wallet_id"], FUNDING)
            token = client.http.headers["Authorization"].removeprefix("Bearer ")
            return Person(index, client.user["wallet_id"], token)

        with ThreadPoolExecutor(4) as pool:
            people = list(pool.map(person, range(WALLETS)))
        yield Deployment(cluster, env, server, worker, admin, people)
    finally:
        server.stop()
        worker.stop()
        cluster.stop()
        for log in cluster_dir.glob("*.log"):  # kept with the test's other logs
            shutil.copy(log, base / f"cluster-{log.name}")
        shutil.rmtree(cluster_dir, ignore_errors=True)


@pytest.mark.slow
class TestFailover:
    def test_kill_9_of_the_primary_mid_load_loses_and_doubles_nothing(
            self, deployment: Deployment) -> None:
        """Every 2xx is in the ledger once, money is conserved, GoPay serves again in 30 s."""
        cluster, server = deployment.cluster, deployment.server
        members = {m["name"]: m["role"] for m in cluster.members()}
        old_primary = cluster.primary()
        assert old_primary is not None
        crash: dict[str, Any] = {}
        readiness: list[tuple[float, int]] = []

        def crash_primary() -> None:
            cluster.crash_primary()
            crash["at"] = time.monotonic()
            threading.Thread(target=watch_readiness, daemon=True).start()

        def watch_readiness() -> None:
            """/health/ready from the crash until GoPay is ready again (bounded)."""
            with httpx.Client(base_url=server.url, timeout=10) as http:
                while time.monotonic() - crash["at"] < BACK_WITHIN + 10:
                    status = http.get("/health/ready").status_code
                    readiness.append((time.monotonic() - crash["at"], status))
                    if status == 200:
                        return
                    time.sleep(0.1)

        load = FailoverLoad(server.url, deployment.people)
        load.run(CRASH_AFTER, crash_primary)

        # Patroni promoted one of the synchronous (quorum) standbys, within the 30 s.
        new_primary = cluster.wait_until_replicated(timeout=BACK_WITHIN)
        assert new_primary != old_primary
        assert members[new_primary.name] in ("quorum_standby", "sync_standby"), members

        # Every client got a final answer; no 500 ever, and a lost primary was a retryable 503.
        assert not load.failures, load.failures[:5]
        assert not load.server_errors, load.server_errors[:5]
        outcomes = Counter(t.status for t in load.transfers)
        assert outcomes == {201: REQUESTS}, outcomes

        # The crash came mid-load: requests were in flight, and some clients had to retry.
        caught = [t for t in load.transfers if t.sent_at < crash["at"] < t.acknowledged_at]
        retried = [t for t in load.transfers if t.retried]
        figures = (f"failover: {len(caught)} transfers in flight at the crash, {len(retried)} "
                   f"retried by their clients after "
                   f"{Counter(a for t in retried for a in t.failed_attempts)}")
        print(figures)  # noqa: T201 - the run's figures, with -s
        assert caught, "no request was in flight when the primary died"
        assert len({t.payload["id"] for t in load.transfers}) == REQUESTS  # one per key

        # A client that sends any of those again with its key gets the same answer, no effect.
        with httpx.Client(base_url=server.url, timeout=30) as http:
            for transfer in caught + retried:
                again = http.post("/v1/transfers", json=transfer.body, headers={
                    **deployment.people[transfer.sender].auth, "Idempotency-Key": transfer.key})
                assert (again.status_code, again.json()) == (201, transfer.payload)

        # GoPay served again within 30 s of the crash, in the same processes.
        after_crash = sorted(t.acknowledged_at - crash["at"] for t in load.transfers
                             if t.sent_at > crash["at"])
        assert after_crash and after_crash[0] < BACK_WITHIN, after_crash[:3]
        assert server.process is not None and server.process.poll() is None
        assert deployment.worker.process is not None and deployment.worker.process.poll() is None
        figures = (f"failover: first transfer sent after the crash answered at "
                   f"{after_crash[0]:.2f} s; readiness {readiness[:3]} ... {readiness[-1:]}")
        print(figures)  # noqa: T201 - the run's figures, with -s
        assert readiness and readiness[-1][1] == 200 and readiness[-1][0] < BACK_WITHIN, readiness

        # Every acknowledged transfer is in the ledger exactly once, and nothing else is.
        acknowledged = load.acknowledged()
        assert_events_hold_exactly(cluster.url(), set(acknowledged))
        assert_wallets_show_exactly(server.url, deployment.people, acknowledged)

    def test_no_writable_primary_answers_503_until_one_is_back(
            self, deployment: Deployment) -> None:
        """With failover paused and the primary dead: 503 problem+json (ready and commands)."""
        cluster, server = deployment.cluster, deployment.server
        sender, recipient = deployment.people[0], deployment.people[1]
        body = {"recipient": recipient.wallet_id, "amount": 100, "currency": "USD"}
        key = f"paused-{uuid.uuid4()}"
        cluster.wait_until_replicated(timeout=BACK_WITHIN)
        cluster.set_paused(True)
        try:
            cluster.crash_primary()
            with httpx.Client(base_url=server.url, timeout=30) as http:
                ready = http.get("/health/ready")
                answer = http.post("/v1/transfers", json=body,
                                   headers={**sender.auth, "Idempotency-Key": key})
        finally:
            cluster.set_paused(False)
        assert ready.status_code == 503, ready.text
        assert ready.headers["content-type"] == "application/problem+json"
        assert answer.status_code == 503, answer.text
        assert _retryable_problem(answer), (answer.headers, answer.text)

        # Failover resumed: a primary is back, GoPay is ready and the retry takes effect once.
        cluster.wait_until_replicated(timeout=BACK_WITHIN)
        deadline = time.monotonic() + BACK_WITHIN
        with httpx.Client(base_url=server.url, timeout=10) as http:
            while (ready := http.get("/health/ready")).status_code != 200:
                assert time.monotonic() < deadline, ready.text
                time.sleep(0.2)
            answers = [http.post("/v1/transfers", json=body,
                                 headers={**sender.auth, "Idempotency-Key": key})
                       for _ in range(2)]
        assert [a.status_code for a in answers] == [201, 201], [a.text for a in answers]
        assert answers[0].json() == answers[1].json()


@pytest.mark.slow
class TestReadsFromStandbys:
    def test_an_api_reading_from_standbys_still_shows_the_callers_own_writes(
            self, deployment: Deployment, tmp_path: Path) -> None:
        """A second API process serves its queries from the standbys: each of its answers
        already shows the caller's transfer it answered a moment before."""
        deployment.cluster.wait_until_replicated(timeout=BACK_WITHIN)
        hosts = deployment.cluster.url().split("@", 1)[1].split("/", 1)[0]
        standbys = f"postgresql://postgres@{hosts}/gopay?target_session_attrs=standby"
        env = {**deployment.env, "GOPAY_READ_DATABASE_URL": standbys,
               "GOPAY_SERVE_RUNS_PROJECTIONS": "false"}
        reader = GoPayServer.create(env, tmp_path / "reader.log").start()
        try:
            ready = httpx.get(f"{reader.url}/health/ready", timeout=10).json()
            assert ready["reads_from"] == "standby", ready
            # Wallets of their own: the failover tests count every transfer of their people.
            sender, recipient = register(reader.url), register(reader.url)
            fund(deployment.admin, sender.user["wallet_id"], 100)
            http = httpx.Client(base_url=reader.url, headers=dict(sender.http.headers), timeout=30)
            before = http.get("/v1/wallet").json()["balance"]
            assert before == 100
            for step in range(1, 11):
                sent = http.post("/v1/transfers", json={"recipient": recipient.user["wallet_id"],
                                                         "amount": 1, "currency": "USD"})
                assert sent.status_code == 201, sent.text
                assert http.get("/v1/wallet").json()["balance"] == before - step
                assert http.get(f"/v1/transfers/{sent.json()['id']}").status_code == 200
        finally:
            reader.stop()


def assert_events_hold_exactly(database_url: str, acknowledged: set[str]) -> None:
    """The event store (on the new primary) holds each acknowledged transfer's success once,
    besides the wallets' fundings, and no other."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        rows = conn.execute("SELECT originator_id::text FROM gopay_events WHERE topic = %s",
                            (SUCCEEDED_TOPIC,)).fetchall()
    succeeded = Counter(row[0] for row in rows)
    assert all(count == 1 for count in succeeded.values())
    assert acknowledged <= set(succeeded), len(acknowledged - set(succeeded))
    assert len(set(succeeded) - acknowledged) == WALLETS  # the fundings


def assert_wallets_show_exactly(url: str, people: list[Person],
                                acknowledged: dict[str, Transfer]) -> None:
    """Balances and histories are the funding plus the acknowledged transfers, each once."""
    expected = [FUNDING] * len(people)
    debits: list[Counter[str]] = [Counter() for _ in people]
    credited: list[Counter[str]] = [Counter() for _ in people]
    for transfer_id, transfer in acknowledged.items():
        expected[transfer.sender] -= transfer.body["amount"]
        expected[transfer.recipient] += transfer.body["amount"]
        debits[transfer.sender][transfer_id] += 1
        credited[transfer.recipient][transfer_id] += 1
    balances = []
    with httpx.Client(base_url=url, timeout=30) as http:
        for person in people:
            wallet = http.get("/v1/wallet", headers=person.auth).json()
            history = read_history(http, person)
            balances.append(wallet["balance"])
            assert wallet["balance"] == expected[person.index], person.index
            transfers = [row for row in history if row["type"] == "transfer"]
            assert Counter(r["id"] for r in transfers if r["direction"] == "debit") \
                == debits[person.index], person.index
            assert Counter(r["id"] for r in transfers if r["direction"] == "credit") \
                == credited[person.index], person.index
    assert sum(balances) == WALLETS * FUNDING  # money is conserved


def read_history(http: httpx.Client, person: Person) -> list[dict[str, Any]]:
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
