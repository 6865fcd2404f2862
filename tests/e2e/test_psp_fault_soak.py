"""The PSP fault soak: 2,000 mixed money operations while the PSP drops, duplicates and delays.

GoPay (`gopay serve` and `gopay worker`) and the PSP simulator run as processes of their own.
Client threads send top-ups with each test card and from bank accounts, payouts to good and
closed accounts, and transfers between a few dozen customers, each request with its own
Idempotency-Key, sent again with that key after a cut connection, a 5xx or a 202, as a
mobile client does. The simulator drops 20 % of its answers, sends 20 % of its webhooks
twice and delays 10 %, and turns 5 % of the requests away (429, nothing done: a call or a
status query tried again later, never a failed order). Once the faults are cleared and the
PSP work has drained, the books are checked against the PSP's own settlement file: every
wallet equals what the PSP settled for it plus its transfers, nothing is credited twice,
every order is final (or its task is dead-lettered, for staff to send round again), and the
ledger sums to zero. The second test does the same with kill -9 of the API, of the worker,
and of both, in the middle of the load.

The API runs with the default GOPAY_SERVE_RUNS_PROJECTIONS (true), as `gopay up` runs it: the
worker, started first, leads the projections and the PSP job, and the API stands by to take
them over when the worker dies.
"""

from __future__ import annotations

import csv
import io
import random
import sqlite3
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, closing
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cached_property
from pathlib import Path
from typing import Any, LiteralString
from uuid import UUID

import httpx
import psycopg
import pytest
from eventsourcing.utils import get_topic
from psycopg.rows import dict_row

from gopay.aggregates.ledger import SystemAccount
from gopay.aggregates.payment_order import PaymentOrder, order_id_for
from gopay.aggregates.wallet import Wallet
from gopay.application import GoPay, application_env
from gopay.settings import Settings
from tests.conftest import new_database
from tests.e2e.test_concurrency_and_crash import projection_locks_held, restart, wait_for
from tests.support import (
    Client,
    GoPayProcess,
    GoPayServer,
    PspSimulator,
    gopay_env,
    psp_env,
    register,
    staff,
)

OPERATIONS = 2_000
CUSTOMERS = 36
CLIENT_THREADS = 12
FAULTS = {"drop_response": 0.2, "duplicate_webhook": 0.2, "delay_webhook": 0.1,
          "rate_limited": 0.05}

CARDS = {"ok": "4242424242424242", "declined": "4000000000000002",
         "no_funds": "4000000000009995", "disputed": "4000000000000259"}
IBAN, CLOSED_IBAN = "DE89370400440532013000", "GB33BUKB20201555555555"

# The mix of operations: what is sent, from which saved method, how often, for how much.
MIX: dict[str, tuple[str, str, int, tuple[int, int]]] = {
    # kind: (endpoint, payment method, weight, amount range)
    "topup_ok": ("topups", "ok", 20, (1_000, 6_000)),
    "topup_declined": ("topups", "declined", 5, (500, 3_000)),
    "topup_no_funds": ("topups", "no_funds", 5, (500, 3_000)),
    "topup_disputed": ("topups", "disputed", 6, (1_000, 5_000)),
    "topup_bank": ("topups", "bank", 12, (1_000, 6_000)),
    "payout": ("payouts", "bank", 16, (200, 4_000)),
    "payout_closed": ("payouts", "closed", 6, (200, 2_000)),
    "transfer": ("transfers", "", 30, (100, 3_000)),
}
# Half the disputed top-ups are spent at once: the customer sends everything available to
# someone else before the chargeback comes, which then finds too little and books the rest
# as a receivable. That transfer is an operation of its own (of the OPERATIONS).
SPENT_AT_ONCE = 0.5
# How each kind must end at GoPay: (status, failure reason); a payout or transfer may also be
# refused with 422 insufficient_funds before it reaches the PSP.
EXPECTED_END = {
    "topup_ok": ("succeeded", None), "topup_bank": ("succeeded", None),
    "topup_disputed": ("succeeded", None),
    "topup_declined": ("failed", "card_declined"),
    "topup_no_funds": ("failed", "insufficient_funds"),
    "payout": ("succeeded", None), "payout_closed": ("failed", "account_closed"),
}

# The client: how long it keeps sending one request through cut connections and restarts,
# and how many times it sends a request again while GoPay answers 202 (then it moves on).
RETRY_DEADLINE = 60.0
POSTS_WHILE_PENDING = 4
# How long the PSP work may take to drain once the faults are cleared.
DRAIN_TIMEOUT = 120.0

GOPAY_SETTINGS = {
    # Fast retries, so the soak drains in seconds: an attempt that got no answer is tried
    # again within a second, a request's own first attempt has a second's start.
    "GOPAY_PSP_TIMEOUT": "3", "GOPAY_PSP_CALL_GRACE": "1", "GOPAY_PSP_RETRY_MAX_DELAY": "1",
    "GOPAY_PSP_RETRY_ATTEMPTS": "12", "PYTHONUNBUFFERED": "1",
}


@dataclass(frozen=True)
class Customer:
    index: int
    user_id: str
    wallet_id: str
    token: str
    methods: dict[str, str]  # MIX's method name -> saved payment method id

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@dataclass
class Operation:
    """One request as a client meant it, every answer it got, and where it ended."""

    number: int
    kind: str
    customer: int
    amount: int
    key: str
    recipient: int | None = None
    # The transfer of everything available that follows this top-up at once, sent by the
    # same client right after it (its amount is decided then).
    then: Operation | None = None
    follows: bool = False
    answers: list[int] = field(default_factory=list)  # every HTTP status, in order
    transport_errors: int = 0
    final: int = 0  # the status of the last answer
    payload: dict[str, Any] = field(default_factory=dict)

    @property
    def endpoint(self) -> str:
        return "transfers" if self.kind == "transfer_all" else MIX[self.kind][0]

    @property
    def operation(self) -> str:
        """The operation name GoPay derives the order id of a key from."""
        return {"topups": "topup", "payouts": "payout", "transfers": "transfer"}[self.endpoint]


def plan(customers: int, seed: int) -> list[Operation]:
    """OPERATIONS operations drawn from MIX, reproducibly."""
    rng = random.Random(seed)
    kinds = list(MIX)
    weights = [MIX[kind][2] for kind in kinds]
    operations: list[Operation] = []

    def add(kind: str, customer: int, amount: int, recipient: int | None = None) -> Operation:
        number = len(operations)
        operations.append(Operation(number, kind, customer, amount,
                                    f"soak-{seed}-{number}-{uuid.uuid4().hex[:8]}", recipient))
        return operations[-1]

    def someone_else(customer: int) -> int:
        return rng.choice([c for c in range(customers) if c != customer])

    while len(operations) < OPERATIONS:
        kind = rng.choices(kinds, weights)[0]
        customer = rng.randrange(customers)
        amount = rng.randint(*MIX[kind][3])
        if kind != "transfer":
            operation = add(kind, customer, amount)
            if (kind == "topup_disputed" and rng.random() < SPENT_AT_ONCE
                    and len(operations) < OPERATIONS):
                operation.then = add("transfer_all", customer, 0, someone_else(customer))
                operation.then.follows = True
        else:
            add(kind, customer, amount, someone_else(customer))
    return operations


class Load:
    """Client threads working through the planned operations, each as its customer."""

    def __init__(self, url: str, customers: list[Customer], operations: list[Operation],
                 threads: int, seed: int) -> None:
        self.url = url
        self.customers = customers
        self.operations = operations
        self.threads = threads
        self.seed = seed
        self.failures: list[str] = []  # crashed client threads: the test fails on any
        self.elapsed = 0.0
        self._next = 0
        self._answered = 0
        self._lock = threading.Lock()

    @property
    def answered(self) -> int:
        return self._answered

    def run(self, milestones: dict[int, Callable[[], None]] | None = None) -> Load:
        """Send every operation; run each milestone's action once that many are answered."""
        clients = [threading.Thread(target=self._client, args=(n,), name=f"soak-client-{n}")
                   for n in range(self.threads)]
        started = time.monotonic()
        for thread in clients:
            thread.start()
        for threshold, action in sorted((milestones or {}).items()):
            while self.answered < threshold and any(t.is_alive() for t in clients):
                time.sleep(0.01)
            action()
        for thread in clients:
            thread.join(timeout=600)
            assert not thread.is_alive(), "a client thread is stuck"
        self.elapsed = time.monotonic() - started
        return self

    def _client(self, number: int) -> None:
        rng = random.Random(self.seed * 1000 + number)
        with httpx.Client(base_url=self.url, timeout=15) as http:
            while (operation := self._take()) is not None:
                while operation is not None:  # the operation, then the one it brings along
                    try:
                        if operation.kind == "transfer_all":
                            operation.amount = self._available(http, operation)
                        self._send(http, operation, rng)
                    except Exception as error:  # noqa: BLE001 - a client thread must not die silently
                        with self._lock:
                            self.failures.append(f"{operation.kind} #{operation.number}: {error!r}")
                        return
                    with self._lock:
                        self._answered += 1
                    operation = operation.then

    def _take(self) -> Operation | None:
        """The next operation no other one brings along, if any is left."""
        with self._lock:
            while self._next < len(self.operations):
                operation = self.operations[self._next]
                self._next += 1
                if not operation.follows:
                    return operation
            return None

    def _available(self, http: httpx.Client, operation: Operation) -> int:
        """What the customer can send now (at least 1: a transfer moves something, or is refused)."""
        deadline = time.monotonic() + RETRY_DEADLINE
        while True:
            try:
                response = http.get("/v1/wallet", headers=self.customers[operation.customer].auth)
            except httpx.TransportError:
                operation.transport_errors += 1
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
                continue
            assert response.status_code == 200, response.text
            return max(1, response.json()["available"])

    def _send(self, http: httpx.Client, operation: Operation, rng: random.Random) -> None:
        """POST until a final answer: again with the same key after a cut connection, a 5xx,
        a 409 request_in_progress, or (a few times) a 202."""
        customer = self.customers[operation.customer]
        headers = {**customer.auth, "Idempotency-Key": operation.key}
        body: dict[str, Any] = {"amount": operation.amount, "currency": "USD"}
        if operation.recipient is None:
            body["payment_method_id"] = customer.methods[MIX[operation.kind][1]]
        else:
            body["recipient"] = self.customers[operation.recipient].wallet_id
        deadline = time.monotonic() + RETRY_DEADLINE
        pending_answers = 0
        while True:
            try:
                response = http.post(f"/v1/{operation.endpoint}", json=body, headers=headers)
            except httpx.TransportError:
                operation.transport_errors += 1
                if time.monotonic() > deadline:
                    raise
                time.sleep(rng.uniform(0.1, 0.3))
                continue
            operation.answers.append(response.status_code)
            try:
                payload = response.json()
            except ValueError:  # not a problem+json: kept for the checks to show
                payload = {"body": response.text[:500]}
            retry = (response.status_code >= 500
                     or (response.status_code == 409 and payload.get("code") == "request_in_progress"))
            if response.status_code == 202:
                pending_answers += 1
                retry = pending_answers < POSTS_WHILE_PENDING
            if retry and time.monotonic() < deadline:
                time.sleep(rng.uniform(0.1, 0.3) * (pending_answers or 1))
                continue
            operation.final, operation.payload = response.status_code, payload
            return

    def figures(self) -> dict[str, Any]:
        answers = Counter(status for operation in self.operations for status in operation.answers)
        return {
            "operations": len(self.operations), "seconds": round(self.elapsed, 1),
            "per_second": round(len(self.operations) / self.elapsed, 1) if self.elapsed else 0,
            "answers": dict(sorted(answers.items())),
            "resent_after_202": sum(max(0, op.answers.count(202) - (op.final == 202))
                                    for op in self.operations),
            "left_pending_by_client": sum(op.final == 202 for op in self.operations),
            "transport_errors": sum(op.transport_errors for op in self.operations),
            "final": dict(sorted(Counter(f"{op.kind}:{op.final}" for op in self.operations).items())),
        }


class Deployment:
    """A fresh database, the simulator, `gopay worker` and `gopay serve`, all stopped at the end."""

    def __init__(self, postgres_server: Any, tmp: Path, stack: ExitStack) -> None:
        self.tmp = tmp
        self.database_url = new_database(postgres_server)
        self.server = GoPayServer.create({}, tmp / "serve.log")
        webhooks = f"{self.server.url}/v1/psp/webhooks"
        self.sim_database = tmp / "psp-sim.sqlite3"
        sim_env = psp_env(tmp / "sim", webhooks, GOPAY_PSP_SIM_DISPUTE_DELAY="0.5",
                          GOPAY_PSP_SIM_DATABASE=str(self.sim_database))
        self.simulator = PspSimulator.create(sim_env, tmp / "sim.log")
        self.env = {**gopay_env(self.database_url, tmp / "var"), **psp_env(tmp / "var", webhooks),
                    "GOPAY_PSP_URL": self.simulator.url, **GOPAY_SETTINGS}
        self.server.env = self.env
        self.worker = GoPayProcess(args=("worker",), env=self.env, log_path=tmp / "worker.log")
        for process in (self.simulator, self.worker, self.server):
            stack.callback(process.stop)
        self.started_on = datetime.now(UTC).date()

    def start(self) -> Deployment:
        self.simulator.start()
        restart(self.worker)
        # The worker leads the projections and the PSP job; the API stands by.
        wait_for(lambda: projection_locks_held(self.database_url) == 1, 30, "the worker's lock")
        self.server.start()
        self.admin = staff(self.server.url, self.env)
        return self

    def faults(self, **faults: float) -> None:
        response = httpx.post(f"{self.simulator.url}/sim/faults", json=faults, timeout=10)
        assert response.status_code == 200, response.text

    def customers(self, count: int) -> list[Customer]:
        """`count` signed-in people, each with every test card and two bank accounts saved."""
        def one(index: int) -> Customer:
            person = register(self.server.url)
            methods = {name: self._save(person, {"type": "card", "card": {
                "number": number, "exp_month": 12, "exp_year": 2031, "cvc": "123",
                "holder_name": "Ada Lovelace"}}) for name, number in CARDS.items()}
            for name, iban in (("bank", IBAN), ("closed", CLOSED_IBAN)):
                methods[name] = self._save(person, {"type": "bank_account", "bank_account": {
                    "iban": iban, "holder_name": "Ada Lovelace"}})
            token = person.http.headers["Authorization"].removeprefix("Bearer ")
            person.http.close()
            return Customer(index, person.user["id"], person.user["wallet_id"], token, methods)

        with ThreadPoolExecutor(4) as pool:
            return list(pool.map(one, range(count)))

    @staticmethod
    def _save(person: Client, body: dict[str, Any]) -> str:
        saved = person.post("/v1/payment-methods", body)
        assert saved.status_code == 201, saved.text
        return saved.json()["id"]

    # What is still outstanding, at the PSP and at GoPay

    def outstanding(self) -> dict[str, int]:
        """Work not finished yet: webhooks the PSP has still to deliver, disputes it has still
        to open, PSP tasks GoPay has still to try, and orders neither succeeded nor failed
        whose task is not dead-lettered (a dead letter waits for staff)."""
        with closing(sqlite3.connect(f"file:{self.sim_database}?mode=ro", uri=True)) as sim:
            undelivered = sim.execute("SELECT count(*) FROM deliveries WHERE delivered_at IS NULL "
                                      "AND gave_up_at IS NULL").fetchone()[0]
            disputes = sim.execute("SELECT count(*) FROM operations WHERE dispute_due_at IS NOT "
                                   "NULL AND disputed_at IS NULL").fetchone()[0]
        # An API read waits until the read side shows everything committed before it.
        barrier = self.admin.get("/v1/admin/dead-letters", params={"limit": 1})
        assert barrier.status_code == 200, barrier.text
        with psycopg.connect(self.database_url, autocommit=True) as conn:
            tasks = conn.execute("SELECT count(*) FROM psp_tasks WHERE NOT done AND NOT dead"
                                 ).fetchone()[0]
            unfinished = conn.execute(
                "SELECT count(*) FROM payment_orders o WHERE o.status NOT IN ('succeeded', "
                "'failed') AND NOT EXISTS (SELECT 1 FROM psp_tasks t WHERE t.order_id = o.id "
                "AND t.dead)").fetchone()[0]
        return {"undelivered_webhooks": undelivered, "disputes_to_open": disputes,
                "unfinished_tasks": tasks, "unfinished_orders": unfinished}

    def drain(self, timeout: float = DRAIN_TIMEOUT) -> float:
        """Wait until nothing is outstanding twice in a row; how long that took."""
        started = time.monotonic()
        quiet = 0
        while quiet < 2:
            left = self.outstanding()
            quiet = quiet + 1 if not any(left.values()) else 0
            assert time.monotonic() - started < timeout, f"still outstanding: {left}"
            time.sleep(0.25)
        return time.monotonic() - started

    def dead_letters(self) -> list[dict[str, Any]]:
        letters: list[dict[str, Any]] = []
        cursor = None
        while True:
            page = self.admin.get("/v1/admin/dead-letters",
                                  params={"limit": 200, **({"cursor": cursor} if cursor else {})})
            assert page.status_code == 200, page.text
            letters += page.json()["data"]
            cursor = page.json()["next_cursor"]
            if cursor is None:
                return letters

    def settlement(self) -> list[dict[str, str]]:
        """Every line of the PSP's settlement files of the days the test ran."""
        lines: list[dict[str, str]] = []
        day = self.started_on
        while day <= datetime.now(UTC).date():
            text = httpx.get(f"{self.simulator.url}/sim/settlements/{day.isoformat()}.csv",
                             timeout=30).text
            lines += csv.DictReader(io.StringIO(text))
            day += timedelta(days=1)
        return lines

    def gopay_logs(self) -> str:
        return "".join(process.log_path.read_text(errors="replace")
                       for process in (self.server, self.worker))

    def webhook_deliveries(self) -> tuple[int, int]:
        """How many webhook deliveries the PSP made, and how many attempts they took."""
        with closing(sqlite3.connect(f"file:{self.sim_database}?mode=ro", uri=True)) as sim:
            deliveries, attempts = sim.execute("SELECT count(*), sum(attempts) FROM deliveries"
                                               ).fetchone()
        return deliveries, attempts


@pytest.fixture
def deployment(postgres_server: Any, tmp_path: Path) -> Iterator[Deployment]:
    with ExitStack() as stack:
        yield Deployment(postgres_server, tmp_path, stack).start()


# What GoPay's books say, read from its read side and replayed from its events


@dataclass
class Replay:
    """The wallets and the ledger rebuilt from the stored events alone."""

    wallets: dict[UUID, Wallet] = field(default_factory=dict)
    ledger: Counter[tuple[UUID, str]] = field(default_factory=Counter)
    unbalanced_entries: list[UUID] = field(default_factory=list)
    credits: Counter[UUID] = field(default_factory=Counter)  # Credited events per order id
    captures: Counter[UUID] = field(default_factory=Counter)  # Captured events per hold (order)
    releases: Counter[UUID] = field(default_factory=Counter)
    succeeded: Counter[UUID] = field(default_factory=Counter)  # Succeeded events per order
    # For each chargeback order: what its wallet had available when it ran, and what it took.
    chargeback_available: dict[UUID, int] = field(default_factory=dict)
    chargeback_taken: Counter[UUID] = field(default_factory=Counter)


REPLAYED = (Wallet.Opened, Wallet.Debited, Wallet.Credited, Wallet.Held, Wallet.Captured,
            Wallet.Released, Wallet.Frozen, Wallet.Unfrozen, Wallet.TierChanged,
            PaymentOrder.Created, PaymentOrder.Succeeded)


def replay(deployment: Deployment, chargebacks: dict[UUID, UUID]) -> Replay:
    """Replay wallet and payment-order events in log order; `chargebacks`: order id -> wallet id."""
    settings = Settings(_env_file=None, database_url=deployment.database_url,  # type: ignore[call-arg]  # pydantic-settings' init option
                        var_dir=deployment.tmp / "var")
    app = GoPay(settings.key_ring(), env=application_env(deployment.database_url, pool_size=1))
    books = Replay()
    try:
        topics = [get_topic(kind) for kind in REPLAYED]
        start = 1
        while notifications := app.recorder.select_notifications(start=start, limit=5_000,
                                                                 topics=topics):
            for notification in notifications:
                _replay_event(books, app.mapper.to_domain_event(notification), chargebacks)
            start = notifications[-1].id + 1
    finally:
        app.close()
    return books


def _replay_event(books: Replay, event: Any, chargebacks: dict[UUID, UUID]) -> None:
    if isinstance(event, PaymentOrder.Created):
        if event.originator_id in chargebacks:
            # A command's new aggregates' events come first: this is the wallet as the
            # chargeback found it.
            wallet = books.wallets[chargebacks[event.originator_id]]
            books.chargeback_available[event.originator_id] = wallet.available
        return
    if isinstance(event, PaymentOrder.Succeeded):
        books.succeeded[event.originator_id] += 1
        totals: Counter[str] = Counter()
        for posting in event.postings:
            totals[posting["currency"]] += posting["amount"]
            books.ledger[UUID(posting["account_id"]), posting["currency"]] += posting["amount"]
        if any(totals.values()):
            books.unbalanced_entries.append(event.originator_id)
        return
    if isinstance(event, Wallet.Credited):
        books.credits[event.entry_id] += 1
    elif isinstance(event, Wallet.Captured):
        books.captures[event.hold_id] += 1
    elif isinstance(event, Wallet.Released):
        books.releases[event.hold_id] += 1
    elif isinstance(event, Wallet.Debited) and event.entry_id in chargebacks:
        books.chargeback_taken[event.entry_id] += event.amount
    books.wallets[event.originator_id] = event.mutate(books.wallets.get(event.originator_id))


@dataclass
class Books:
    """Everything the checks compare: GoPay's read side and replayed events, and the PSP's file."""

    orders: dict[UUID, dict[str, Any]]  # payment_orders rows by id
    wallets: dict[UUID, dict[str, Any]]
    history: list[dict[str, Any]]  # wallet_transactions, by wallet, oldest first
    ledger: dict[tuple[UUID, str], int]
    tasks: list[dict[str, Any]]
    lines: list[dict[str, str]]  # the PSP's settlement lines
    by_operation: dict[UUID, Operation]  # the order each operation's key stands for
    owner: dict[UUID, int]  # wallet id -> customer index
    replayed: Replay = field(default_factory=Replay)

    @classmethod
    def read(cls, deployment: Deployment, load: Load) -> Books:
        with psycopg.connect(deployment.database_url, autocommit=True, row_factory=dict_row) as conn:
            def rows(statement: LiteralString) -> list[dict[str, Any]]:
                return conn.execute(statement).fetchall()
            books = cls(
                orders={row["id"]: row for row in rows("SELECT * FROM payment_orders")},
                wallets={row["wallet_id"]: row for row in rows("SELECT * FROM wallets")},
                history=rows("SELECT * FROM wallet_transactions ORDER BY wallet_id, seq"),
                ledger={(row["account_id"], row["currency"]): row["balance"]
                        for row in rows("SELECT * FROM ledger_accounts")},
                tasks=rows("SELECT * FROM psp_tasks"),
                lines=deployment.settlement(),
                by_operation={order_id_for(UUID(load.customers[op.customer].user_id),
                                           op.operation, op.key): op for op in load.operations},
                owner={UUID(c.wallet_id): c.index for c in load.customers})
        books.replayed = replay(deployment, {order_id: order["payer_wallet_id"]
                                             for order_id, order in books.chargebacks.items()})
        return books

    @cached_property
    def chargebacks(self) -> dict[UUID, dict[str, Any]]:
        """The orders GoPay made of the PSP's chargebacks: top-ups the other way round."""
        return {order_id: order for order_id, order in self.orders.items()
                if order["type"] == "topup" and order["payer_wallet_id"] is not None}

    @cached_property
    def called(self) -> set[UUID]:
        """Orders GoPay had a task to ask the PSP about."""
        return {task["order_id"] for task in self.tasks if task["kind"] == "call"}

    def wallet_of(self, order_id: UUID) -> int:
        """The customer whose wallet an order moves money in or out of."""
        order = self.orders[order_id]
        return self.owner[order["payee_wallet_id"] if order["type"] == "topup" and order_id
                          not in self.chargebacks else order["payer_wallet_id"]]

    def owed(self, order_id: UUID) -> int:
        """What a chargeback booked to receivables: what its wallet could not give back."""
        receivables = SystemAccount.RECEIVABLES.account_id("USD")
        postings = {UUID(p["account_id"]): p["amount"] for p in self.orders[order_id]["postings"]}
        return -postings.get(receivables, 0)


# The checks


def assert_every_answer_expected(load: Load) -> None:
    """No 5xx ever; each operation ended with an answer its kind may get, on its own order."""
    assert not load.failures, load.failures[:10]
    server_errors = [(op.kind, op.answers, op.payload) for op in load.operations
                     if any(status >= 500 for status in op.answers)]
    assert not server_errors, server_errors[:10]
    for op in load.operations:
        customer = load.customers[op.customer]
        label = (op.kind, op.number, op.answers, op.payload)
        if op.final == 422:
            assert op.endpoint in ("payouts", "transfers"), label
            assert op.payload["code"] == "insufficient_funds", label
            continue
        expected_id = order_id_for(UUID(customer.user_id), op.operation, op.key)
        assert op.payload.get("id") == str(expected_id), label
        assert op.payload["amount"] == op.amount, label
        if op.endpoint == "transfers":
            assert (op.final, op.payload["status"]) == (201, "succeeded"), label
            continue
        assert op.final in (201, 202), label
        assert op.payload["wallet_id"] == customer.wallet_id, label
        if op.final == 201:
            assert (op.payload["status"], op.payload["failure_reason"]) == EXPECTED_END[op.kind], label
        else:
            assert op.payload["status"] == "pending", label


def assert_every_order_final_or_dead(deployment: Deployment) -> list[dict[str, Any]]:
    """Every order is succeeded or failed, or its PSP task is a dead letter; no task is left
    to try. Answers the dead letters."""
    letters = deployment.dead_letters()
    dead_orders = {UUID(letter["order_id"]) for letter in letters if letter["order_id"]}
    with psycopg.connect(deployment.database_url, autocommit=True) as conn:
        unfinished = conn.execute("SELECT id, operation, order_id FROM psp_tasks "
                                  "WHERE NOT done AND NOT dead").fetchall()
        pending = conn.execute("SELECT id, type FROM payment_orders WHERE status NOT IN "
                               "('succeeded', 'failed')").fetchall()
    assert unfinished == []
    assert [order for order in pending if order[0] not in dead_orders] == []
    return letters


def assert_every_operation_is_its_order(books: Books, load: Load) -> None:
    """Each operation is exactly one order, of its customer, ending as its kind must end; and
    GoPay made no order of its own but for the PSP's chargebacks."""
    for order_id, op in books.by_operation.items():
        order = books.orders[order_id]
        label = (op.kind, op.final, order)
        assert books.wallet_of(order_id) == op.customer, label
        assert order["amount"] == op.amount, label
        if op.final == 422:
            assert (order["status"], order["failure_reason"]) == ("failed", "insufficient_funds"), label
        elif op.endpoint == "transfers":
            assert order["status"] == "succeeded", label
            assert books.owner[order["payee_wallet_id"]] == op.recipient, label
        else:
            assert (order["status"], order["failure_reason"]) == EXPECTED_END[op.kind], label
    assert set(books.orders) == set(books.by_operation) | set(books.chargebacks)


def assert_the_psp_did_each_order_once(books: Books) -> None:
    """One settlement line per order GoPay asked the PSP about, of its amount, its outcome and
    its PSP reference; none for anything else; one chargeback per disputed charge, each an
    order of its own."""
    lines: dict[UUID, list[dict[str, str]]] = defaultdict(list)
    chargeback_lines: dict[UUID, list[dict[str, str]]] = defaultdict(list)
    for line in books.lines:
        assert line["currency"] == "USD", line
        (chargeback_lines if line["type"] == "chargeback" else lines)[
            UUID(line["merchant_reference"])].append(line)
    assert set(lines) <= set(books.by_operation), "the PSP did work for no order"
    for order_id, op in books.by_operation.items():
        order = books.orders[order_id]
        if op.endpoint == "transfers" or op.final == 422:
            assert order_id not in lines and order_id not in books.called, order
            continue
        assert order_id in books.called, order
        [line] = lines[order_id]  # exactly one charge or payout: nothing done twice
        kind = {"topup": "charge", "payout": "payout"}[order["type"]]
        status = {"succeeded": "settled", "failed": "failed"}[order["status"]]
        assert (line["type"], int(line["amount"]), line["status"], line["psp_reference"]) == (
            kind, order["amount"], status, order["psp_reference"]), (line, order)
    disputed = {order_id for order_id, op in books.by_operation.items()
                if op.kind == "topup_disputed" and books.orders[order_id]["status"] == "succeeded"}
    assert set(chargeback_lines) == disputed
    for topup_id, [line] in chargeback_lines.items():
        chargeback = books.chargebacks[order_id_for(topup_id, "chargeback", line["psp_reference"])]
        assert (chargeback["status"], chargeback["amount"]) == ("succeeded", int(line["amount"]))
        assert chargeback["payer_wallet_id"] == books.orders[topup_id]["payee_wallet_id"]
    assert len(books.chargebacks) == len(chargeback_lines)


def assert_each_order_booked_once(books: Books) -> None:
    """From the events: every entry balanced; every succeeded order booked once; a top-up
    credited once, a payout's hold captured once or (failed at the PSP) released once; a
    chargeback took what its wallet had available and left the rest owed."""
    replayed = books.replayed
    assert replayed.unbalanced_entries == []
    for order_id, order in books.orders.items():
        succeeded = order["status"] == "succeeded"
        assert replayed.succeeded[order_id] == succeeded, order
        if order_id in books.chargebacks:
            available = replayed.chargeback_available[order_id]
            taken = replayed.chargeback_taken[order_id]
            assert taken == min(order["amount"], max(available, 0)), (order, available, taken)
            assert books.owed(order_id) == order["amount"] - taken, order
        elif order["type"] == "topup":
            assert replayed.credits[order_id] == succeeded, order
        elif order["type"] == "payout":
            assert replayed.captures[order_id] == succeeded, order
            failed_at_psp = order_id in books.called and not succeeded
            assert replayed.releases[order_id] == failed_at_psp, order


def assert_wallets_are_what_the_psp_settled(books: Books, load: Load, url: str) -> None:
    """Every wallet: its transfers in and out, plus the PSP's settled charges, less its settled
    payouts and chargebacks, plus what a chargeback could not take (owed instead); no GoPay
    fees (none are configured). The API, the read side and the events all say so."""
    expected = Counter({c.index: 0 for c in load.customers})
    for op in load.operations:
        if op.endpoint == "transfers" and op.final == 201:
            assert op.recipient is not None
            expected[op.customer] -= op.amount
            expected[op.recipient] += op.amount
    sign = {"charge": 1, "payout": -1, "chargeback": -1}
    for line in books.lines:
        if line["status"] == "settled":
            expected[books.wallet_of(UUID(line["merchant_reference"]))] += (
                sign[line["type"]] * int(line["amount"]))
    for order_id in books.chargebacks:
        expected[books.wallet_of(order_id)] += books.owed(order_id)
    with httpx.Client(base_url=url, timeout=30) as http:
        shown = {c.index: http.get("/v1/wallet", headers=c.auth).json() for c in load.customers}
    assert {index: wallet["balance"] for index, wallet in shown.items()} == dict(expected)
    assert {wallet["held"] for wallet in shown.values()} == {0}
    for c in load.customers:
        wallet_id = UUID(c.wallet_id)
        assert books.wallets[wallet_id]["balance"] == expected[c.index]
        replayed = books.replayed.wallets[wallet_id]
        assert (replayed.balance, replayed.held) == (expected[c.index], 0)


def assert_histories_add_up(books: Books) -> None:
    """Each history: one line per movement, balance_after adding up, never below zero, each
    succeeded top-up credited once, no fee lines."""
    running: Counter[UUID] = Counter()
    lines_per_entry: Counter[tuple[UUID, UUID, str]] = Counter()
    for row in books.history:
        running[row["wallet_id"]] += row["amount"] if row["direction"] == "credit" else -row["amount"]
        assert row["balance_after"] == running[row["wallet_id"]] >= 0, row
        assert row["type"] in ("topup", "payout", "transfer"), row
        lines_per_entry[row["wallet_id"], row["entry_id"], row["direction"]] += 1
    assert max(lines_per_entry.values()) == 1, "an order shows twice in a history"
    assert {w: running[w] for w in books.wallets} == {
        w: row["balance"] for w, row in books.wallets.items()}
    for order_id, order in books.orders.items():
        if order["type"] == "topup" and order_id not in books.chargebacks:
            credited = lines_per_entry[order["payee_wallet_id"], order_id, "credit"]
            assert credited == (order["status"] == "succeeded"), order


def assert_ledger_is_what_the_psp_settled(books: Books) -> None:
    """The ledger sums to zero; the read side's accounts equal the events' journal entries; and
    GoPay's own accounts hold what the PSP's file says: its clearing accounts the settled
    charges, payouts and chargebacks with the PSP's fees, the fees account those fees, the
    receivables what chargebacks could not take."""
    projected = {key: amount for key, amount in books.ledger.items() if amount}
    assert projected == {key: amount for key, amount in books.replayed.ledger.items() if amount}
    assert {currency for _, currency in projected} == {"USD"}
    assert sum(projected.values()) == 0
    psp_clearing = payout_clearing = fees = 0
    for line in books.lines:
        if line["status"] != "settled":
            continue
        amount, fee = int(line["amount"]), int(line["fee"])
        fees += fee
        if line["type"] == "charge":
            psp_clearing += fee - amount  # the PSP owes GoPay the charge less its fee
        elif line["type"] == "payout":
            payout_clearing += amount + fee  # GoPay owes the PSP the payout and its fee
        else:
            psp_clearing += amount + fee  # the PSP took the charge back, and a fee
    accounts = {account: projected.get((account.account_id("USD"), "USD"), 0)
                for account in SystemAccount}
    assert accounts == {
        SystemAccount.PSP_CLEARING: psp_clearing, SystemAccount.PAYOUT_CLEARING: payout_clearing,
        SystemAccount.FEES: -fees,
        SystemAccount.RECEIVABLES: -sum(books.owed(order_id) for order_id in books.chargebacks),
        SystemAccount.ADJUSTMENTS: 0, SystemAccount.SUSPENSE: 0}


def assert_logs_clean(deployment: Deployment) -> None:
    """Neither GoPay process hit an error it did not expect (a 500, a task that blew up)."""
    logs = deployment.gopay_logs()
    for sign in ("unexpected error", "failed unexpectedly", "Traceback"):
        assert sign not in logs, logs[logs.index(sign) - 3000:][:6000]


def task_figures(deployment: Deployment) -> dict[str, Any]:
    """PSP tasks by kind (how many, failed attempts, how many needed more than one attempt)
    and the PSP's webhook deliveries."""
    with psycopg.connect(deployment.database_url, autocommit=True) as conn:
        rows = conn.execute("SELECT kind, count(*), sum(attempts), count(*) FILTER "
                            "(WHERE attempts > 0) FROM psp_tasks GROUP BY kind").fetchall()
    deliveries, attempts = deployment.webhook_deliveries()
    return {"tasks": {kind: {"count": count, "failed_attempts": failed, "retried": retried}
                      for kind, count, failed, retried in rows},
            "webhook_deliveries": deliveries, "webhook_delivery_attempts": attempts}


def settle_and_check(deployment: Deployment, load: Load, figures: dict[str, Any]) -> None:
    """Clear the faults, let the PSP work drain, send dead letters round again, check the books."""
    deployment.faults()
    figures["drain_seconds"] = round(deployment.drain(), 1)
    letters = assert_every_order_final_or_dead(deployment)
    figures["dead_letters"] = [(letter["operation"], letter["attempts"], letter["last_error"][:80])
                               for letter in letters]
    if letters:  # what staff do with dead letters once the PSP is well again
        for letter in letters:
            retried = deployment.admin.post(f"/v1/admin/dead-letters/{letter['id']}/retry")
            assert retried.status_code == 200, retried.text
        deployment.drain()
        assert deployment.dead_letters() == []
    checking = time.monotonic()
    books = Books.read(deployment, load)
    assert_every_operation_is_its_order(books, load)
    assert_the_psp_did_each_order_once(books)
    assert_each_order_booked_once(books)
    assert_wallets_are_what_the_psp_settled(books, load, deployment.server.url)
    assert_histories_add_up(books)
    assert_ledger_is_what_the_psp_settled(books)
    assert_logs_clean(deployment)
    figures["check_seconds"] = round(time.monotonic() - checking, 1)
    figures.update(task_figures(deployment))
    figures.update(chargebacks=len(books.chargebacks),
                   chargebacks_short=sum(1 for order_id in books.chargebacks if books.owed(order_id)),
                   owed_to_receivables=sum(books.owed(order_id) for order_id in books.chargebacks),
                   settlement_lines=len(books.lines))
    assert figures["chargebacks_short"] > 0, "no chargeback found a wallet short: none was tested"


@pytest.mark.slow
class TestPspFaultSoak:
    def test_the_books_match_the_psp_after_a_faulty_soak(self, deployment: Deployment) -> None:
        """2,000 operations while the PSP drops 20 % of answers, duplicates 20 % of webhooks and
        delays 10 %: every wallet equals its transfers plus what the PSP settled for it."""
        started = time.monotonic()
        customers = deployment.customers(CUSTOMERS)
        setup = time.monotonic() - started
        deployment.faults(**FAULTS, seed=11)
        load = Load(deployment.server.url, customers, plan(CUSTOMERS, seed=11),
                    CLIENT_THREADS, seed=11).run()
        figures = {"setup_seconds": round(setup, 1), **load.figures()}

        assert_every_answer_expected(load)
        assert figures["answers"].get(202, 0) > 0, "the faults never left an order pending"
        settle_and_check(deployment, load, figures)
        # Every webhook was taken at its first delivery: GoPay never answered the PSP an error.
        assert figures["webhook_delivery_attempts"] == figures["webhook_deliveries"]
        print("fault soak:", figures)  # noqa: T201 - the run's figures, with -s

    def test_kill_9_mid_soak_loses_and_doubles_nothing(self, deployment: Deployment) -> None:
        """The same soak with kill -9 of the API, then of the worker, then of both, each
        restarted at once: clients resend with their keys and the books still match the PSP."""
        started = time.monotonic()
        customers = deployment.customers(CUSTOMERS)
        setup = time.monotonic() - started
        deployment.faults(**FAULTS, seed=12)
        server, worker = deployment.server, deployment.worker
        crashes: dict[str, float] = {}

        def kill_api() -> None:
            started = time.monotonic()
            server.kill()
            server.start()
            crashes["api_down"] = time.monotonic() - started

        def kill_worker() -> None:
            """The API's stand-by runner takes the projections and the PSP job over."""
            started = time.monotonic()
            worker.kill()
            restart(worker, wait=False)
            crashes["worker_restart"] = time.monotonic() - started

        def kill_both() -> None:
            started = time.monotonic()
            server.kill()
            worker.kill()
            restart(worker)
            server.start()
            crashes["both_down"] = time.monotonic() - started

        load = Load(server.url, customers, plan(CUSTOMERS, seed=12), CLIENT_THREADS, seed=12)
        load.run(milestones={500: kill_api, 1_000: kill_worker, 1_500: kill_both})
        figures = {"setup_seconds": round(setup, 1), **load.figures(),
                   **{k: round(v, 1) for k, v in crashes.items()}}

        assert_every_answer_expected(load)
        assert figures["transport_errors"] > 0, "the crashes interrupted no request"
        settle_and_check(deployment, load, figures)
        print("fault soak with kill -9:", figures)  # noqa: T201 - the run's figures, with -s
