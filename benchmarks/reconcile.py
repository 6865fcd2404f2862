"""Reconciling a settlement file of a million lines: time and peak memory of `gopay reconcile`.

    .venv/bin/python benchmarks/reconcile.py --lines 1000000

Starts a throwaway embedded PostgreSQL (or uses GOPAY_DATABASE_URL), fills the read model
reconciliation reads (`psp_orders`) with `--lines` settled top-ups and payouts of today
directly with COPY, as the projection of that many orders leaves it (projecting them is the
read side's benchmark, not this one), and writes the PSP's settlement file of those orders
with about 1 % of discrepancies of every kind. Then it runs `gopay reconcile FILE` as a
process of its own and reports its wall time and peak resident memory (the kernel's count,
from wait4), and checks the summary against the discrepancies it made.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
import warnings
from datetime import UTC, datetime
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gopay.settings import Settings
from gopay.system import prepare_database

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from gopay.embedded_postgres import EmbeddedPostgres

HEADER = "psp_reference,merchant_reference,type,amount,currency,fee,status,settled_at\n"


def seed(url: str, lines: int, path: Path, rng: random.Random) -> dict[str, int]:
    """The ledger's orders (COPY) and the PSP's file of them, with discrepancies; their counts."""
    expected = dict.fromkeys(("matched", "missing_in_ledger", "missing_in_psp",
                              "amount_mismatch", "status_mismatch", "fee_mismatch",
                              "duplicates"), 0)
    now = datetime.now(UTC)
    day, at = now.date(), now.replace(hour=0, minute=0, second=0, microsecond=0)
    settled = at.strftime("%Y-%m-%dT%H:%M:%S")
    with psycopg.connect(url) as conn, conn.cursor() as cursor, path.open("w") as file:
        file.write(HEADER)
        with cursor.copy("COPY psp_orders (order_id, kind, amount, currency, status, "
                         "psp_reference, psp_fee, day, created_at) FROM STDIN") as copy:
            for n in range(lines):
                order_id = uuid.uuid4()
                kind = "payout" if n % 10 == 0 else "charge"
                amount = rng.randint(100, 500_000)
                fee = 25 if kind == "payout" else amount * 29 // 1000 + 30
                reference = f"{kind[:2]}_{order_id.hex[:24]}"
                copy.write_row((order_id, kind, amount, "USD", "succeeded", reference, fee, day, at))
                line = [reference, str(order_id), kind, amount, "USD", fee, "settled",
                        f"{settled}.{n % 1_000_000:06d}Z"]
                roll = rng.random()
                if roll < 0.002:
                    expected["missing_in_psp"] += 1
                    continue
                if roll < 0.004:
                    line[3] = amount + 1
                    expected["amount_mismatch"] += 1
                elif roll < 0.006:
                    line[5] = fee + 1
                    expected["fee_mismatch"] += 1
                elif roll < 0.008:
                    line[6] = "failed"
                    expected["status_mismatch"] += 1
                else:
                    expected["matched"] += 1
                file.write(",".join(map(str, line)) + "\n")
                if 0.008 <= roll < 0.010:
                    file.write(",".join(map(str, line)) + "\n")
                    expected["duplicates"] += 1
                if 0.010 <= roll < 0.012:
                    stranger = uuid.uuid4()
                    file.write(f"ch_{stranger.hex[:24]},{stranger},charge,{amount},USD,{fee},"
                               f"settled,{settled}Z\n")
                    expected["missing_in_ledger"] += 1
        conn.commit()
    return expected


def postgres_cpu(server: EmbeddedPostgres | None) -> float:
    """CPU seconds of the postmaster and of its ended children (the backends), or 0."""
    if server is None:
        return 0.0
    pid = (server.data_dir / "postmaster.pid").read_text().split()[0]
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(tick) for tick in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=13)
    options = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="gopay-bench-reconcile-"))
    server = None
    try:
        url = os.environ.get("GOPAY_DATABASE_URL")
        if not url:
            server = EmbeddedPostgres(work / "postgres").start()
            url = server.url
        settings = Settings(database_url=url, var_dir=work / "var")
        prepare_database(settings, url)
        path = work / "settlement.csv"
        started = time.monotonic()
        expected = seed(url, options.lines, path, random.Random(options.seed))
        print(f"seeded {options.lines:,} orders and a {path.stat().st_size / 2**20:.0f} MiB file "
              f"in {time.monotonic() - started:.0f} s")

        env = {**os.environ, "GOPAY_DATABASE_URL": url, "GOPAY_VAR_DIR": str(work / "var")}
        time.sleep(1)  # the seeding's backend ends and is counted before the run
        postgres_before = postgres_cpu(server)
        started = time.monotonic()
        # Its output goes to files, not pipes: wait4 (for the peak memory) reads nothing, and
        # a pipe it filled would stop the process.
        with (work / "out").open("wb") as stdout, (work / "err").open("wb") as stderr:
            process = subprocess.Popen([sys.executable, "-m", "gopay", "reconcile", str(path)],
                                       env=env, stdout=stdout, stderr=stderr)
            _, status, usage = os.wait4(process.pid, 0)
        elapsed = time.monotonic() - started
        time.sleep(1)  # the run's backends end and the postmaster counts them
        postgres = postgres_cpu(server) - postgres_before
        out, err = (work / "out").read_text(), (work / "err").read_text()
        if os.waitstatus_to_exitcode(status) != 0:
            raise SystemExit(f"gopay reconcile failed:\n{out}\n{err}")
        summary = json.loads(out)["summary"]
        print(f"gopay reconcile: {elapsed:.1f} s, peak memory {usage.ru_maxrss / 1024:.0f} MiB, "
              f"{options.lines / elapsed:,.0f} lines/s; CPU {usage.ru_utime + usage.ru_stime:.1f} s "
              f"(user {usage.ru_utime:.1f} s), PostgreSQL's {postgres:.1f} s; load average "
              f"{' '.join(f'{load:.1f}' for load in os.getloadavg())}")
        print(f"summary {summary}")
        if summary != expected:
            raise SystemExit(f"the summary is not what the file holds: expected {expected}")
    finally:
        if server is not None:
            server.destroy()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
