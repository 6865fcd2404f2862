"""The event log is tamper-evident: whatever is done to it directly in SQL, the check says where."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import psycopg
import pytest

from gopay.projections.wallets import Books
from gopay.reconcile.audit import Signer, checkpoint, verify
from gopay.system import System
from tests.support import open_wallets, transfer

Tamper = Callable[[psycopg.Connection[Any]], int]  # does something, answers the position to name


@pytest.fixture
def history(system: System) -> System:
    """Wallets, funding and transfers: a few dozen events in several blocks."""
    alice, bob = open_wallets(system.commands, 2, 10_000)
    for amount in (100, 200, 300):
        transfer(system.commands, alice, bob, amount)
    system.customers = (alice, bob)  # type: ignore[attr-defined]  # for tests that go on
    return system


def positions(conn: psycopg.Connection[Any]) -> list[int]:
    return [row[0] for row in conn.execute("SELECT notification_id FROM gopay_events "
                                           "ORDER BY notification_id")]


def change_a_state(conn: psycopg.Connection[Any]) -> int:
    position = positions(conn)[7]
    conn.execute("UPDATE gopay_events SET state = state || '\\x20'::bytea "
                 "WHERE notification_id = %s", (position,))
    return position


def change_a_topic(conn: psycopg.Connection[Any]) -> int:
    position = positions(conn)[9]
    conn.execute("UPDATE gopay_events SET topic = topic || ' ' WHERE notification_id = %s",
                 (position,))
    return position


def delete_one(conn: psycopg.Connection[Any]) -> int:
    position = positions(conn)[5]
    conn.execute("DELETE FROM gopay_events WHERE notification_id = %s", (position,))
    return position


def swap_two(conn: psycopg.Connection[Any]) -> int:
    a, b = positions(conn)[3], positions(conn)[11]
    conn.execute("UPDATE gopay_events SET notification_id = -1 WHERE notification_id = %s", (a,))
    conn.execute("UPDATE gopay_events SET notification_id = %s WHERE notification_id = %s", (a, b))
    conn.execute("UPDATE gopay_events SET notification_id = %s WHERE notification_id = -1", (b,))
    return a


def forge_an_insert(conn: psycopg.Connection[Any]) -> int:
    last = positions(conn)[-1]
    conn.execute("INSERT INTO gopay_events (originator_id, originator_version, topic, state, "
                 "notification_id) SELECT gen_random_uuid(), 1, topic, state, %s "
                 "FROM gopay_events WHERE notification_id = %s", (last + 1, last))
    return last + 1


def cut_the_tail(conn: psycopg.Connection[Any]) -> int:
    """The last batches and their blocks go: only a checkpoint signed before can tell."""
    [(first_gone,)] = conn.execute(
        "SELECT first_position FROM gopay_events_chain ORDER BY last_position DESC LIMIT 1 "
        "OFFSET 1").fetchall()
    conn.execute("DELETE FROM gopay_events WHERE notification_id >= %s", (first_gone,))
    conn.execute("DELETE FROM gopay_events_chain WHERE first_position >= %s", (first_gone,))
    return first_gone


def rewrite_the_whole_chain(conn: psycopg.Connection[Any]) -> int:
    """An event changed, and every block recomputed to match: consistent, but not what was signed."""
    position = change_a_state(conn)
    previous = b""
    for first, last in conn.execute("SELECT first_position, last_position "
                                    "FROM gopay_events_chain ORDER BY first_position").fetchall():
        digests = [row[0] for row in conn.execute(
            "SELECT sha256(int8send(notification_id) || uuid_send(originator_id) || "
            "int8send(originator_version) || int4send(octet_length(topic)) || "
            "convert_to(topic, 'UTF8') || state) FROM gopay_events "
            "WHERE notification_id BETWEEN %s AND %s ORDER BY notification_id", (first, last))]
        previous = hashlib.sha256(previous + b"".join(digests)).digest()
        conn.execute("UPDATE gopay_events_chain SET digests = %s, hash = %s "
                     "WHERE first_position = %s", (digests, previous, first))
    [(signed,)] = conn.execute("SELECT min(position) FROM gopay_events_checkpoints "
                               "WHERE position >= %s", (position,)).fetchall()
    return int(signed)


class TestAnUntouchedLog:
    def test_checks_out_completely(self, history: System) -> None:
        """Every event is checked, the chain and checkpoints hold, the books and views agree."""
        checkpoint(history.app, history.signer)
        history.read_side.catch_up()
        verdict = verify(history.app, history.signer, history.read_side)
        events = history.app.recorder.max_notification_id()
        assert (verdict.events_checked, verdict.chain_ok, verdict.first_bad_position,
                verdict.ledger_balanced, verdict.projections_match) == (events, True, None, True, True)
        assert verdict.ok and verdict.problems == ()

    def test_keeps_checking_out_as_it_grows(self, history: System) -> None:
        """Batches stored after a checkpoint extend the chain the checkpoint signed."""
        checkpoint(history.app, history.signer)
        alice, bob = history.customers  # type: ignore[attr-defined]
        transfer(history.commands, bob, alice, 5)
        checkpoint(history.app, history.signer)
        assert verify(history.app, history.signer).chain_ok


class TestReadModelsAreCompared:
    def test_a_balance_changed_in_a_view_is_found(self, history: System, database_url: str) -> None:
        """A read model that says something the events do not is reported, and the chain,
        which it does not touch, still holds."""
        history.read_side.catch_up()
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute("UPDATE wallets SET balance = balance + 1 WHERE wallet_id = "
                         "(SELECT wallet_id FROM wallets LIMIT 1)")
        verdict = verify(history.app, history.signer, history.read_side)
        assert (verdict.chain_ok, verdict.ledger_balanced, verdict.projections_match) == (
            True, True, False)

    def test_an_order_a_ledger_account_and_a_line_changed_in_the_views_are_found(
            self, history: System, database_url: str) -> None:
        """Each view row is compared with the fields the events' JSON says: an order's payer,
        an account's balance and a line's moment, each changed behind the projection."""
        history.read_side.catch_up()
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute("UPDATE payment_orders SET payer_wallet_id = payee_wallet_id WHERE id = "
                         "(SELECT id FROM payment_orders WHERE type = 'transfer' LIMIT 1)")
            conn.execute("UPDATE ledger_accounts SET balance = balance + 1 WHERE account_id = "
                         "(SELECT account_id FROM ledger_accounts WHERE balance > 0 LIMIT 1)")
            conn.execute("UPDATE wallet_transactions SET created_at = created_at + "
                         "interval '1 microsecond' WHERE (wallet_id, seq) = "
                         "(SELECT wallet_id, seq FROM wallet_transactions LIMIT 1)")
        verdict = verify(history.app, history.signer, history.read_side)
        assert (verdict.chain_ok, verdict.ledger_balanced, verdict.projections_match) == (
            True, True, False)
        assert verdict.problems == (
            "the read model's wallet_transactions differ from the events in 1 rows",
            "the read model's payment_orders differ from the events in 1 rows",
            "the read model's ledger_accounts differ from the events in 1 rows")

    def test_a_check_that_cannot_read_the_events_leaves_the_others_answering(
            self, history: System, database_url: str) -> None:
        """The checks share a few connections: one that fails on an event that is no JSON
        says so, and the checks run after it on the same connection still find what differs."""
        history.read_side.catch_up()
        checkpoint(history.app, history.signer)
        with psycopg.connect(database_url, autocommit=True) as conn:
            [(position,)] = conn.execute(
                "UPDATE gopay_events SET state = 'no JSON'::bytea WHERE notification_id = "
                "(SELECT min(notification_id) FROM gopay_events WHERE topic LIKE '%Wallet.Credited') "
                "RETURNING notification_id").fetchall()
            conn.execute("UPDATE payment_orders SET note = 'changed' WHERE id = "
                         "(SELECT id FROM payment_orders LIMIT 1)")
        verdict = verify(history.app, history.signer, history.read_side)
        assert (verdict.chain_ok, verdict.first_bad_position, verdict.ledger_balanced) == (
            False, position, True)
        assert any("could not be compared with the events" in problem
                   for problem in verdict.problems), verdict.problems
        assert "the read model's payment_orders differ from the events in 1 rows" in (
            verdict.problems)

    def test_an_entry_that_does_not_balance_is_found(self, history: System,
                                                     database_url: str) -> None:
        """A journal entry edited to create money fails the books (and the chain)."""
        create_money(database_url)
        verdict = verify(history.app, history.signer)
        assert not verdict.ledger_balanced and not verdict.chain_ok

    def test_postings_that_are_no_objects_do_not_balance(self, history: System,
                                                         database_url: str) -> None:
        """A journal entry whose legs were replaced by numbers has no amounts to sum: the
        books do not hold (each leg is read as an object with an amount and a currency)."""
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute(
                "UPDATE gopay_events SET state = convert_to(jsonb_set(convert_from(state, "
                "'UTF8')::jsonb, '{postings}', '[1, -1]')::text, 'UTF8') WHERE notification_id = "
                "(SELECT max(notification_id) FROM gopay_events "
                "WHERE topic LIKE '%PaymentOrder.Succeeded')")
        verdict = verify(history.app, history.signer)
        assert not verdict.ledger_balanced and not verdict.chain_ok


def create_money(database_url: str) -> None:
    """Edit a journal entry in SQL so that its legs no longer sum to zero."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            "UPDATE gopay_events SET state = replace(convert_from(state, 'UTF8'), "
            "'\"amount\":-100', '\"amount\":-99')::bytea "
            "WHERE topic LIKE '%PaymentOrder.Succeeded' AND convert_from(state, 'UTF8') "
            "LIKE '%\"amount\":-100%'")


class TestTheBooksWithTheReadModels:
    """With a read side, the payment orders' check answers for the books, reading each journal
    entry once for both (`Books`); where it cannot read an entry, the books are asked alone."""

    @staticmethod
    def books_of_the_checks(system: System) -> Books:
        """What the read side's checks, run as verify runs them, say of the books."""
        books, recorder = Books(), system.app.recorder
        with recorder.snapshot() as conn:
            for check in system.read_side.checks(books):
                check(conn, recorder.stored_states)
        return books

    def test_an_entry_that_does_not_balance_is_found_by_the_orders_check(
            self, history: System, database_url: str) -> None:
        """Balanced books are answered balanced; an entry edited to create money is answered
        unbalanced by that check, and verify says so."""
        history.read_side.catch_up()
        assert self.books_of_the_checks(history).balanced is True
        create_money(database_url)
        assert self.books_of_the_checks(history).balanced is False
        verdict = verify(history.app, history.signer, history.read_side)
        assert not verdict.ledger_balanced and not verdict.chain_ok
        assert "the ledger does not sum to zero in every currency" in verdict.problems

    def test_an_entry_past_the_read_models_is_in_the_books(self, history: System,
                                                           database_url: str) -> None:
        """The read models are compared up to their position, the books to the log's end: an
        unbalanced entry the views have not reached yet is found, and the views still agree."""
        history.read_side.catch_up()
        alice, bob = history.customers  # type: ignore[attr-defined]
        transfer(history.commands, alice, bob, 77)
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute(
                "UPDATE gopay_events SET state = replace(convert_from(state, 'UTF8'), "
                "'\"amount\":-77', '\"amount\":-76')::bytea WHERE notification_id = "
                "(SELECT max(notification_id) FROM gopay_events "
                "WHERE topic LIKE '%PaymentOrder.Succeeded')")
        assert self.books_of_the_checks(history).balanced is False
        verdict = verify(history.app, history.signer, history.read_side)
        assert (verdict.ledger_balanced, verdict.projections_match) == (False, True)

    @pytest.mark.parametrize("postings", ["[1, -1]", "null"])
    def test_postings_it_cannot_read_leave_the_books_to_their_own_check(
            self, history: System, database_url: str, postings: str) -> None:
        """Legs that are no objects, or no legs at all (JSON null), stop the statement that
        reads both: the books are then asked alone, and do not balance."""
        history.read_side.catch_up()
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute(
                "UPDATE gopay_events SET state = convert_to(jsonb_set(convert_from(state, "
                "'UTF8')::jsonb, '{postings}', %s::jsonb)::text, 'UTF8') WHERE notification_id = "
                "(SELECT max(notification_id) FROM gopay_events "
                "WHERE topic LIKE '%%PaymentOrder.Succeeded')", (postings,))
        assert self.books_of_the_checks(history).balanced is None
        verdict = verify(history.app, history.signer, history.read_side)
        assert not verdict.ledger_balanced and not verdict.chain_ok


class TestTamperingIsFound:
    @pytest.mark.parametrize("tamper", [change_a_state, change_a_topic, delete_one, swap_two,
                                        forge_an_insert, cut_the_tail, rewrite_the_whole_chain],
                             ids=lambda tamper: tamper.__name__)
    def test_names_the_first_bad_position(self, history: System, database_url: str,
                                          tamper: Tamper) -> None:
        """An UPDATE, DELETE, reorder, forged INSERT, cut tail or rewritten chain is found,
        at the position where the log stops being what GoPay stored."""
        checkpoint(history.app, history.signer)
        with psycopg.connect(database_url, autocommit=True) as conn:
            position = tamper(conn)
        verdict = verify(history.app, history.signer)
        assert not verdict.chain_ok
        assert verdict.first_bad_position == position, verdict.problems

    def test_a_checkpoint_signed_with_another_key_is_refused(self, history: System) -> None:
        """Checkpoints count only when GoPay's own key signed them."""
        import base64
        import os

        checkpoint(history.app, Signer(base64.b64encode(os.urandom(32)).decode()))
        verdict = verify(history.app, history.signer)
        assert not verdict.chain_ok
        assert any("not signed by GoPay's key" in problem for problem in verdict.problems)
