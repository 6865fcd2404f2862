"""The analytics read model: the same figures however the log is cut into pages, per currency."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from gopay.aggregates.errors import DomainError
from gopay.aggregates.money import Money
from gopay.commands.adjustment import Adjust, Direction
from gopay.commands.registration import Register
from gopay.projections.analytics import report
from gopay.reconcile.audit import drift, verify
from gopay.system import System
from tests.support import open_wallets, transfer


def todays_report(system: System) -> dict[str, Any]:
    today = datetime.now(UTC).date()
    return report(system.read_side.analytics, today, today)


def test_orders_ending_pages_after_they_began_count_once_and_in_their_currency(
        system: System) -> None:
    """Built one event per page (every order's outcome in a later page than its creation) and
    again from event zero in one page, the figures are the same and what the commands did."""
    commands = system.commands
    alice, bob = open_wallets(commands, 2, 5_000)
    admin_id = commands.run(Register(email="eur-admin@example.com", password="x" * 12,
                                     kind="staff", full_name="Admin", role="admin")).value.id
    euro = commands.run(Register(email="euro@example.com", password="x" * 12, kind="person",
                                 full_name="E", country="FR", currency="EUR")).value
    commands.run(Adjust(caller_id=admin_id, wallet_id=euro.wallet_id, direction=Direction.CREDIT,
                        money=Money(700, "EUR"), reason="funding", fingerprint="f"))
    assert transfer(commands, alice, bob, 1_200) == "succeeded"
    assert transfer(commands, bob, alice, 300) == "succeeded"
    with pytest.raises(DomainError):  # a keyed refusal leaves a failed order behind
        transfer(commands, alice, bob, 10**9, key="too-much")

    system.read_side.runner.page_size = 1
    system.read_side.catch_up()
    one_by_one = todays_report(system)
    assert system.read_side.analytics.query("SELECT count(*) AS n FROM analytics_open_orders") == [
        {"n": 0}]
    assert drift(system.app, system.read_side) == []
    system.read_side.rebuild()
    assert todays_report(system) == one_by_one

    totals = one_by_one["totals"]
    assert totals["by_type"] == {
        "adjustment": {"count": 3, "volume": {"USD": 10_000, "EUR": 700}},
        "transfer": {"count": 2, "volume": {"USD": 1_500}}}
    assert (totals["payments"], totals["failed"], totals["failed_volume"]) == (
        5, 1, {"USD": 10**9})
    assert (totals["new_users"], totals["active_users"]) == (3, 3)  # staff are no users
    assert totals["fees"] == {}


def test_the_check_finds_figures_the_events_do_not_say(system: System) -> None:
    """`gopay audit verify`'s comparison of the read model with the events: silent while
    they agree, and names the table whose rows were changed behind the projection's back."""
    commands = system.commands
    alice, bob = open_wallets(commands, 2, 5_000)
    assert transfer(commands, alice, bob, 1_200) == "succeeded"
    with pytest.raises(DomainError):
        transfer(commands, alice, bob, 10**9, key="too-much")
    system.read_side.catch_up()
    assert drift(system.app, system.read_side) == []
    with system.app.recorder.datastore.transaction(commit=True) as cursor:  # type: ignore[attr-defined]
        cursor.execute("UPDATE analytics_daily SET volume = volume + 1 WHERE metric = 'transfer'")
        cursor.execute("DELETE FROM analytics_active_users WHERE user_id = %s", (bob.id,))
    assert drift(system.app, system.read_side) == [
        "the read model's analytics_daily differ from the events in 1 rows",
        "the read model's analytics_active_users differ from the events in 1 rows"]



def hide_bob_everywhere(system: System, bob: Any) -> None:
    """Bob's wallet lines and his day of activity deleted, consistently, behind the views."""
    with system.app.recorder.datastore.transaction(commit=True) as cursor:  # type: ignore[attr-defined]
        cursor.execute("DELETE FROM wallet_transactions WHERE wallet_id = %s", (bob.wallet_id,))
        cursor.execute("DELETE FROM analytics_active_users WHERE user_id = %s", (bob.id,))


def test_figures_changed_with_the_wallet_lines_they_follow_are_still_found(
        system: System) -> None:
    """Analytics is compared with the wallet read model's lines where both stand at the same
    position; lines and figures changed alike fail the lines' own comparison with the events."""
    alice, bob = open_wallets(system.commands, 2, 5_000)
    assert transfer(system.commands, alice, bob, 1_200) == "succeeded"
    system.read_side.catch_up()
    hide_bob_everywhere(system, bob)
    assert drift(system.app, system.read_side) == [
        "the read model's wallet_transactions differ from the events in 2 rows"]


def stand_analytics_elsewhere(system: System) -> None:
    """Past the log's end: analytics shows the same events, but stands apart from the wallet view."""
    end = system.app.recorder.max_notification_id()
    with system.app.recorder.datastore.transaction(commit=True) as cursor:  # type: ignore[attr-defined]
        cursor.execute("UPDATE analytics_projection_tracking SET notification_id = %s "
                       "WHERE application_name = %s", (end + 5, system.app.name))


def test_the_check_reads_the_events_when_the_wallet_view_stands_elsewhere(
        system: System) -> None:
    """Where analytics has reached another position than the wallet read model, its figures
    are recomputed from the events themselves."""
    alice, bob = open_wallets(system.commands, 2, 5_000)
    assert transfer(system.commands, alice, bob, 1_200) == "succeeded"
    system.read_side.catch_up()
    stand_analytics_elsewhere(system)
    assert drift(system.app, system.read_side) == []
    hide_bob_everywhere(system, bob)
    assert drift(system.app, system.read_side) == [
        "the read model's wallet_transactions differ from the events in 2 rows",
        "the read model's analytics_active_users differ from the events in 1 rows"]


def test_the_payment_orders_and_analytics_are_compared_in_one_statement(system: System) -> None:
    """Analytics' check also compares the wallet view's payment orders and ledger accounts,
    parsing their events once: a change to either read model is still found, and named."""
    alice, bob = open_wallets(system.commands, 2, 5_000)
    assert transfer(system.commands, alice, bob, 1_200) == "succeeded"
    system.read_side.catch_up()
    assert drift(system.app, system.read_side) == []
    with system.app.recorder.datastore.transaction(commit=True) as cursor:  # type: ignore[attr-defined]
        cursor.execute("UPDATE payment_orders SET amount = amount + 1 WHERE type = 'transfer'")
        cursor.execute("UPDATE ledger_accounts SET balance = balance - 1 WHERE account_id = %s",
                       (bob.wallet_id,))
        cursor.execute("UPDATE analytics_daily SET count = count + 1 WHERE metric = 'transfer'")
    assert drift(system.app, system.read_side) == [
        "the read model's payment_orders differ from the events in 1 rows",
        "the read model's ledger_accounts differ from the events in 1 rows",
        "the read model's analytics_daily differ from the events in 1 rows"]


def test_the_payment_orders_are_compared_when_the_views_stand_apart(system: System) -> None:
    """Where analytics stands elsewhere than the wallet view, the payment orders are compared
    on their own, and analytics with the events."""
    alice, bob = open_wallets(system.commands, 2, 5_000)
    assert transfer(system.commands, alice, bob, 1_200) == "succeeded"
    system.read_side.catch_up()
    stand_analytics_elsewhere(system)
    with system.app.recorder.datastore.transaction(commit=True) as cursor:  # type: ignore[attr-defined]
        cursor.execute("UPDATE payment_orders SET status = 'failed' WHERE type = 'transfer'")
        cursor.execute("UPDATE analytics_open_orders SET amount = 1")
        cursor.execute("INSERT INTO analytics_open_orders (id, type, amount, currency) "
                       "VALUES (gen_random_uuid(), 'transfer', 1, 'USD')")
    assert drift(system.app, system.read_side) == [
        "the read model's payment_orders differ from the events in 1 rows",
        "the read model's analytics_open_orders differ from the events in 1 rows"]


def test_an_order_event_that_is_no_json_is_reported_for_both_views(system: System) -> None:
    """The one statement that reads the order events for both views says it could not."""
    alice, bob = open_wallets(system.commands, 2, 5_000)
    assert transfer(system.commands, alice, bob, 1_200) == "succeeded"
    system.read_side.catch_up()
    with system.app.recorder.datastore.transaction(commit=True) as cursor:  # type: ignore[attr-defined]
        cursor.execute("UPDATE gopay_events SET state = 'no JSON'::bytea WHERE notification_id = "
                       "(SELECT max(notification_id) FROM gopay_events "
                       "WHERE topic LIKE '%PaymentOrder.Succeeded')")
    [problem] = drift(system.app, system.read_side)
    assert problem.startswith("wallet_projection and analytics_projection could not be compared "
                              "with the events: "), problem


def read_model_problems(system: System) -> list[str]:
    """What verify says of the read models: its checks with the books answered on the way."""
    verdict = verify(system.app, system.signer, system.read_side)
    assert verdict.ledger_balanced, verdict.problems
    return [problem for problem in verdict.problems if "read model" in problem]


def test_verify_finds_what_the_integrity_check_finds(system: System) -> None:
    """verify reads the order events and the registrations in one pass with the books: the
    same drifts as the integrity check's own statements (customers, figures, orders, accounts)."""
    alice, bob = open_wallets(system.commands, 2, 5_000)
    assert transfer(system.commands, alice, bob, 1_200) == "succeeded"
    system.read_side.catch_up()
    assert read_model_problems(system) == []
    with system.app.recorder.datastore.transaction(commit=True) as cursor:  # type: ignore[attr-defined]
        cursor.execute("UPDATE analytics_customers SET registered_on = registered_on - 1 "
                       "WHERE user_id = %s", (bob.id,))
        cursor.execute("UPDATE analytics_daily SET count = count + 1 WHERE metric = 'transfer'")
        cursor.execute("UPDATE payment_orders SET amount = amount + 1 WHERE type = 'transfer'")
        cursor.execute("UPDATE ledger_accounts SET balance = balance - 1 WHERE account_id = %s",
                       (bob.wallet_id,))
    found = drift(system.app, system.read_side)
    assert found == [
        "the read model's payment_orders differ from the events in 1 rows",
        "the read model's ledger_accounts differ from the events in 1 rows",
        "the read model's analytics_daily differ from the events in 1 rows",
        "the read model's analytics_customers differ from the events in 1 rows"]
    assert read_model_problems(system) == found


def test_verify_leaves_registrations_past_the_views_for_later(system: System) -> None:
    """A customer registered after the views' position is no customer they must show yet."""
    open_wallets(system.commands, 2, 5_000)
    system.read_side.catch_up()
    system.commands.run(Register(email="later@example.com", password="x" * 12, kind="person",
                                 full_name="L", country="US"))
    assert read_model_problems(system) == []
    system.read_side.catch_up()
    with system.app.recorder.datastore.transaction(commit=True) as cursor:  # type: ignore[attr-defined]
        cursor.execute("DELETE FROM analytics_customers WHERE registered_on IS NOT NULL "
                       "AND user_id = (SELECT id FROM users WHERE email = 'later@example.com')")
    assert read_model_problems(system) == [
        "the read model's analytics_customers differ from the events in 1 rows"]


def test_verify_asks_the_books_alone_when_the_views_stand_apart(system: System) -> None:
    """Where analytics stands elsewhere, the orders are compared on their own and the books
    asked alone: balanced, then not once an entry is edited to create money."""
    alice, bob = open_wallets(system.commands, 2, 5_000)
    assert transfer(system.commands, alice, bob, 1_200) == "succeeded"
    system.read_side.catch_up()
    stand_analytics_elsewhere(system)
    assert verify(system.app, system.signer, system.read_side).ok
    with system.app.recorder.datastore.transaction(commit=True) as cursor:  # type: ignore[attr-defined]
        cursor.execute("UPDATE gopay_events SET state = replace(convert_from(state, 'UTF8'), "
                       "'\"amount\":-1200', '\"amount\":-1199')::bytea "
                       "WHERE topic LIKE '%PaymentOrder.Succeeded'")
    assert not verify(system.app, system.signer, system.read_side).ledger_balanced
