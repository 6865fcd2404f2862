"""Auditors over HTTP: the log decoded, any wallet or account as it was, the log's check."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import httpx

from tests.support import Client, GoPayServer, fund, gopay_env, register, run_gopay, staff


def test_an_auditor_replays_what_happened(server: GoPayServer, server_env: dict[str, str],
                                          admin: Client) -> None:
    """Events come oldest first with their digests; a wallet and the adjustments account
    read as they were before a later payment; the log checks out."""
    auditor = staff(server.url, server_env, "auditor")
    person = register(server.url)
    wallet_id = person.user["wallet_id"]
    fund(admin, wallet_id, 5_000)
    time.sleep(0.05)
    moment = datetime.now(UTC).isoformat()
    time.sleep(0.05)
    fund(admin, wallet_id, 700)

    page = auditor.get("/v1/audit/events", params={"aggregate_id": wallet_id}).json()
    types = [e["type"] for e in page["data"]]
    assert types == ["Wallet.Opened", "Wallet.Credited", "Wallet.Credited"]
    positions = [e["position"] for e in page["data"]]
    assert positions == sorted(positions) and all(len(e["hash"]) == 64 for e in page["data"])
    assert page["data"][1]["data"]["amount"] == 5_000

    credited = auditor.get("/v1/audit/events", params={"type": "Credited", "limit": 1}).json()
    assert len(credited["data"]) == 1 and credited["next_after"] is not None

    then = auditor.get(f"/v1/audit/aggregates/{wallet_id}", params={"at": moment}).json()
    assert (then["type"], then["version"], then["state"]["balance"]) == ("Wallet", 2, 5_000)
    by_version = auditor.get(f"/v1/audit/aggregates/{wallet_id}", params={"version": 1}).json()
    assert by_version["state"]["balance"] == 0

    assert auditor.get(f"/v1/audit/balances/{wallet_id}", params={"at": moment}).json()[
        "balance"] == 5_000
    assert auditor.get(f"/v1/audit/balances/{wallet_id}").json()["balance"] == 5_700
    adjustments = auditor.get("/v1/audit/balances/adjustments", params={"at": moment}).json()
    assert adjustments["currency"] == "USD" and adjustments["balance"] <= -5_000

    verdict = auditor.get("/v1/audit/verify").json()
    assert (verdict["chain_ok"], verdict["first_bad_position"], verdict["ledger_balanced"],
            verdict["projections_match"]) == (True, None, True, True), verdict
    assert verdict["events_checked"] > 0


def test_only_auditors_read_the_log(server: GoPayServer, admin: Client) -> None:
    person = register(server.url)
    for client in (person, admin):
        for path in ("/v1/audit/events", "/v1/audit/verify", "/v1/audit/balances/fees"):
            assert client.get(path).status_code == 403
    assert httpx.get(f"{server.url}/v1/audit/verify", timeout=10).status_code == 401


def test_gopay_audit_verify_and_checkpoint_from_the_command_line(server_env: dict[str, str],
                                                                 server: GoPayServer) -> None:
    register(server.url)
    signed = run_gopay("audit", "checkpoint", env=server_env)
    assert "signed the chain at position" in signed.stdout
    checked = run_gopay("audit", "verify", env=server_env)
    assert '"chain_ok": true' in checked.stdout and checked.returncode == 0


def test_a_tampered_log_fails_the_command(postgres_server, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """`gopay audit verify` exits 1 and names the bad position."""
    import subprocess
    import sys

    import psycopg

    from tests.conftest import new_database

    env = gopay_env(new_database(postgres_server), tmp_path / "var")
    server = GoPayServer.create(env, tmp_path / "serve.log").start()
    try:
        register(server.url)
    finally:
        server.stop()
    with psycopg.connect(env["GOPAY_DATABASE_URL"], autocommit=True) as conn:
        conn.execute("UPDATE gopay_events SET state = state || '\\x20'::bytea "
                     "WHERE notification_id = (SELECT min(notification_id) FROM gopay_events)")
    result = subprocess.run([sys.executable, "-m", "gopay", "audit", "verify"], env=env,
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 1, result.stdout + result.stderr
    assert '"chain_ok": false' in result.stdout and '"first_bad_position": 1' in result.stdout


def test_export_and_import_from_the_command_line(server_env: dict[str, str], server: GoPayServer,
                                                 postgres_server, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """`gopay export` then `gopay import` into an empty database: the same chain head, a clean
    verify; quiet in scripts, a progress bar on a terminal; a second import is refused."""
    import os
    import pty
    import subprocess
    import sys

    from tests.conftest import new_database

    register(server.url)
    path = tmp_path / "history.tar"
    exported = run_gopay("export", str(path), env=server_env)
    assert exported.stdout.startswith("exported ") and exported.stderr == ""
    head = exported.stdout.split(", chain head ")[1].strip()

    target = gopay_env(new_database(postgres_server), Path(server_env["GOPAY_VAR_DIR"]))
    imported = run_gopay("import", str(path), env=target)
    assert imported.stdout.strip().endswith(f"chain head {head}") and imported.stderr == ""
    verified = run_gopay("audit", "verify", env=target)
    assert '"chain_ok": true' in verified.stdout and '"projections_match": true' in verified.stdout

    again = subprocess.run([sys.executable, "-m", "gopay", "import", str(path)], env=target,
                           capture_output=True, text=True, timeout=120, check=False)
    assert again.returncode == 1 and "not empty" in again.stderr

    leader, terminal = pty.openpty()
    try:
        subprocess.run([sys.executable, "-m", "gopay", "export", str(tmp_path / "again.tar")],
                       env={**server_env, "TERM": "xterm", "COLUMNS": "100"},
                       stdout=subprocess.DEVNULL, stderr=terminal, timeout=120, check=True)
        drawn = os.read(leader, 65536).decode(errors="replace")
    finally:
        os.close(leader)
        os.close(terminal)
    assert "exporting" in drawn


def test_the_worker_serves_the_integrity_metric(server_env: dict[str, str], tmp_path) -> None:  # type: ignore[no-untyped-def]
    from tests.support import free_port

    port = free_port()
    worker = GoPayServer(args=("worker",), env={**server_env, "GOPAY_WORKER_METRICS_PORT": str(port)},
                         log_path=tmp_path / "worker.log", port=port)
    worker.health_path = "/metrics"
    worker.start()
    try:
        metrics = httpx.get(f"{worker.url}/metrics", timeout=10).text
    finally:
        worker.stop()
    assert "gopay_read_model_drift " in metrics
