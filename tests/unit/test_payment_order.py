"""The payment order's state machine, idempotent order ids, and sign-in sessions."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from uuid import UUID, uuid4

import pytest
from eventsourcing.application import project_aggregate
from hypothesis import given
from hypothesis import strategies as st

from gopay.aggregates.errors import InvalidState, Unbalanced
from gopay.aggregates.ledger import Posting
from gopay.aggregates.payment_order import TRANSITIONS, PaymentOrder, order_id_for
from gopay.aggregates.session import Session, SessionRevoked, token_digest
from gopay.api.problems import STATUS_OF_CODE


def new_order() -> PaymentOrder:
    return PaymentOrder(id=uuid4(), order_type="transfer", initiated_by=uuid4(),
                        payer_wallet_id=uuid4(), payee_wallet_id=uuid4(), amount=1_050,
                        currency="USD", note="lunch", request_fingerprint="fingerprint")


def balanced_postings(order: PaymentOrder) -> tuple[Posting, Posting]:
    return (Posting(order.payer_wallet_id, -order.amount, order.currency),  # type: ignore[arg-type]
            Posting(order.payee_wallet_id, order.amount, order.currency))  # type: ignore[arg-type]


# The command that moves an order to each status.
COMMANDS: dict[str, Callable[[PaymentOrder], None]] = {
    "pending": lambda order: order.mark_pending(psp_reference="psp-123"),
    "succeeded": lambda order: order.succeed(*balanced_postings(order)),
    "failed": lambda order: order.fail(reason="declined"),
    "reversed": lambda order: order.reverse(reason="refunded"),
}

# How a new order reaches each status.
PATHS: dict[str, list[str]] = {
    "created": [],
    "pending": ["pending"],
    "succeeded": ["succeeded"],
    "failed": ["failed"],
    "reversed": ["succeeded", "reversed"],
}

def order_in(status: str) -> PaymentOrder:
    """A new order moved to `status`, with its events collected."""
    order = new_order()
    for step in PATHS[status]:
        COMMANDS[step](order)
    order.collect_events()
    assert order.status == status
    return order


def transition(source: str, target: str) -> Any:
    return pytest.param(source, target, id=f"{source}->{target}")


LEGAL = [transition(source, target)
         for source, targets in TRANSITIONS.items() for target in sorted(targets)]
ILLEGAL = [transition(source, target)
           for source in TRANSITIONS for target in COMMANDS if target not in TRANSITIONS[source]]


class TestTransitionTable:
    def test_names_only_known_statuses(self) -> None:
        """Every status an order can move to has its own row in the table."""
        assert set().union(*TRANSITIONS.values()) <= set(TRANSITIONS)

    def test_every_status_is_covered_here(self) -> None:
        """These tests know a command and a path for every status in the table."""
        assert set(PATHS) == set(TRANSITIONS)
        assert set(COMMANDS) == set().union(*TRANSITIONS.values())

    def test_failed_and_reversed_are_final(self) -> None:
        """Nothing follows a failed or a reversed order."""
        assert TRANSITIONS["failed"] == TRANSITIONS["reversed"] == frozenset()

    def test_a_new_order_is_created(self) -> None:
        """An order starts as created, with nothing booked, recorded as one Created event."""
        order = new_order()
        assert (order.status, order.postings, order.ledger_updated) == ("created", (), False)
        [created] = order.collect_events()
        assert isinstance(created, PaymentOrder.Created)


class TestLegalTransitions:
    @pytest.mark.parametrize(("source", "target"), LEGAL)
    def test_moves_the_order_with_one_event(self, source: str, target: str) -> None:
        """Each transition the table allows changes the status and records exactly one event."""
        order = order_in(source)
        version = order.version
        COMMANDS[target](order)
        assert order.status == target
        assert len(order.collect_events()) == 1
        assert order.version == version + 1

    def test_pending_records_the_psp_reference(self) -> None:
        """Marking an order pending keeps the PSP's reference for its later answer."""
        order = order_in("pending")
        assert order.psp_reference == "psp-123"

    def test_success_records_the_journal_entry(self) -> None:
        """A succeeded order carries its postings; its event holds them as plain records."""
        order = order_in("created")
        postings = balanced_postings(order)
        order.succeed(*postings)
        assert order.postings == tuple(postings)
        assert order.ledger_updated
        [succeeded] = order.collect_events()
        assert isinstance(succeeded, PaymentOrder.Succeeded)
        assert succeeded.postings == [posting.as_record() for posting in postings]

    def test_reversal_books_the_mirror_entry(self) -> None:
        """A reversed order keeps its postings and records every one of them negated."""
        order = order_in("succeeded")
        booked = order.postings
        order.reverse(reason="refunded")
        assert order.postings == booked
        assert order.reversal_postings == tuple(-posting for posting in booked)
        assert [p.amount for p in order.reversal_postings] == [-p.amount for p in booked]

    def test_failure_records_the_reason(self) -> None:
        """A failed order says why."""
        assert order_in("failed").failure_reason == "declined"

    def test_events_rebuild_the_same_order(self) -> None:
        """Replaying an order's events from nothing gives the same order."""
        order = new_order()
        order.mark_pending(psp_reference="psp-9")
        order.succeed(*balanced_postings(order))
        replayed = project_aggregate(None, order.collect_events())
        assert replayed is not None
        assert vars(replayed) == vars(order)


class TestIllegalTransitions:
    @pytest.mark.parametrize(("source", "target"), ILLEGAL)
    def test_is_refused_and_records_nothing(self, source: str, target: str) -> None:
        """A transition the table does not allow is a 409 invalid_state and changes nothing."""
        order = order_in(source)
        before = vars(order).copy()
        with pytest.raises(InvalidState) as refused:
            COMMANDS[target](order)
        assert (refused.value.code, STATUS_OF_CODE[refused.value.code]) == ("invalid_state", 409)
        assert vars(order) == before
        assert order.pending_events == []


class TestSucceedNeedsABalancedEntry:
    @pytest.mark.parametrize("postings", [
        pytest.param(lambda payer, payee: (Posting(payer, -1_050, "USD"),), id="one-leg"),
        pytest.param(lambda payer, payee: (Posting(payer, -1_050, "USD"),
                                           Posting(payee, 1_000, "USD")), id="unbalanced"),
        pytest.param(lambda payer, payee: (Posting(payer, -1_050, "USD"),
                                           Posting(payee, 1_050, "EUR")), id="two-currencies"),
        pytest.param(lambda payer, payee: (Posting(payer, 0, "USD"),
                                           Posting(payee, 0, "USD")), id="zero"),
    ])
    def test_refuses_postings_that_do_not_balance(
            self, postings: Callable[[UUID, UUID], tuple[Posting, ...]]) -> None:
        """succeed() with a bad journal entry raises Unbalanced and the order stays created."""
        order = order_in("created")
        with pytest.raises(Unbalanced):
            order.succeed(*postings(order.payer_wallet_id, order.payee_wallet_id))  # type: ignore[arg-type]
        assert (order.status, order.postings) == ("created", ())
        assert order.pending_events == []


class TestOrderIds:
    def test_a_retry_finds_the_same_order(self) -> None:
        """The same caller, operation and key always stand for the same order id."""
        caller = uuid4()
        assert order_id_for(caller, "transfer", "k") == order_id_for(caller, "transfer", "k")

    def test_callers_do_not_share_keys(self) -> None:
        """Two callers using the same idempotency key get different orders."""
        assert order_id_for(uuid4(), "transfer", "k") != order_id_for(uuid4(), "transfer", "k")

    def test_operations_do_not_share_keys(self) -> None:
        """One caller's key means different orders for a transfer and an adjustment."""
        caller = uuid4()
        assert order_id_for(caller, "transfer", "k") != order_id_for(caller, "adjustment", "k")

    @given(callers=st.lists(st.uuids(), min_size=1, max_size=3, unique=True),
           keys=st.lists(st.text(min_size=1, max_size=20), min_size=1, max_size=5, unique=True))
    def test_distinct_requests_get_distinct_ids(self, callers: list[UUID], keys: list[str]) -> None:
        """Every different (caller, operation, key) names a different order."""
        requests = [(caller, operation, key) for caller in callers
                    for operation in ("transfer", "adjustment") for key in keys]
        ids = {order_id_for(*request) for request in requests}
        assert len(ids) == len(requests)


def new_session(secret: str = "first-secret") -> Session:
    session = Session(id=uuid4(), user_id=uuid4(), device_id="phone",
                      refresh_digest=token_digest(secret))
    session.collect_events()
    return session


def session_state(session: Session) -> dict[str, Any]:
    return {name: value for name, value in vars(session).items() if name != "_pending_events"}


class TestSessionRotation:
    def test_the_current_secret_rotates_the_token(self) -> None:
        """Presenting the current secret swaps in the new digest and records one Rotated event."""
        session = new_session("first-secret")
        session.rotate("first-secret", token_digest("second-secret"))
        assert session.refresh_digest == token_digest("second-secret")
        assert not session.revoked
        assert [type(event) for event in session.collect_events()] == [Session.Rotated]

    def test_each_rotation_needs_the_latest_secret(self) -> None:
        """After a rotation the new secret is the one that works."""
        session = new_session("first-secret")
        session.rotate("first-secret", token_digest("second-secret"))
        session.rotate("second-secret", token_digest("third-secret"))
        assert (session.refresh_digest, session.revoked) == (token_digest("third-secret"), False)

    def test_an_old_secret_revokes_the_session(self) -> None:
        """A used refresh token presented again means it leaked: the whole session is revoked."""
        session = new_session("first-secret")
        session.rotate("first-secret", token_digest("second-secret"))
        session.collect_events()
        session.rotate("first-secret", token_digest("attacker-secret"))
        assert session.revoked
        assert session.refresh_digest == token_digest("second-secret")
        [revoked] = session.collect_events()
        assert isinstance(revoked, Session.Revoked) and revoked.reason == "refresh_token_reused"

    def test_a_revoked_session_refuses_rotation(self) -> None:
        """Once revoked, even the current secret is a 401 and nothing is recorded."""
        session = new_session("first-secret")
        session.revoke(reason="logout")
        session.collect_events()
        before = session_state(session)
        with pytest.raises(SessionRevoked) as refused:
            session.rotate("first-secret", token_digest("second-secret"))
        assert (refused.value.code, STATUS_OF_CODE[refused.value.code]) == ("unauthenticated", 401)
        assert session_state(session) == before and session.pending_events == []

    def test_revoking_twice_records_once(self) -> None:
        """Revocation is recorded once, with the first reason."""
        session = new_session()
        session.revoke(reason="logout")
        session.revoke(reason="locked")
        [revoked] = session.collect_events()
        assert revoked.reason == "logout"  # type: ignore[attr-defined]

    def test_keeps_no_secret(self) -> None:
        """Only a SHA-256 digest of the refresh secret is stored."""
        session = new_session("first-secret")
        assert session.refresh_digest == token_digest("first-secret")
        assert "first-secret" not in repr(session_state(session))
        assert len(token_digest("first-secret")) == 64
