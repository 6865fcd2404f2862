"""The read side of one process: its views, the runners that feed them, and read-your-writes."""

from __future__ import annotations

import threading
import time
from typing import Any, TypeVar, cast

from eventsourcing.persistence import InfrastructureFactory
from eventsourcing.projection import Projection
from eventsourcing.utils import Environment

from gopay.application import GoPay, application_env
from gopay.projections.directory import DirectoryProjection, DirectoryView
from gopay.projections.payment_methods import PaymentMethodProjection, PaymentMethodView
from gopay.projections.runner import PagedProjectionRunner, lag_seconds
from gopay.projections.security import SecurityProjection, SecurityView
from gopay.projections.view import PagedView
from gopay.projections.wallets import WalletProjection, WalletView

V = TypeVar("V", bound=PagedView)

# Every read model GoPay keeps: the projection, and the view it writes.
READ_MODELS: tuple[tuple[type[Projection[Any]], type[PagedView]], ...] = (
    (WalletProjection, WalletView),
    (DirectoryProjection, DirectoryView),
    (SecurityProjection, SecurityView),
    (PaymentMethodProjection, PaymentMethodView),
)


def _view(view_class: type[V], name: str, database_url: str, create_tables: bool) -> V:
    env = {"CREATE_TABLE": "y" if create_tables else "n",
           **application_env(database_url, pool_size=4)}
    factory = InfrastructureFactory[Any].construct(Environment(name, env))
    view: V = factory.tracking_recorder(view_class)
    return view


class ReadSide:
    """Every read model over one GoPay application, and the runners that keep them current."""

    def __init__(self, app: GoPay, database_url: str, *, create_tables: bool = False) -> None:
        self.app = app
        self._advanced = threading.Condition()
        self.runners = [
            PagedProjectionRunner(
                app, projection(_view(view, projection.name, database_url, create_tables)),
                database_url, on_advance=self._on_advance)
            for projection, view in READ_MODELS]
        views = {type(runner.view): runner.view for runner in self.runners}
        self.wallets = cast(WalletView, views[WalletView])
        self.directory = cast(DirectoryView, views[DirectoryView])
        self.security = cast(SecurityView, views[SecurityView])
        self.payment_methods = cast(PaymentMethodView, views[PaymentMethodView])

    def start(self) -> ReadSide:
        """Run the projections here whenever no other process is running them."""
        for runner in self.runners:
            runner.start()
        return self

    def stop(self) -> None:
        """Stop the runners and close the views' connections."""
        for runner in self.runners:
            runner.stop()
            runner.view.datastore.close()

    def catch_up(self) -> None:
        """Project everything recorded so far, in this thread."""
        for runner in self.runners:
            runner.run_until_caught_up()

    def rebuild(self) -> None:
        """Empty every view and build it again from event zero (with this process's runners stopped)."""
        if any(runner.is_running for runner in self.runners):
            raise RuntimeError("stop the projection runners before rebuilding")
        for runner in self.runners:
            runner.view.rebuild()
        self.catch_up()

    def position(self) -> int:
        """The log position every read model has reached (from memory where this process leads)."""
        positions = []
        for runner in self.runners:
            known = runner.committed_position if runner.is_leader else None
            positions.append(known if known is not None else runner.view.position(self.app.name))
        return min(positions)

    def wait_for(self, position: int, timeout: float) -> bool:
        """Block until every read model shows `position` (a command's last event), or time out."""
        deadline = time.monotonic() + timeout
        interval = 0.001
        while self.position() < position:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            with self._advanced:
                self._advanced.wait(min(interval, remaining))
            interval = min(interval * 2, 0.02)
        return True

    def lag_seconds(self) -> float:
        return max(lag_seconds(self.app, runner.view) for runner in self.runners)

    def _on_advance(self, name: str, position: int) -> None:
        with self._advanced:
            self._advanced.notify_all()
