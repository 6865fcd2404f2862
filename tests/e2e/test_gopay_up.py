"""`gopay up` on its embedded default: starts PostgreSQL under var/, serves, stops it again."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.support import PASSWORD, Client, free_port, login, register


def start_up(var_dir: Path, port: int, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GOPAY_")}
    env["GOPAY_VAR_DIR"] = str(var_dir)
    process = subprocess.Popen([sys.executable, "-m", "gopay", "up", "--port", str(port),
                                "--psp-port", str(free_port())],
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
            person = register(url)
            email = person.user["email"]
            assert "API docs:" in log.read_text()
            assert f"Admin dashboard:  {url}/admin" in log.read_text()
            landing = httpx.get(url, follow_redirects=True, timeout=10)
            assert (landing.status_code, landing.url.path) == (200, "/admin/login")
            assert _top_up_with_a_card(person) == "succeeded"  # the bundled PSP simulator
            assert sorted(_children(process.pid)) == ["psp-sim", "worker"]
        finally:
            assert stop(process) == 0
        assert _children(process.pid) == []
        assert (var_dir / "postgres" / "PG_VERSION").exists()
        assert not (var_dir / "postgres" / "postmaster.pid").exists(), "PostgreSQL still runs"

        process, url = start_up(var_dir, free_port(), log)
        try:
            assert login(url, email, PASSWORD).get("/v1/wallet").status_code == 200
        finally:
            assert stop(process) == 0
        assert not (var_dir / "postgres" / "postmaster.pid").exists()


def _top_up_with_a_card(person: Client) -> str:
    card = person.post("/v1/payment-methods", {"type": "card", "card": {
        "number": "4242424242424242", "exp_month": 12, "exp_year": 2031, "cvc": "123",
        "holder_name": "Ada Lovelace"}})
    assert card.status_code == 201, card.text
    topped = person.post("/v1/topups", {"amount": 1_000, "currency": "USD",
                                        "payment_method_id": card.json()["id"]})
    assert topped.status_code in (201, 202), topped.text
    assert person.balance() == (1_000 if topped.json()["status"] == "succeeded" else 0)
    return str(topped.json()["status"])


def _children(pid: int) -> list[str]:
    """The `gopay` commands `gopay up` started beside itself, still running."""
    found = []
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            fields = dict(line.split(":\t", 1) for line in status.read_text().splitlines()
                          if ":\t" in line)
            if int(fields.get("PPid", "0")) == pid:
                command = (status.parent / "cmdline").read_bytes().split(b"\0")
                found.append(command[3].decode() if len(command) > 3 else "")
        except (OSError, ValueError):
            continue
    return found
