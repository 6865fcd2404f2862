"""The history file: export, then import into an empty PostgreSQL, gives the same GoPay; a file
changed in any way, or a store that is not empty, is refused."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import tarfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from gopay.reconcile.audit import verify
from gopay.reconcile.export import HistoryRefused, export_history, import_history
from gopay.settings import Settings
from gopay.system import System, prepare_database
from tests.conftest import new_database
from tests.support import open_wallets, transfer

# What must be the same on both sides: the stored history, and every read model built from it.
TABLES = {
    "gopay_events": "notification_id",
    "gopay_events_chain": "first_position",
    "gopay_events_checkpoints": "position",
    "data_keys": "subject_id",
    "wallets": "wallet_id",
    "wallet_transactions": "wallet_id, seq",
    "payment_orders": "id",
    "ledger_accounts": "account_id, currency",
    "users": "id",
}


@pytest.fixture
def history(system: System) -> System:
    """Wallets, funding and transfers (personal data sealed with data keys), signed."""
    alice, bob = open_wallets(system.commands, 2, 10_000)
    for amount in (100, 250):
        transfer(system.commands, alice, bob, amount)
    transfer(system.commands, bob, alice, 30)
    system.customers = (alice, bob)  # type: ignore[attr-defined]
    system.read_side.catch_up()
    return system


@pytest.fixture
def empty(postgres_server, settings: Settings) -> Iterator[System]:  # type: ignore[no-untyped-def]
    """A GoPay on a new, empty database, with the same keys (the same var folder)."""
    url = new_database(postgres_server)
    target_settings = settings.model_copy(update={"database_url": url})
    prepare_database(target_settings, url)
    target = System.connect(target_settings, url)
    yield target
    target.close()


def rows(database_url: str, table: str, order: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(database_url) as conn:
        return conn.execute(f"SELECT * FROM {table} ORDER BY {order}").fetchall()  # noqa: S608


def url(system: System) -> str:
    assert system.settings.database_url is not None
    return system.settings.database_url


def test_an_imported_history_is_the_same_gopay(history: System, empty: System,
                                               tmp_path: Path) -> None:
    """Identical events, chain, checkpoints, balances and histories; the chain head the file
    names; verify is clean; and the imported GoPay goes on taking commands after it."""
    path = tmp_path / "history.tar"
    exported = export_history(history.app, path, signer=history.signer)
    imported = import_history(empty.app, empty.signer, empty.read_side, path)

    assert imported == exported
    assert exported["events"] == history.app.recorder.max_notification_id()
    head = empty.app.recorder.chain_head()
    assert head is not None and head == history.app.recorder.chain_head()
    assert exported["chain_head"] == {"position": head["last_position"], "hash": head["hash"].hex()}
    for table, order in TABLES.items():
        assert rows(url(empty), table, order) == rows(url(history), table, order), table
    assert empty.read_side.wallets.balances() == history.read_side.wallets.balances()
    verdict = verify(empty.app, empty.signer, empty.read_side)
    assert verdict.ok, verdict.problems

    alice, bob = history.customers  # type: ignore[attr-defined]
    assert transfer(empty.commands, alice, bob, 7) == "succeeded"
    empty.read_side.catch_up()
    assert empty.read_side.wallets.wallet(bob.wallet_id)["balance"] == 10_000 + 350 - 30 + 7
    assert verify(empty.app, empty.signer, empty.read_side).ok


def test_a_store_that_is_not_empty_is_refused(history: System, tmp_path: Path) -> None:
    path = tmp_path / "history.tar"
    export_history(history.app, path)
    before = rows(url(history), "gopay_events", "notification_id")
    with pytest.raises(HistoryRefused, match="not empty"):
        import_history(history.app, history.signer, history.read_side, path)
    assert rows(url(history), "gopay_events", "notification_id") == before


def change_a_byte(parts: dict[str, bytes]) -> None:
    """A space added to one event's line, the manifest left as it was."""
    lines = parts["events.jsonl"].splitlines(keepends=True)
    changed = lines[7].replace(b"}", b" }", 1)
    assert changed != lines[7]
    lines[7] = changed
    parts["events.jsonl"] = b"".join(lines)


def rewrite_an_event_and_its_checksums(parts: dict[str, bytes]) -> None:
    """An event's amount changed, and the manifest's checksum recomputed to match: only the
    chain (and its signed checkpoint) can tell."""
    lines = parts["events.jsonl"].splitlines(keepends=True)
    for index, line in enumerate(lines):
        event = json.loads(line)
        state = base64.b64decode(event["state"])
        if b'"amount":250' in state:
            event["state"] = base64.b64encode(state.replace(b'"amount":250', b'"amount":25')).decode()
            lines[index] = json.dumps(event).encode() + b"\n"
            break
    else:
        raise AssertionError("no event of 250")
    parts["events.jsonl"] = b"".join(lines)
    manifest = json.loads(parts["manifest.json"])
    manifest["parts"]["events.jsonl"]["sha256"] = hashlib.sha256(parts["events.jsonl"]).hexdigest()
    parts["manifest.json"] = json.dumps(manifest).encode()


def drop_a_part(parts: dict[str, bytes]) -> None:
    del parts["checkpoints.jsonl"]


@pytest.mark.parametrize(("tamper", "why"), [
    (change_a_byte, "does not match its checksum"),
    (rewrite_an_event_and_its_checksums, "does not verify: the events at"),
    (drop_a_part, "holds exactly"),
], ids=["change_a_byte", "rewrite_an_event_and_its_checksums", "drop_a_part"])
def test_a_changed_file_is_refused_and_nothing_is_stored(
        history: System, empty: System, tmp_path: Path,
        tamper: Callable[[dict[str, bytes]], None], why: str) -> None:
    path = tmp_path / "history.tar"
    export_history(history.app, path, signer=history.signer)
    with tarfile.open(path) as tar:
        parts = {m.name: tar.extractfile(m).read() for m in tar.getmembers()}  # type: ignore[union-attr]
    tamper(parts)
    with tarfile.open(path, "w") as tar:
        for name, data in parts.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))

    with pytest.raises(HistoryRefused, match=why):
        import_history(empty.app, empty.signer, empty.read_side, path)
    for table in ("gopay_events", "gopay_events_chain", "gopay_events_checkpoints", "data_keys",
                  "wallets"):
        assert rows(url(empty), table, "1") == [], table


def test_a_gopay_without_the_master_keys_is_refused(history: System, postgres_server,  # type: ignore[no-untyped-def]
                                                    settings: Settings, tmp_path: Path) -> None:
    """Importing where the data keys cannot be opened would lose every sealed personal field."""
    from gopay.security.keyring import KeyRing

    path = tmp_path / "history.tar"
    export_history(history.app, path, signer=history.signer)
    other_url = new_database(postgres_server)
    other_settings = settings.model_copy(update={"database_url": other_url,
                                                 "encryption_keys": KeyRing.new_entry()})
    prepare_database(other_settings, other_url)
    other = System.connect(other_settings, other_url)
    try:
        with pytest.raises(HistoryRefused, match="GOPAY_ENCRYPTION_KEYS"):
            import_history(other.app, other.signer, other.read_side, path)
        assert rows(other_url, "gopay_events", "1") == []
    finally:
        other.close()
