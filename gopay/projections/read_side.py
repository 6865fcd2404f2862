"""The read side of one process: its views, the runners that feed them, and read-your-writes."""

from __future__ import annotations

import threading
import time

from eventsourcing.persistence import InfrastructureFactory
from eventsourcing.utils import Environment

from gopay.application import GoPay, application_env
from gopay.projections.directory import DirectoryProjection, DirectoryView
from gopay.projections.runner import PagedProjectionRunner, lag_seconds
from gopay.projections.view import PagedView
from gopay.projections.wallets import WalletProjection, WalletView


def _view(view_class: type[PagedView], name: str, database_url: str,
          create_tables: bool) -> PagedView:
    env = {"CREATE_TABLE": "y" if create_tables else "n",
           **application_env(database_url, pool_size=4)}
    factory = InfrastructureFactory.construct(Environment(name, env))
    return factory.tracking_recorder(view_class)  # type: ignore[type-var]


class ReadSide:
    """Wallet and directory read models over one GoPay application."""

    def __init__(self, app: GoPay, database_url: str, *, create_tables: bool = False) -> None:
        self.app = app
        self.wallets: WalletView = _view(  # type: ignore[assignment]
            WalletView, WalletProjection.name, database_url, create_tables)
        self.directory: DirectoryView = _view(  # type: ignore[assignment]
            DirectoryView, DirectoryProjection.name, database_url, create_tables)
        self._advanced = threading.Condition()
        self.runners = [
            PagedProjectionRunner(app, WalletProjection(self.wallets), database_url,
                                  on_advance=self._on_advance),
            PagedProjectionRunner(app, DirectoryProjection(self.directory), database_url,
                                  on_advance=self._on_advance),
        ]

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
