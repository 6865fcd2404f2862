"""P2P transfers, or QR payments to one merchant, over HTTP against a real GoPay, beside pgbench.

    .venv/bin/python benchmarks/transfers.py --clients 64 --seconds 20 --workers 1
    .venv/bin/python benchmarks/transfers.py --workers 2 --payees 4   # two API processes, hot payees
    .venv/bin/python benchmarks/transfers.py --projection-worker --pay qr   # 64 clients, one merchant
    .venv/bin/python benchmarks/transfers.py --up   # `gopay up`'s own layout, simulator and all

Starts a throwaway embedded PostgreSQL and `gopay serve`, registers and funds wallets, then
`--clients` concurrent clients send transfers between random wallets for `--seconds`. With
`--pay qr` they pay instead one open-amount QR code of a single merchant (`POST
/v1/qr-payments`, each payment with its own Idempotency-Key and an amount the payer enters),
so that every payment credits the same hot wallet. Prints payments per second, p50/p99
latency and every non-2xx answer; then checks that money was conserved, the merchant's
balance included (the benchmark sets no fees).
In the same run pgbench measures the raw ceiling of one transaction inserting two event rows
and updating two balance rows, with and without the event-table lock the eventsourcing
library takes, and the ratio between GoPay and that ceiling.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import warnings
from collections import Counter
from pathlib import Path

import aiohttp
import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.merchants import merchant, qr_code
from tests.support import (
    PASSWORD,
    GoPayProcess,
    GoPayServer,
    free_port,
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


async def drive(url: str, tokens: list[tuple[str, str]], clients: int, seconds: float,
                payees: int, qr_payload: str | None = None) -> tuple[list[float], Counter[int], int]:
    """`clients` concurrent senders, each paying one of the first `payees` wallets, or with
    `qr_payload` that open-amount code; returns latencies of 201s, status counts, payments made.

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
                if qr_payload is None:
                    _, recipient = random.choice(tokens[:payees])
                    token, sender = random.choice(tokens)
                    if sender == recipient:
                        continue
                    path = "/v1/transfers"
                    body = {"recipient": recipient, "amount": random.randint(1, 100),
                            "currency": "USD"}
                else:
                    token, _ = random.choice(tokens)
                    path = "/v1/qr-payments"
                    body = {"qr_payload": qr_payload, "amount": random.randint(1, 100)}
                started = time.perf_counter()
                async with http.post(
                        path, json=body,
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


WRK_SCRIPT = """
local pairs = {pairs}
local payees = {payees}
local run = "{run}"
local qr_payload = "{qr_payload}"
local counter = 0
local thread_id = 0
local next_id = 0

function setup(thread)
  next_id = next_id + 1
  thread:set("thread_id", next_id)
end

function init(args)
  math.randomseed(os.time() * 1000 + thread_id)
end

function request()
  counter = counter + 1
  local sender = pairs[math.random(#pairs)]
  local path, body
  if qr_payload == "" then
    local recipient = pairs[math.random(payees)]
    while recipient[2] == sender[2] do recipient = pairs[math.random(payees)] end
    path = "/v1/transfers"
    body = string.format('{{"recipient":"%s","amount":%d,"currency":"USD"}}',
                         recipient[2], math.random(1, 100))
  else
    path = "/v1/qr-payments"
    body = string.format('{{"qr_payload":"%s","amount":%d}}', qr_payload, math.random(1, 100))
  end
  return wrk.format("POST", path, {{
    ["Authorization"] = "Bearer " .. sender[1],
    ["Content-Type"] = "application/json",
    ["Idempotency-Key"] = string.format("%s-%d-%d", run, thread_id, counter),
  }}, body)
end

function done(summary, latency, requests)
  io.write(string.format(
    'WRK {{"requests":%d,"duration_us":%d,"non2xx":%d,"socket_errors":%d,'
    .. '"p50_us":%d,"p99_us":%d}}\\n',
    summary.requests, summary.duration, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write
      + summary.errors.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"""


def drive_wrk(url: str, tokens: list[tuple[str, str]], clients: int, seconds: float,
              payees: int, qr_payload: str | None = None
              ) -> tuple[float, float, float, dict[str, int], int]:
    """`clients` connections from wrk, a C load generator that leaves the CPU to GoPay; each
    pays one of the first `payees` wallets, or with `qr_payload` that open-amount code.

    Returns payments/s, p50 and p99 in seconds, answers by kind, and payments made.
    """
    pairs = "{" + ",".join(f'{{"{token}","{wallet}"}}' for token, wallet in tokens) + "}"
    script = Path(tempfile.mkstemp(suffix=".lua")[1])
    script.write_text(WRK_SCRIPT.format(pairs=pairs, payees=payees, run=uuid.uuid4().hex[:12],
                                        qr_payload=qr_payload or ""))
    lags.clear()
    stop = threading.Event()

    def watch_lag() -> None:
        while not stop.wait(0.5):
            lags.append(httpx.get(f"{url}/health/ready").json()["projection_lag_seconds"])

    watcher = threading.Thread(target=watch_lag)
    watcher.start()
    try:
        result = subprocess.run(
            ["wrk", "-t", "1", "-c", str(clients), "-d", f"{seconds:.0f}s", "--timeout", "30s",
             "-s", str(script), url], capture_output=True, text=True, check=True)
    finally:
        stop.set()
        watcher.join()
    line = next(line for line in result.stdout.splitlines() if line.startswith("WRK "))
    figures = json.loads(line[4:])
    failed = figures["non2xx"] + figures["socket_errors"]
    made = figures["requests"] - failed
    answers = {"2xx": made, "non-2xx": figures["non2xx"], "socket errors": figures["socket_errors"]}
    return (made / (figures["duration_us"] / 1e6), figures["p50_us"] / 1e6,
            figures["p99_us"] / 1e6, answers, made)


def start_gopay(args: argparse.Namespace, env: dict[str, str], work: Path
                ) -> tuple[GoPayServer, GoPayProcess | None]:
    """The API (and its projection worker, if it has one of its own) in the layout asked for."""
    if args.up:  # what a user runs: the API standing by, its worker, the PSP simulator
        port = free_port()
        return GoPayServer(args=("up", "--host", "127.0.0.1", "--port", str(port),
                                 "--psp-port", str(free_port())),
                           env=env, log_path=work / "up.log", port=port).start(), None
    worker = None
    if args.projection_worker:
        env["GOPAY_SERVE_RUNS_PROJECTIONS"] = "false"
        worker = GoPayProcess(("worker",), env, work / "worker.log").start()
    return GoPayServer.create(env, work / "serve.log", workers=args.workers).start(), worker


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--workers", type=int, default=1, help="API processes")
    parser.add_argument("--wallets", type=int, default=200)
    parser.add_argument("--payees", type=int, default=None,
                        help="pay only the first N wallets (a few hot merchants); default: all")
    parser.add_argument("--up", action="store_true",
                        help="run `gopay up` (API, its worker and the PSP simulator) instead of "
                             "`gopay serve`: the layout users get")
    parser.add_argument("--projection-worker", action="store_true",
                        help="run the projections in a `gopay worker` of their own")
    parser.add_argument("--pay", choices=("transfer", "qr"), default="transfer",
                        help="what the clients pay: transfers between the wallets, or one "
                             "open-amount QR code of a single merchant (a hot wallet)")
    parser.add_argument("--pgbench-seconds", type=int, default=10)
    parser.add_argument("--client", choices=("wrk", "aiohttp"),
                        default="wrk" if shutil.which("wrk") else "aiohttp",
                        help="load generator: wrk (apt-get install wrk) leaves the CPU to "
                             "GoPay; aiohttp tops out near 1,600 requests/s here")
    args = parser.parse_args()
    if args.pay == "qr" and args.payees is not None:
        parser.error("--payees chooses the wallets transfers go to; --pay qr pays one merchant")
    payees = min(args.payees or args.wallets, args.wallets)
    if args.up and (args.projection_worker or args.workers != 1):
        parser.error("--up is its own layout: one API process and its worker")

    work = Path(tempfile.mkdtemp(prefix="gopay-bench-"))
    server_pg = EmbeddedPostgres(work / "pg").start()
    try:
        env = gopay_env(server_pg.url, work / "var")
        api, worker = start_gopay(args, env, work)
        try:
            admin = staff(api.url, env, "admin")
            wallets = [register(api.url) for _ in range(args.wallets)]
            for wallet in wallets:
                fund(admin, wallet.user["wallet_id"], 10_000_000)
            tokens = [(w.http.headers["Authorization"].split()[1], w.user["wallet_id"])
                      for w in wallets]
            shop, qr_payload = None, None
            if args.pay == "qr":
                shop = merchant(api.url, "Hot Merchant")
                qr_payload = qr_code(shop, reference="till 1")["qr_payload"]
            paying = "one merchant by QR" if shop else str(payees)
            paid = ("QR payments to one merchant, one open-amount code" if shop
                    else "transfers between random wallets" if payees == args.wallets
                    else f"transfers from random wallets to the first {payees}")
            print(f"GoPay: {args.clients} clients, {args.workers} API process(es), "
                  f"projections in {'a worker' if worker or args.up else 'the API'}"
                  f"{' (gopay up)' if args.up else ''}, "
                  f"{args.wallets} wallets paying {paying}, {args.seconds:.0f} s")
            if args.client == "wrk":
                rate, p50, p99, answers, made = drive_wrk(api.url, tokens, args.clients,
                                                          args.seconds, payees, qr_payload)
            else:
                started = time.perf_counter()
                latencies, statuses, made = asyncio.run(
                    drive(api.url, tokens, args.clients, args.seconds, payees, qr_payload))
                rate = made / (time.perf_counter() - started)
                quantiles = statistics.quantiles(latencies, n=100)
                p50, p99, answers = quantiles[49], quantiles[98], dict(statuses)
            print(f"  client:          {args.client}")
            print(f"  paid:            {paid}")
            print(f"  {'payments/s:' if shop else 'transfers/s:':<17}{rate:,.0f}")
            print(f"  latency p50/p99: {p50 * 1000:.1f} ms / {p99 * 1000:.1f} ms")
            print(f"  answers:         {answers}")
            payers = [login(api.url, w.user["email"], PASSWORD) for w in wallets]
            received = login(api.url, shop.user["email"], PASSWORD).balance() if shop else 0
            total = sum(payer.balance() for payer in payers) + received
            print(f"  money conserved: {total == 10_000_000 * args.wallets}")
            if shop:
                print(f"  merchant holds:  {received:,} (minor units)")
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
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
