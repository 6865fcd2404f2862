"""The auditor's check of the event log: the chain recomputed, its checkpoints' signatures, and
the books and read models compared with what the events say.

Every batch of events is chained as it is stored (`gopay/recorder.py`): a block per batch of
consecutive positions, with each event's digest and a hash over the block before it. Here the
digests are computed again from the stored rows, in one consistent snapshot: an event changed,
removed or moved shows as a digest that does not match at its position; an event no block
covers was added behind GoPay's back; a block whose hash does not follow from the one before
it was forged. A rewrite of the whole chain would be consistent, so checkpoints (the chain's
head at a moment) are signed with a key the database never holds: a chain that no longer
leads to a signed hash, or ends before a signed position, was rewritten or cut.
"""

from __future__ import annotations

import base64
import hashlib
import struct
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from eventsourcing.utils import get_topic
from psycopg import Connection
from psycopg.rows import DictRow

from gopay.aggregates.payment_order import PaymentOrder
from gopay.aggregates.wallet import Wallet
from gopay.application import GoPay
from gopay.projections.read_side import ReadSide
from gopay.recorder import EventRecorder

PAGE = 500


@dataclass(frozen=True)
class Verdict:
    """What the check found; `ok` when everything holds."""

    events_checked: int
    chain_ok: bool
    first_bad_position: int | None
    ledger_balanced: bool
    projections_match: bool
    problems: tuple[str, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return self.chain_ok and self.ledger_balanced and self.projections_match


class Signer:
    """Signs and checks checkpoints with an Ed25519 key held outside the database."""

    def __init__(self, private_key_b64: str) -> None:
        self._key = Ed25519PrivateKey.from_private_bytes(base64.b64decode(private_key_b64))
        public = self._key.public_key().public_bytes_raw()
        self.key_id = hashlib.sha256(public).hexdigest()[:16]

    def sign(self, position: int, chain_hash: bytes) -> bytes:
        return self._key.sign(_checkpoint_message(position, chain_hash))

    def verifies(self, position: int, chain_hash: bytes, signature: bytes) -> bool:
        try:
            self._key.public_key().verify(signature, _checkpoint_message(position, chain_hash))
        except InvalidSignature:
            return False
        return True


def digest(notification_id: int, originator_id: UUID, version: int, topic: str,
           state: bytes) -> bytes:
    """An event's digest, exactly as the recorder has PostgreSQL compute it."""
    topic_bytes = topic.encode()
    return hashlib.sha256(struct.pack(">q", notification_id) + originator_id.bytes
                          + struct.pack(">q", version) + struct.pack(">i", len(topic_bytes))
                          + topic_bytes + bytes(state)).digest()


def checkpoint(app: GoPay, signer: Signer) -> int | None:
    """Sign the chain's head now; the position signed (None while the log is empty)."""
    recorder = _recorder(app)
    head = recorder.chain_head()
    if head is None:
        return None
    head_hash = bytes(head["hash"])
    recorder.keep_checkpoint(head["last_position"], head_hash,
                             signer.sign(head["last_position"], head_hash), signer.key_id)
    return int(head["last_position"])


def verify(app: GoPay, signer: Signer, read_side: ReadSide | None = None) -> Verdict:
    """Check the chain, its checkpoints, the books and (given a read side that is kept current
    elsewhere, or caught up) the read models."""
    recorder = _recorder(app)
    checked, bad, problems = _verify_chain(recorder, signer)
    balanced, _ = _books_balance(app, up_to=None)
    if not balanced:
        problems.append("the ledger does not sum to zero in every currency")
    matching = True
    if read_side is not None:
        mismatches = _projections_mismatch(app, read_side)
        matching = not mismatches
        problems += mismatches
    return Verdict(checked, bad is None and not any(p.startswith("checkpoint") for p in problems),
                   bad, balanced, matching, tuple(problems))


def _verify_chain(recorder: EventRecorder, signer: Signer) -> tuple[int, int | None, list[str]]:
    with recorder.snapshot() as conn:
        return _verify_chain_in(recorder, conn, signer)


def _verify_chain_in(recorder: EventRecorder, conn: Connection[DictRow],
                     signer: Signer) -> tuple[int, int | None, list[str]]:
    problems: list[str] = []
    bad: list[int] = []
    checked = 0
    previous_hash, previous_last = b"", 0
    ends: dict[int, bytes] = {}
    for block in _blocks(recorder, conn):
        stored = recorder.stored_events_between(conn, previous_last, block["last_position"])
        checked += _check_block(block, previous_hash, stored, bad, problems)
        previous_hash, previous_last = bytes(block["hash"]), block["last_position"]
        ends[previous_last] = previous_hash
    beyond = recorder.stored_events_between(conn, previous_last, 2**63 - 1)
    if beyond:
        bad.append(beyond[0]["notification_id"])
        problems.append(f"{len(beyond)} events after the chain's end are covered by no block")
    for signed in recorder.checkpoints(conn):
        position, signed_hash = signed["position"], bytes(signed["hash"])
        if not signer.verifies(position, signed_hash, bytes(signed["signature"])):
            bad.append(position)
            problems.append(f"checkpoint at {position} is not signed by GoPay's key")
        elif position > previous_last:
            bad.append(previous_last + 1)
            problems.append(f"checkpoint: the chain ends at {previous_last}, before the signed "
                            f"position {position} (its tail was cut)")
        elif ends.get(position) != signed_hash:
            bad.append(position)
            problems.append(f"checkpoint: the chain at {position} is not the one signed")
    return checked, min(bad) if bad else None, problems


def _check_block(block: dict[str, Any], previous_hash: bytes, stored: list[dict[str, Any]],
                 bad: list[int], problems: list[str]) -> int:
    """Check one block against the stored events since the block before it; how many held."""
    first, last = block["first_position"], block["last_position"]
    digests = [bytes(d) for d in block["digests"]]
    rows = {row["notification_id"]: row for row in stored}
    strays = [p for p in rows if p < first]  # between the blocks: no block covers them
    if strays:
        bad.append(min(strays))
        problems.append(f"events at {sorted(strays)} are covered by no block")
    if last - first + 1 != len(digests):
        bad.append(first)
        problems.append(f"the block from {first} to {last} does not hold one digest each")
    held = 0
    for position, expected in zip(range(first, last + 1), digests, strict=False):
        row = rows.get(position)
        if row is None:
            bad.append(position)
            problems.append(f"the event at {position} is missing")
        elif digest(position, row["originator_id"], row["originator_version"],
                    row["topic"], row["state"]) != expected:
            bad.append(position)
            problems.append(f"the event at {position} is not what was stored")
        else:
            held += 1
    if hashlib.sha256(previous_hash + b"".join(digests)).digest() != bytes(block["hash"]):
        bad.append(first)
        problems.append(f"the block from {first} does not follow from the one before it")
    return held


def _blocks(recorder: EventRecorder, conn: Connection[DictRow]) -> Iterator[dict[str, Any]]:
    after = 0
    while True:
        page = recorder.chain_blocks(conn, after, PAGE)
        yield from page
        if len(page) < PAGE:
            return
        after = page[-1]["last_position"]


def _books_balance(app: GoPay, up_to: int | None) -> tuple[bool, dict[tuple[UUID, str], int]]:
    """Whether every journal entry in the log sums to zero per currency; each account's total."""
    accounts: dict[tuple[UUID, str], int] = defaultdict(int)
    balanced = True
    for event in _events(app, up_to, PaymentOrder.Succeeded, PaymentOrder.Reversed):
        entry: dict[str, int] = defaultdict(int)
        for posting in event.postings:
            entry[posting["currency"]] += posting["amount"]
            accounts[(UUID(posting["account_id"]), posting["currency"])] += posting["amount"]
        balanced = balanced and not any(entry.values())
    return balanced, dict(accounts)


def _projections_mismatch(app: GoPay, read_side: ReadSide, attempts: int = 5) -> list[str]:
    """Where the read models say something else than the events, compared at one position of
    the log (taken again if the read side moves on while it is being read)."""
    problems: list[str] = []
    for _ in range(attempts):
        position = read_side.position()
        _, accounts = _books_balance(app, up_to=position)
        balances: dict[UUID, int] = {}
        for event in _events(app, position, Wallet.Opened, Wallet.Credited, Wallet.Debited,
                             Wallet.Captured):
            balances[event.originator_id] = getattr(event, "balance_after", 0)
        shown_accounts = read_side.wallets.ledger_accounts()
        shown_balances = read_side.wallets.balances()
        if read_side.position() != position:
            continue
        problems = []
        if ({k: v for k, v in shown_accounts.items() if v}
                != {k: v for k, v in accounts.items() if v}):
            problems.append("ledger accounts in the read model differ from the journal entries")
        if shown_balances != balances:
            problems.append("wallet balances in the read model differ from the wallets' events")
        return problems
    return ["the read side kept moving: compared nothing"]


def _events(app: GoPay, up_to: int | None, *classes: type[Any]) -> Iterator[Any]:
    """The events of these classes up to a position, in log order, decoded."""
    topics = [get_topic(cls) for cls in classes]
    start = 0
    while True:
        page = app.recorder.select_notifications(start=start, limit=2000, stop=up_to,
                                                 topics=topics, inclusive_of_start=False)
        for notification in page:
            yield app.mapper.to_domain_event(notification)
        if len(page) < 2000:
            return
        start = page[-1].id


def _recorder(app: GoPay) -> EventRecorder:
    recorder = app.recorder
    if not isinstance(recorder, EventRecorder):
        raise TypeError("the audit chain is kept by GoPay's PostgreSQL recorder")
    return recorder


def _checkpoint_message(position: int, chain_hash: bytes) -> bytes:
    return b"gopay-checkpoint/v1/" + struct.pack(">q", position) + chain_hash
