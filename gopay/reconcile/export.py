"""The history file: the whole event log, its chain and signed checkpoints as one verifiable file.

`gopay export PATH` writes a tar of JSON-lines parts (the events, the chain's blocks, the
checkpoints, the wrapped data keys), all read in one snapshot of the store, and a manifest
first: each part's SHA-256, its line count, and the chain's head. `gopay import PATH` loads
such a file into an empty store and keeps it only if every checksum matches, the chain
recomputes to the head the manifest names, the checkpoints are signed with GoPay's key and the
books balance; then it rebuilds the read models from the events. The master keys and the
checkpoint signing key are never in the file: the importing GoPay must be configured with them.
"""

from __future__ import annotations

import hashlib
import json
import os
import tarfile
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import psycopg
from cryptography.exceptions import InvalidTag
from psycopg import Connection
from psycopg.rows import DictRow
from psycopg.sql import SQL, Composed, Identifier

from gopay.application import GoPay
from gopay.progress import Progress, quiet
from gopay.projections.read_side import ReadSide
from gopay.reconcile import audit
from gopay.recorder import HISTORY_COPY, EventRecorder
from gopay.security import data_keys
from gopay.security.keyring import KeyRingError

FORMAT = "gopay-history/1"
MANIFEST = "manifest.json"
# The parts, in the order they are written and loaded.
PARTS = ("events", "chain", "checkpoints", "data_keys")
CHUNK = 1 << 20
# PostgreSQL reads the lines back as it wrote them: no byte of JSON text is quoted or escaped.
LOAD_LINES: Composed = SQL("COPY {} (line) FROM STDIN (FORMAT csv, QUOTE E'\\x01', "
                           "DELIMITER E'\\x02')").format(Identifier("history_lines"))


class HistoryRefused(Exception):
    """The file is not a history GoPay wrote, was changed since, or the store is not empty."""


def export_history(app: GoPay, path: Path, progress: Progress = quiet,
                   signer: audit.Signer | None = None) -> dict[str, Any]:
    """Write the whole history to `path` (replacing it only when complete); its manifest. Given
    GoPay's signer, the chain's head is signed first, so that the file is covered to its end."""
    recorder = _recorder(app)
    if signer is not None:
        audit.checkpoint(app, signer)
    path = Path(path)
    with tempfile.TemporaryDirectory(dir=path.parent, prefix=".gopay-export-") as work:
        parts: dict[str, dict[str, Any]] = {}
        with recorder.snapshot() as conn:
            extent = recorder.chain_extent(conn)
            progress(0, total=int(extent["last"] or 0))
            head = conn.execute(recorder.select_chain_head_statement).fetchone()
            for part in PARTS:
                parts[f"{part}.jsonl"] = _copy_out(conn, _out_statement(recorder, part),
                                                   Path(work) / f"{part}.jsonl",
                                                   progress if part == "events" else quiet)
        manifest = {
            "format": FORMAT, "application": app.name,
            "exported_at": datetime.now(UTC).isoformat(),
            "events": parts["events.jsonl"]["lines"],
            "chain_head": ({"position": int(head["last_position"]), "hash": bytes(head["hash"]).hex()}
                           if head else None),
            "parts": parts,
        }
        (Path(work) / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        partial = Path(work) / "history.tar"
        with tarfile.open(partial, "w", format=tarfile.PAX_FORMAT) as tar:
            for name in (MANIFEST, *parts):  # the manifest first: a reader meets it before the rest
                tar.add(Path(work) / name, arcname=name)
        os.replace(partial, path)
    return manifest


def import_history(app: GoPay, signer: audit.Signer, read_side: ReadSide, path: Path,
                   progress: Progress = quiet) -> dict[str, Any]:
    """Load a history file into this empty store, keep it only if it proves itself, and build
    the read models from it; its manifest. Raises HistoryRefused otherwise, storing nothing."""
    recorder = _recorder(app)
    with _opened(Path(path)) as tar:
        manifest = _manifest(tar)
        progress(0, total=2 * int(manifest["events"]))
        with recorder.datastore.get_connection() as conn, conn.transaction():
            if recorder.stored_anything(conn) or _any_data_key(conn):
                raise HistoryRefused("the store is not empty: import only into a new database")
            conn.execute("CREATE TEMPORARY TABLE history_lines (line text) ON COMMIT DROP")
            for part in PARTS:
                name = f"{part}.jsonl"
                member = tar.extractfile(name)
                assert member is not None  # _manifest checked that every part is a file
                _load(conn, recorder, part, member, manifest["parts"][name],
                      progress if part == "events" else quiet)
            recorder.continue_positions(conn)
            _prove(recorder, conn, signer, manifest)
            _keys_open(app, conn)
    read_side.rebuild(lambda advance=0, *, total=None: progress(advance))
    return manifest


def _copy_out(conn: Connection[DictRow], statement: Composed, target: Path,
              progress: Progress) -> dict[str, Any]:
    """Write what a COPY statement answers to `target`; its checksum, line and byte counts."""
    digest, lines, size = hashlib.sha256(), 0, 0
    with target.open("wb") as out, conn.cursor().copy(statement) as copy:
        for data in copy:
            chunk = bytes(data)
            digest.update(chunk)
            out.write(chunk)
            size += len(chunk)
            added = chunk.count(b"\n")
            lines += added
            progress(added)
    return {"sha256": digest.hexdigest(), "lines": lines, "bytes": size}


def _out_statement(recorder: EventRecorder, part: str) -> Composed:
    if part == "data_keys":
        return SQL(HISTORY_COPY).format(SQL(data_keys.HISTORY_QUERY))
    return recorder.history_out(part)


def _load(conn: Connection[DictRow], recorder: EventRecorder, part: str, member: IO[bytes],
          expected: dict[str, Any], progress: Progress) -> None:
    """Copy one part's lines into the temporary table, check them against the manifest, and
    store them where they belong."""
    digest, lines = hashlib.sha256(), 0
    conn.execute("TRUNCATE history_lines")
    try:
        with conn.cursor().copy(LOAD_LINES) as copy:
            while chunk := member.read(CHUNK):
                digest.update(chunk)
                copy.write(chunk)
                added = chunk.count(b"\n")
                lines += added
                progress(added)
    except psycopg.DataError as error:
        raise HistoryRefused(f"{part}: not lines of a history file ({_first_line(error)})") from None
    if digest.hexdigest() != expected.get("sha256") or lines != expected.get("lines"):
        raise HistoryRefused(f"{part}: the part does not match its checksum in the manifest "
                             "(the file was changed)")
    statement = (SQL(data_keys.HISTORY_LOAD).format(lines=Identifier("history_lines"))
                 if part == "data_keys" else recorder.history_in(part, Identifier("history_lines")))
    try:
        with conn.transaction():
            conn.execute(statement)
    except (psycopg.DataError, psycopg.IntegrityError) as error:
        raise HistoryRefused(f"{part}: lines that cannot be stored ({_first_line(error)})") from None


def _prove(recorder: EventRecorder, conn: Connection[DictRow], signer: audit.Signer,
           manifest: dict[str, Any]) -> None:
    """The loaded history must be one GoPay stored: its chain recomputed, its checkpoints
    signed, its books balanced, and its head the one the manifest names."""
    problems = audit.chain_problems(recorder, conn, signer)
    if problems:
        raise HistoryRefused("the history does not verify: " + "; ".join(problems[:5]))
    head = conn.execute(recorder.select_chain_head_statement).fetchone()
    loaded = {"position": int(head["last_position"]), "hash": bytes(head["hash"]).hex()} if head else None
    if loaded != manifest.get("chain_head"):
        raise HistoryRefused(f"the chain's head is {loaded}, the manifest names "
                             f"{manifest.get('chain_head')}")


def _keys_open(app: GoPay, conn: Connection[DictRow]) -> None:
    """This GoPay's master keys must open the data keys loaded: without them, the personal
    data sealed in the events could never be read again."""
    ring = app.data_keys.key_ring
    for row in conn.execute(data_keys.ONE_PER_MASTER_KEY).fetchall():
        try:
            ring.unwrap(row["master_key_id"], bytes(row["wrapped"]), row["subject_id"].bytes)
        except (KeyRingError, InvalidTag):
            raise HistoryRefused(f"the data keys are wrapped by master key {row['master_key_id']}, "
                                 "which GOPAY_ENCRYPTION_KEYS does not hold") from None


@contextmanager
def _opened(path: Path) -> Iterator[tarfile.TarFile]:
    try:
        with tarfile.open(path, "r:") as tar:
            yield tar
    except (tarfile.TarError, EOFError) as error:
        raise HistoryRefused(f"{path} is not a history file: {error}") from None


def _manifest(tar: tarfile.TarFile) -> dict[str, Any]:
    """The manifest, once it names exactly the parts the file holds, each a plain file."""
    members = {member.name: member for member in tar.getmembers()}
    expected = {MANIFEST, *(f"{part}.jsonl" for part in PARTS)}
    if set(members) != expected or not all(m.isfile() for m in members.values()):
        raise HistoryRefused(f"a history file holds exactly {sorted(expected)}, "
                             f"this one {sorted(members)}")
    source = tar.extractfile(MANIFEST)
    assert source is not None
    try:
        manifest = json.loads(source.read())
    except ValueError:
        raise HistoryRefused("the manifest is not JSON") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise HistoryRefused(f"the manifest is not that of a {FORMAT} file")
    parts = manifest.get("parts")
    if not isinstance(parts, dict) or set(parts) != expected - {MANIFEST} or not all(
            isinstance(p, dict) for p in parts.values()) or not isinstance(manifest.get("events"), int):
        raise HistoryRefused("the manifest does not describe every part")
    return manifest


def _any_data_key(conn: Connection[DictRow]) -> bool:
    row = conn.execute(data_keys.ANY_KEY).fetchone()
    return bool(row and row["stored"])


def _first_line(error: Exception) -> str:
    return str(error).splitlines()[0] if str(error) else type(error).__name__


def _recorder(app: GoPay) -> EventRecorder:
    recorder = app.recorder
    assert isinstance(recorder, EventRecorder)
    return recorder
