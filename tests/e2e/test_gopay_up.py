"""`gopay up` on its embedded default: starts PostgreSQL under var/, serves, stops it again."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.support import PASSWORD, free_port, login, register


def start_up(var_dir: Path, port: int, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    env = {k: v for k, v in os.environ.items() if k != "GOPAY_DATABASE_URL"}
    env["GOPAY_VAR_DIR"] = str(var_dir)
    process = subprocess.Popen([sys.executable, "-m", "gopay", "up", "--port", str(port)],
                               env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        assert process.poll() is None, log.read_text()
        try:
            if httpx.get(f"{url}/health/ready", timeout=1).status_code == 200:
                return process, url
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError(log.read_text())


def stop(process: subprocess.Popen[bytes]) -> int:
    process.send_signal(signal.SIGTERM)
    return process.wait(timeout=60)


class TestGopayUp:
    def test_runs_on_the_embedded_store_and_keeps_its_data(self, tmp_path: Path) -> None:
        """Data written before a stop is there after the next `gopay up`; a stop stops PostgreSQL."""
        var_dir, log = tmp_path / "var", tmp_path / "up.log"
        process, url = start_up(var_dir, free_port(), log)
        try:
            email = register(url).user["email"]
            assert "API docs:" in log.read_text()
        finally:
            assert stop(process) == 0
        assert (var_dir / "postgres" / "PG_VERSION").exists()
        assert not (var_dir / "postgres" / "postmaster.pid").exists(), "PostgreSQL still runs"

        process, url = start_up(var_dir, free_port(), log)
        try:
            assert login(url, email, PASSWORD).get("/v1/wallet").status_code == 200
        finally:
            assert stop(process) == 0
        assert not (var_dir / "postgres" / "postmaster.pid").exists()
