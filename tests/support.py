"""Helpers for tests that talk to GoPay the way clients do: real processes over HTTP."""

from __future__ import annotations

import itertools
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from pathlib import Path
from typing import Any, Self

import httpx

from gopay.aggregates.money import Money
from gopay.aggregates.wallet import Wallet
from gopay.application import GoPay
from gopay.commands import Commands
from gopay.commands.adjustment import Adjust, Direction
from gopay.commands.registration import Register
from gopay.commands.transfer import Transfer

PASSWORD = "correct horse battery"
SECRET_KEY = "test-signing-key-that-is-long-enough-for-hs256"
# Limits no test reaches unless it is about limits (those run with the real defaults).
NO_LIMIT = {"per_payment": 10**18, "per_day": 10**18, "max_balance": 10**18}
UNLIMITED = json.dumps({"unverified": NO_LIMIT, "verified": NO_LIMIT})


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def gopay_env(database_url: str, var_dir: Path, **extra: str) -> dict[str, str]:
    env = {**os.environ, "GOPAY_DATABASE_URL": database_url, "GOPAY_VAR_DIR": str(var_dir),
           "GOPAY_SECRET_KEY": SECRET_KEY, "GOPAY_KYC_LIMITS": UNLIMITED}
    env.update(extra)
    return env


def run_gopay(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gopay", *args], env=env, text=True,
                          capture_output=True, timeout=120, check=True)


@dataclass
class GoPayProcess:
    """`gopay serve` or `gopay worker` in a process of its own, started and killed by a test."""

    args: tuple[str, ...]
    env: dict[str, str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> GoPayProcess:
        log = self.log_path.open("ab")
        self.process = subprocess.Popen([sys.executable, "-m", "gopay", *self.args], env=self.env,
                                        stdout=log, stderr=subprocess.STDOUT,
                                        start_new_session=True)
        return self

    def kill(self) -> None:
        """kill -9 the process and every process it started (uvicorn workers)."""
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()


@dataclass
class GoPayServer(GoPayProcess):
    port: int = field(default_factory=free_port)
    # What answers 200 once the server is up.
    health_path = "/health/live"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @classmethod
    def create(cls, env: dict[str, str], log_path: Path, workers: int = 1) -> GoPayServer:
        port = free_port()
        args = ("serve", "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers))
        return cls(args=args, env=env, log_path=log_path, port=port)

    def start(self) -> Self:
        super().start()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"gopay {self.args[0]} exited:\n{self.log_path.read_text()}")
            try:
                if httpx.get(f"{self.url}{self.health_path}", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"gopay {self.args[0]} did not start:\n{self.log_path.read_text()}")


PSP_API_KEY = "sk_sim_test"
PSP_WEBHOOK_SECRET = "whsec_test_secret"


@dataclass
class PspSimulator(GoPayServer):
    """`gopay psp-sim` in a process of its own; its books live under the env's GOPAY_VAR_DIR."""

    health_path = "/health"

    @classmethod
    def create(cls, env: dict[str, str], log_path: Path, *options: str) -> PspSimulator:  # type: ignore[override]
        port = free_port()
        args = ("psp-sim", "--host", "127.0.0.1", "--port", str(port), *options)
        return cls(args=args, env=env, log_path=log_path, port=port)


def psp_env(var_dir: Path, webhook_url: str, **extra: str) -> dict[str, str]:
    """The environment of a simulator (and of the GoPay that talks to it) for tests."""
    env = {**os.environ, "GOPAY_VAR_DIR": str(var_dir), "GOPAY_PSP_API_KEY": PSP_API_KEY,
           "GOPAY_PSP_WEBHOOK_SECRET": PSP_WEBHOOK_SECRET, "GOPAY_PSP_WEBHOOK_URL": webhook_url}
    env.update(extra)
    return env


class Client:
    """A GoPay API client for tests: one signed-in user (or nobody)."""

    def __init__(self, base_url: str, token: str | None = None) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.http = httpx.Client(base_url=base_url, headers=headers, timeout=30)
        self.base_url = base_url
        self.user: dict[str, Any] = {}
        self.refresh_token: str | None = None

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.http.get(path, **kwargs)

    def post(self, path: str, json: Any = None, key: str | None = None,
             headers: dict[str, str] | None = None, **kwargs: Any) -> httpx.Response:
        headers = {**(headers or {}), **({"Idempotency-Key": key} if key else {})}
        return self.http.post(path, json=json, headers=headers, **kwargs)

    def balance(self) -> int:
        response = self.get("/v1/wallet")
        assert response.status_code == 200, response.text
        return response.json()["balance"]

    def history(self) -> list[dict[str, Any]]:
        rows, cursor = [], None
        while True:
            params = {"limit": 200, **({"cursor": cursor} if cursor else {})}
            page = self.get("/v1/wallet/transactions", params=params).json()
            rows += page["data"]
            cursor = page["next_cursor"]
            if cursor is None:
                return rows


# Numbers one process hands out never repeat; a random start keeps processes apart. (The
# leading digits of a random uuid's integer took far fewer values: two of 200 could collide.)
_phone_numbers = itertools.count(secrets.randbelow(5_000_000))


def unique_phone() -> str:
    return f"+1202{next(_phone_numbers) % 10_000_000:07d}"


def register(base_url: str, kind: str = "person", currency: str = "USD",
             **fields: Any) -> Client:
    """Register a customer and sign them in."""
    email = fields.pop("email", f"{uuid.uuid4().hex[:12]}@example.com")
    body = {"email": email, "password": PASSWORD, "full_name": "Test Person",
            "phone": unique_phone(), "country": "US", "kind": kind, "currency": currency,
            **fields}
    response = httpx.post(f"{base_url}/v1/auth/register", json=body, timeout=30)
    assert response.status_code == 201, response.text
    client = login(base_url, email)
    client.user = response.json()
    return client


def login(base_url: str, email: str, password: str = PASSWORD) -> Client:
    response = httpx.post(f"{base_url}/v1/auth/login",
                          json={"email": email, "password": password}, timeout=30)
    assert response.status_code == 200, response.text
    client = Client(base_url, response.json()["access_token"])
    client.refresh_token = response.json()["refresh_token"]
    return client


def staff(base_url: str, env: dict[str, str], role: str = "admin") -> Client:
    """Create a staff member with the `gopay staff create` command and sign them in."""
    email = f"{role}-{uuid.uuid4().hex[:8]}@gopay.example"
    run_gopay("staff", "create", "--email", email, "--password", PASSWORD, "--role", role, env=env)
    return login(base_url, email)


def fund(admin: Client, wallet_id: str, amount: int, currency: str = "USD") -> None:
    response = admin.post("/v1/admin/adjustments", {
        "wallet_id": wallet_id, "direction": "credit", "amount": amount, "currency": currency,
        "reason": "test funding"})
    assert response.status_code == 201, response.text


# In-process helpers: GoPay's commands run directly, as an API process runs them.

ADMIN = Register(email="admin@gopay.example", password="x" * 12, kind="staff",
                 full_name="Admin", role="admin")


def open_wallets(commands: Commands, count: int, funds: int) -> list:
    admin = commands.run(ADMIN).value
    users = [commands.run(Register(email=f"{uuid.uuid4().hex[:8]}@example.com",
                                   password="x" * 12, kind="person", full_name="P",
                                   phone=None, country="US")).value for _ in range(count)]
    for user in users:
        commands.run(Adjust(caller_id=admin.id, wallet_id=user.wallet_id,
                            direction=Direction.CREDIT, money=Money(funds, "USD"),
                            reason="funding", fingerprint="f"))
    return users


def transfer(commands: Commands, sender, recipient, amount: int, *, note: str = "",  # type: ignore[no-untyped-def]
             key: str | None = None) -> str:
    """Send `amount` from one user to another; the order's status."""
    return commands.run(Transfer(caller_id=sender.id, sender_wallet_id=sender.wallet_id,
                                 recipient=recipient.email, money=Money(amount, "USD"),
                                 note=note, idempotency_key=key, fingerprint="f")).value.status


def balance(app: GoPay, wallet_id: uuid.UUID) -> int:
    wallet = app.find(wallet_id, Wallet)
    assert wallet is not None
    return wallet.balance


class Mailbox:
    """An aiosmtpd handler that keeps every message it receives (a real SMTP server's inbox)."""

    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def handle_DATA(  # noqa: N802 - aiosmtpd's name for it
        self, server, session, envelope) -> str:  # type: ignore[no-untyped-def]
        self.messages.append(message_from_bytes(envelope.content))
        return "250 OK"

    def to(self, email: str) -> list[Message]:
        return [message for message in self.messages if message["To"] == email]

    def token_for(self, email: str, timeout: float = 20) -> str:
        """The token of the latest recovery link e-mailed to `email`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for message in reversed(self.to(email)):
                # The latest e-mail holding a recovery link: other notices (multipart, text
                # and HTML) may have reached the same person since.
                for part in message.walk():
                    if part.get_content_type() == "text/plain":
                        body = part.get_payload(decode=True).decode()  # type: ignore[union-attr]
                        found = re.search(r"^ +([0-9a-f-]{36}\.\S+)", body, re.MULTILINE)
                        if found:
                            return found.group(1)
            time.sleep(0.1)
        raise AssertionError(f"no e-mail reached {email}")
