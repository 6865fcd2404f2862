"""Which events the projection runner hands to which projection, decided once per event class."""

from __future__ import annotations

from typing import Any

from eventsourcing.dispatch import singledispatchmethod
from eventsourcing.persistence import Tracking
from eventsourcing.projection import Projection

from gopay.aggregates.payment_order import PaymentOrder
from gopay.aggregates.user import User
from gopay.aggregates.wallet import Wallet
from gopay.projections.runner import _handler
from gopay.projections.security import RECORDED, SecurityProjection
from gopay.projections.wallets import WalletProjection


class Counting(Projection[Any]):
    """Counts wallet openings; its fallback counts every other event it is given."""

    @singledispatchmethod
    def process_event(self, domain_event: Any, tracking: Tracking) -> None:
        self.view.append(("other", domain_event))

    @process_event.register
    def _(self, e: Wallet.Opened, tracking: Tracking) -> None:
        self.view.append(("opened", e))


def test_events_a_projection_does_not_show_are_not_handed_to_it() -> None:
    """A fallback that is only a docstring is skipped; registered classes get their handler."""
    wallets = WalletProjection(view=None)  # type: ignore[arg-type]
    assert _handler(wallets, PaymentOrder.Succeeded) is not None
    assert _handler(wallets, Wallet.Opened) is not None
    assert _handler(wallets, User.LoggedIn) is None  # none of its events: nothing to do


def test_a_fallback_that_does_something_still_gets_the_events() -> None:
    """The security view records events by a set of classes in its fallback: none is lost."""
    security = SecurityProjection(view=None)  # type: ignore[arg-type]
    assert all(_handler(security, cls) is not None for cls in RECORDED)
    seen: list[tuple[str, Any]] = []
    counting = Counting(view=seen)
    handler = _handler(counting, PaymentOrder.Created)
    assert handler is not None
    handler("an event", Tracking("gopay", 1))
    opened = _handler(counting, Wallet.Opened)
    assert opened is not None
    opened("opening", Tracking("gopay", 2))
    assert seen == [("other", "an event"), ("opened", "opening")]
