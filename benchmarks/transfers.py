"""P2P transfers over HTTP against a real GoPay, next to PostgreSQL's own ceiling for the same write.

    .venv/bin/python benchmarks/transfers.py --clients 64 --seconds 20 --workers 1

Starts a throwaway embedded PostgreSQL and `gopay serve`, registers and funds wallets, then
`--clients` concurrent clients send transfers between random wallets for `--seconds`. Prints
transfers/s, p50/p99 latency and every non-2xx answer; then checks that money was conserved.
In the same run pgbench measures the raw ceiling of one transaction inserting two event rows
and updating two balance rows, with and without the event-table lock the eventsourcing
library takes, and the ratio between GoPay and that ceiling.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
import warnings
from collections import Counter
from pathlib import Path

import aiohttp
import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support import (
    PASSWORD,
    GoPayProcess,
    GoPayServer,
    fund,
    gopay_env,
    login,
    register,
    staff,
)

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from gopay.embedded_postgres import EmbeddedPostgres, pgbench_path

PGBENCH_SETUP = """
DROP TABLE IF EXISTS bench_events, bench_balances;
CREATE TABLE bench_events (notification_id bigserial PRIMARY KEY, originator_id uuid NOT NULL,
  originator_version bigint NOT NULL, topic text NOT NULL, state bytea NOT NULL);
CREATE TABLE bench_balances (account_id int PRIMARY KEY, balance bigint NOT NULL);
INSERT INTO bench_balances SELECT g, 1000000 FROM generate_series(1, 10000) g;
"""

PGBENCH_TRANSFER = """\\set a random(1, 10000)
\\set b random(1, 10000)
BEGIN;
{lock}
INSERT INTO bench_events (originator_id, originator_version, topic, state) VALUES
  (gen_random_uuid(), 1, 'gopay.aggregates.wallet:Wallet.Debited', '\\x7b7d'),
  (gen_random_uuid(), 1, 'gopay.aggregates.wallet:Wallet.Credited', '\\x7b7d');
UPDATE bench_balances SET balance = balance - 1 WHERE account_id = :a;
UPDATE bench_balances SET balance = balance + 1 WHERE account_id = :b;
END;
"""


def pgbench_ceiling(url: str, clients: int, seconds: int, *, with_lock: bool) -> float:
    """Transactions per second of the bare two-inserts-two-updates write."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(PGBENCH_SETUP)
    script = Path(tempfile.mkstemp(suffix=".sql")[1])
    lock = "LOCK TABLE bench_events IN EXCLUSIVE MODE;" if with_lock else ""
    script.write_text(PGBENCH_TRANSFER.format(lock=lock))
    result = subprocess.run(
        [str(pgbench_path()), "-n", "-c", str(clients), "-j", "2", "-T", str(seconds),
         "-f", str(script), url], capture_output=True, text=True, check=True)
    for line in result.stdout.splitlines():
        if line.startswith("tps"):
            return float(line.split("=")[1].split()[0])
    raise RuntimeError(result.stdout + result.stderr)


lags: list[float] = []  # projection lag seen during the last drive(), in seconds


async def drive(url: str, tokens: list[tuple[str, str]], clients: int, seconds: float
                ) -> tuple[list[float], Counter[int], int]:
    """`clients` concurrent senders; returns latencies of 201s, status counts, transfers made.

    aiohttp, because httpx's async pool tops out near 250 requests/s with 64 connections
    here, which would measure the client instead of GoPay.
    """
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    lags.clear()
    deadline = time.perf_counter() + seconds
    connector = aiohttp.TCPConnector(limit=clients)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(url, connector=connector, timeout=timeout) as http:

        async def client() -> None:
            while time.perf_counter() < deadline:
                (token, _), (_, recipient) = random.sample(tokens, 2)
                started = time.perf_counter()
                async with http.post(
                        "/v1/transfers",
                        json={"recipient": recipient, "amount": random.randint(1, 100),
                              "currency": "USD"},
                        headers={"Authorization": f"Bearer {token}",
                                 "Idempotency-Key": uuid.uuid4().hex}) as response:
                    await response.read()
                statuses[response.status] += 1
                if response.status == 201:
                    latencies.append(time.perf_counter() - started)

        async def watch_lag() -> None:
            """The read side's lag, sampled every half second while the load runs."""
            while time.perf_counter() < deadline:
                async with http.get("/health/ready") as response:
                    body = await response.json()
                    lags.append(body.get("projection_lag_seconds", body.get("lag_seconds", 0.0)))
                await asyncio.sleep(0.5)

        await asyncio.gather(watch_lag(), *(client() for _ in range(clients)))
    return latencies, statuses, len(latencies)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--workers", type=int, default=1, help="API processes")
    parser.add_argument("--wallets", type=int, default=200)
    parser.add_argument("--projection-worker", action="store_true",
                        help="run the projections in a `gopay worker` of their own")
    parser.add_argument("--pgbench-seconds", type=int, default=10)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="gopay-bench-"))
    server_pg = EmbeddedPostgres(work / "pg").start()
    try:
        env = gopay_env(server_pg.url, work / "var")
        worker = None
        if args.projection_worker:
            env["GOPAY_SERVE_RUNS_PROJECTIONS"] = "false"
            worker = GoPayProcess(("worker",), env, work / "worker.log").start()
        api = GoPayServer.create(env, work / "serve.log", workers=args.workers).start()
        try:
            admin = staff(api.url, env, "admin")
            wallets = [register(api.url) for _ in range(args.wallets)]
            for wallet in wallets:
                fund(admin, wallet.user["wallet_id"], 10_000_000)
            tokens = [(w.http.headers["Authorization"].split()[1], w.user["wallet_id"])
                      for w in wallets]
            print(f"GoPay: {args.clients} clients, {args.workers} API process(es), "
                  f"projections in {'a worker' if worker else 'the API'}, "
                  f"{args.wallets} wallets, {args.seconds:.0f} s")
            started = time.perf_counter()
            latencies, statuses, made = asyncio.run(
                drive(api.url, tokens, args.clients, args.seconds))
            elapsed = time.perf_counter() - started
            rate = made / elapsed
            quantiles = statistics.quantiles(latencies, n=100)
            print(f"  transfers/s:     {rate:,.0f}")
            print(f"  latency p50/p99: {quantiles[49] * 1000:.1f} ms / {quantiles[98] * 1000:.1f} ms")
            print(f"  answers:         {dict(statuses)}")
            total = sum(login(api.url, w.user["email"], PASSWORD).balance() for w in wallets)
            print(f"  money conserved: {total == 10_000_000 * args.wallets}")
            print(f"  projection lag:  max {max(lags, default=0):.2f} s during the load, "
                  f"{httpx.get(f'{api.url}/health/ready').json()['projection_lag_seconds']:.2f} s after")
        finally:
            api.stop()
            if worker is not None:
                worker.stop()
        plain = pgbench_ceiling(server_pg.url, args.clients, args.pgbench_seconds, with_lock=False)
        locked = pgbench_ceiling(server_pg.url, args.clients, args.pgbench_seconds, with_lock=True)
        print(f"pgbench, same write, {args.clients} clients:")
        print(f"  no table lock:   {plain:,.0f} tx/s  (GoPay reaches {rate / plain:.0%})")
        print(f"  with table lock: {locked:,.0f} tx/s  (GoPay reaches {rate / locked:.0%})")
    finally:
        server_pg.destroy()


if __name__ == "__main__":
    main()
