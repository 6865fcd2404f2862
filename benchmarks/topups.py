"""Card top-ups end to end: request → PSP → signed webhook → credited and visible, at 64 clients.

    .venv/bin/python benchmarks/topups.py --clients 64 --seconds 20

Starts a throwaway embedded PostgreSQL, the PSP simulator (`gopay psp-sim`) and `gopay serve`
(with `--projection-worker`, also a `gopay worker`), each its own process, and registers
`--clients` people with the simulator's succeeding test card saved. Then, for `--seconds`:

1. the simulator alone: every client charges the card straight at a simulator of its own, as
   GoPay would (a fresh nonce each time), its webhooks going to a sink that only answers 200:
   the PSP's own ceiling here;
2. GoPay: every client tops up its wallet (`POST /v1/topups`) and reads its wallet until the
   money shows (`GET /v1/wallet`): top-ups/s and the latency until credited and visible.

Both print the CPU each process used during the run, which is where the time goes; at the
end every wallet must hold exactly what its top-ups brought, the simulator must have sent
GoPay a signed `charge.succeeded` for each (the API counts them in
`gopay_psp_webhooks_total`), and pgbench's figure for the plain write is printed beside them.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import sys
import tempfile
import threading
import time
import uuid
import warnings
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import aiohttp
import httpx
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.transfers import pgbench_ceiling
from tests.support import (
    PSP_API_KEY,
    GoPayProcess,
    GoPayServer,
    PspSimulator,
    gopay_env,
    psp_env,
    register,
)

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from gopay.embedded_postgres import EmbeddedPostgres

CARD = {"type": "card", "card": {"number": "4242424242424242", "exp_month": 12,
                                 "exp_year": datetime.now(UTC).year + 3, "cvc": "123",
                                 "holder_name": "Ada Lovelace"}}


@dataclass
class Run:
    """What one phase measured."""

    latencies: list[float] = field(default_factory=list)
    answered: list[float] = field(default_factory=list)  # until the POST's answer, where it differs
    answers: Counter[int] = field(default_factory=Counter)
    seconds: float = 0.0

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.seconds

    def report(self, what: str) -> None:
        quantiles = statistics.quantiles(self.latencies, n=100) if len(self.latencies) > 1 else [0] * 99
        print(f"  {what}/s: {self.rate:,.0f}   p50 {quantiles[49] * 1000:.1f} ms"
              f"   p99 {quantiles[98] * 1000:.1f} ms   answers {dict(self.answers)}")
        if len(self.answered) > 1:
            quantiles = statistics.quantiles(self.answered, n=100)
            print(f"  of which the POST's answer: p50 {quantiles[49] * 1000:.1f} ms"
                  f"   p99 {quantiles[98] * 1000:.1f} ms")


class Sink(BaseHTTPRequestHandler):
    """Takes the lone simulator's webhooks, so that GoPay's run does not inherit them."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def cpu_seconds(processes: dict[str, GoPayProcess]) -> dict[str, float]:
    """CPU time (user + system) used so far by each process and its children."""
    used = {}
    for name, process in processes.items():
        assert process.process is not None
        root = psutil.Process(process.process.pid)
        used[name] = sum(sum(p.cpu_times()[:2]) for p in (root, *root.children(recursive=True)))
    return used


async def charge_simulator(url: str, clients: int, seconds: float) -> Run:
    run = Run()
    headers = {"Authorization": f"Bearer {PSP_API_KEY}"}
    async with aiohttp.ClientSession(url, connector=aiohttp.TCPConnector(limit=clients),
                                     headers=headers) as http:
        deadline = time.perf_counter() + seconds

        async def client() -> None:
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                async with http.post("/v1/charges", json={
                        "nonce": uuid.uuid4().hex, "amount": 1_000, "currency": "USD",
                        "source": {"type": "card", "number": "4242424242424242"}}) as response:
                    await response.read()
                run.answers[response.status] += 1
                if response.status == 201:
                    run.latencies.append(time.perf_counter() - started)

        started = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(clients)))
        run.seconds = time.perf_counter() - started
    return run


async def top_up(url: str, people: list[tuple[str, str]], seconds: float) -> tuple[Run, int]:
    """Each person tops up and reads the wallet until the money shows; the sum topped up."""
    run, total = Run(), 0
    async with aiohttp.ClientSession(url, connector=aiohttp.TCPConnector(limit=len(people)),
                                     timeout=aiohttp.ClientTimeout(total=60)) as http:
        deadline = time.perf_counter() + seconds

        async def client(token: str, method_id: str) -> None:
            nonlocal total
            auth = {"Authorization": f"Bearer {token}"}
            async with http.get("/v1/wallet", headers=auth) as response:
                balance = (await response.json())["balance"]
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                async with http.post("/v1/topups", json={
                        "amount": 1_000, "currency": "USD", "payment_method_id": method_id},
                        headers={**auth, "Idempotency-Key": uuid.uuid4().hex}) as response:
                    await response.read()
                run.answers[response.status] += 1
                if response.status not in (201, 202):
                    continue
                run.answered.append(time.perf_counter() - started)
                while True:  # credited and visible (a 202 waits for the webhook or the retry)
                    async with http.get("/v1/wallet", headers=auth) as response:
                        seen = (await response.json())["balance"]
                    if seen >= balance + 1_000:
                        break
                    await asyncio.sleep(0.05)
                balance = seen
                total += 1_000
                run.latencies.append(time.perf_counter() - started)

        started = time.perf_counter()
        await asyncio.gather(*(client(token, method) for token, method in people))
        run.seconds = time.perf_counter() - started
    return run, total


def webhooks_received(url: str) -> float:
    """charge.succeeded webhooks the API has taken, from its metrics."""
    count = 0.0
    for line in httpx.get(f"{url}/metrics").text.splitlines():
        if line.startswith('gopay_psp_webhooks_total{type="charge.succeeded"}'):
            count += float(line.rsplit(" ", 1)[1])
    return count


def simulator_alone(work: Path, clients: int, seconds: float) -> Run:
    """The simulator's own rate: a simulator of its own, its webhooks going to a sink."""
    sink = ThreadingHTTPServer(("127.0.0.1", 0), Sink)
    threading.Thread(target=sink.serve_forever, daemon=True).start()
    lone = PspSimulator.create(psp_env(work / "lone-sim", f"http://127.0.0.1:{sink.server_port}/"),
                               work / "lone-sim.log").start()
    try:
        before = cpu_seconds({"simulator": lone})
        alone = asyncio.run(charge_simulator(lone.url, clients, seconds))
        used = cpu_seconds({"simulator": lone})
    finally:
        lone.stop()
        sink.shutdown()
    print("the simulator alone (POST /v1/charges):")
    alone.report("charges")
    print(f"  CPU: simulator {(used['simulator'] - before['simulator']) / alone.seconds:.0%}")
    return alone


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--pgbench-seconds", type=int, default=10)
    parser.add_argument("--gopay-only", action="store_true",
                        help="skip the simulator's own run (to profile GoPay's)")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="gopay-bench-topups-"))
    postgres = EmbeddedPostgres(work / "pg").start()
    try:
        api = GoPayServer.create({}, work / "serve.log")
        webhooks = f"{api.url}/v1/psp/webhooks"
        simulator = PspSimulator.create(psp_env(work / "sim", webhooks), work / "sim.log")
        env = {**gopay_env(postgres.url, work / "var"), **psp_env(work / "var", webhooks),
               "GOPAY_PSP_URL": simulator.url, "GOPAY_SERVE_RUNS_PROJECTIONS": "false"}
        api.env = env
        simulator.start()
        worker = GoPayProcess(("worker",), env, work / "worker.log").start()
        api.start()
        processes = {"API": api, "worker": worker, "simulator": simulator}
        try:
            people = []
            for _ in range(args.clients):
                person = register(api.url)
                saved = person.post("/v1/payment-methods", CARD)
                assert saved.status_code == 201, saved.text
                people.append((person.http.headers["Authorization"].split()[1], saved.json()["id"],
                               person))
            print(f"{args.clients} clients, {args.seconds:.0f} s each")

            alone = None if args.gopay_only else simulator_alone(work, args.clients, args.seconds)

            webhooks_before = webhooks_received(api.url)
            before = cpu_seconds(processes)
            run, total = asyncio.run(top_up(api.url, [(t, m) for t, m, _ in people], args.seconds))
            used = cpu_seconds(processes)
            print("GoPay top-ups, until credited and visible:")
            run.report("top-ups")
            print("  CPU: " + ", ".join(f"{name} {(used[name] - before[name]) / run.seconds:.0%}"
                                        for name in processes))
            if alone is not None:
                print(f"  GoPay reaches {run.rate / alone.rate:.0%} of the simulator's own rate")
            balances = sum(person.balance() for _, _, person in people)
            print(f"  wallets hold what was topped up: {balances == total} ({balances:,} minor units)")
            deadline = time.monotonic() + 60
            while webhooks_received(api.url) - webhooks_before < len(run.latencies) \
                    and time.monotonic() < deadline:
                time.sleep(0.5)
            print(f"  charge.succeeded webhooks taken: "
                  f"{webhooks_received(api.url) - webhooks_before:,.0f} of {len(run.latencies):,}")
        finally:
            api.stop()
            worker.stop()
            simulator.stop()
        plain = pgbench_ceiling(postgres.url, args.clients, args.pgbench_seconds, with_lock=False)
        locked = pgbench_ceiling(postgres.url, args.clients, args.pgbench_seconds, with_lock=True)
        print(f"pgbench, the transfer's write, {args.clients} clients: {plain:,.0f} tx/s, "
              f"{locked:,.0f} tx/s with the event table's lock")
    finally:
        postgres.destroy()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
