"""The event recorder's array-literal insert stores every byte and character as given."""

from __future__ import annotations

import uuid

from eventsourcing.persistence import StoredEvent

from gopay.system import System


def test_a_batch_comes_back_exactly_as_it_was_sent(system: System) -> None:
    """Quotes, backslashes, braces, commas and spaces in topics, and every byte value in
    states, survive the text form of the arrays; notification ids follow the batch's order."""
    recorder = system.app.recorder
    batch = [StoredEvent(uuid.uuid4(), version, topic, state) for version, (topic, state) in
             enumerate([('a"b\\c,{x} y', bytes(range(256))), ("plain:Topic", b""),
                        ("ünïcode:Tøpic", '{"é": 1}'.encode()), ("NULL", b"\\x00")], start=1)]

    ids = recorder.insert_events(batch)

    assert ids is not None and list(ids) == sorted(ids) and len(ids) == len(batch)
    for sent in batch:
        [back] = recorder.select_events(sent.originator_id)
        assert (back.originator_version, back.topic, back.state) == (
            sent.originator_version, sent.topic, sent.state)
