"""The read side of one process: its views, the runner that feeds them, and read-your-writes."""

from __future__ import annotations

import threading
import time
from functools import partial
from typing import Any, cast

import psycopg
from eventsourcing.persistence import InfrastructureFactory
from eventsourcing.postgres import PostgresDatastore, PostgresFactory
from eventsourcing.projection import Projection
from eventsourcing.utils import Environment
from psycopg import Connection
from psycopg.rows import DictRow
from psycopg.sql import SQL, Identifier

from gopay.application import GoPay, application_env
from gopay.progress import Progress, quiet
from gopay.projections.adjustment_proposals import (
    AdjustmentProposalProjection,
    AdjustmentProposalView,
)
from gopay.projections.analytics import AnalyticsProjection, AnalyticsView
from gopay.projections.cash_outs import CashOutProjection, CashOutView
from gopay.projections.directory import DirectoryProjection, DirectoryView
from gopay.projections.disputes import DisputeProjection, DisputeView
from gopay.projections.merchant import MerchantProjection, MerchantView
from gopay.projections.notifications import NotificationProjection, NotificationView
from gopay.projections.payment_methods import PaymentMethodProjection, PaymentMethodView
from gopay.projections.payment_requests import PaymentRequestProjection, PaymentRequestView
from gopay.projections.payout_schedules import PayoutScheduleProjection, PayoutScheduleView
from gopay.projections.position_listener import PositionListener
from gopay.projections.providers import ProviderProjection, ProviderView
from gopay.projections.psp_orders import PspOrderProjection, PspOrderView
from gopay.projections.psp_tasks import PspTaskProjection, PspTaskView
from gopay.projections.reconciliation import ReconciliationProjection, ReconciliationView
from gopay.projections.reviews import ReviewProjection, ReviewView
from gopay.projections.runner import REBUILD_PAGE_SIZE, PagedProjectionRunner, lag_seconds
from gopay.projections.security import SecurityProjection, SecurityView
from gopay.projections.support_tickets import SupportTicketProjection, SupportTicketView
from gopay.projections.view import Check, PagedView, StoredStates
from gopay.projections.wallets import Books, WalletProjection, WalletView
from gopay.projections.webhook_deliveries import WebhookDeliveryProjection, WebhookDeliveryView

# Every read model GoPay keeps: the projection, and the view it writes.
READ_MODELS: tuple[tuple[type[Projection[Any]], type[PagedView]], ...] = (
    (WalletProjection, WalletView),
    (DirectoryProjection, DirectoryView),
    (SecurityProjection, SecurityView),
    (PaymentMethodProjection, PaymentMethodView),
    (PspTaskProjection, PspTaskView),
    (MerchantProjection, MerchantView),
    (WebhookDeliveryProjection, WebhookDeliveryView),
    (ProviderProjection, ProviderView),
    (CashOutProjection, CashOutView),
    (PaymentRequestProjection, PaymentRequestView),
    (PspOrderProjection, PspOrderView),
    (ReconciliationProjection, ReconciliationView),
    (AdjustmentProposalProjection, AdjustmentProposalView),
    (NotificationProjection, NotificationView),
    # After the wallets view: its queries join the wallets and payment orders that one writes.
    (PayoutScheduleProjection, PayoutScheduleView),
    (ReviewProjection, ReviewView),
    # After the wallets view too: a ticket shows its transaction from that view's table.
    (SupportTicketProjection, SupportTicketView),
    (AnalyticsProjection, AnalyticsView),
    (DisputeProjection, DisputeView),
)


def _datastore(url: str) -> PostgresDatastore:
    env = {"CREATE_TABLE": "n", **application_env(url, pool_size=4)}
    factory = cast(PostgresFactory, InfrastructureFactory[Any].construct(Environment("reads", env)))
    return factory.datastore


def _reported(read_model: str, check: Check, conn: Connection[DictRow],
              states: StoredStates) -> list[str]:
    try:
        with conn.transaction():  # a savepoint: the snapshot stays usable
            return check(conn, states)
    except psycopg.DataError as error:
        first_line = str(error).splitlines()[0]
        return [f"{read_model} could not be compared with the events: {first_line}"]


def _views(database_url: str, create_tables: bool) -> list[PagedView]:
    """Every view, all on one datastore (one pool), so that a page commits them together."""
    env = {"CREATE_TABLE": "y" if create_tables else "n",
           **application_env(database_url, pool_size=4)}
    factory = cast(PostgresFactory, InfrastructureFactory[Any].construct(Environment("read_side", env)))
    views: list[PagedView] = []
    for projection, view_class in READ_MODELS:
        view = view_class(datastore=factory.datastore,
                          tracking_table_name=f"{projection.name}_tracking")
        if create_tables:
            view.create_table()
        views.append(view)
    return views


# How often a wait for the read side asks the database itself, besides listening.
ASK_WHILE_WAITING = 0.25


class ReadSide:
    """Every read model over one GoPay application, and the runner that keeps them current."""

    def __init__(self, app: GoPay, database_url: str, *, create_tables: bool = False,
                 read_url: str | None = None) -> None:
        self.app = app
        self._advanced = threading.Condition()
        views = _views(database_url, create_tables)
        # Queries may be served by a standby: they wait until it has replayed their position.
        self._reader = _datastore(read_url) if read_url else None
        for view in views:
            view.reader = self._reader
        self.runner = PagedProjectionRunner(
            app, [projection(view) for (projection, _), view in zip(READ_MODELS, views, strict=True)],
            database_url, on_advance=self._on_advance)
        by_class = {type(view): view for view in views}
        self.wallets = cast(WalletView, by_class[WalletView])
        self.directory = cast(DirectoryView, by_class[DirectoryView])
        self.security = cast(SecurityView, by_class[SecurityView])
        self.payment_methods = cast(PaymentMethodView, by_class[PaymentMethodView])
        self.psp_tasks = cast(PspTaskView, by_class[PspTaskView])
        self.merchant = cast(MerchantView, by_class[MerchantView])
        self.webhooks = cast(WebhookDeliveryView, by_class[WebhookDeliveryView])
        self.providers = cast(ProviderView, by_class[ProviderView])
        self.cash_outs = cast(CashOutView, by_class[CashOutView])
        self.payment_requests = cast(PaymentRequestView, by_class[PaymentRequestView])
        self.psp_orders = cast(PspOrderView, by_class[PspOrderView])
        self.reconciliation = cast(ReconciliationView, by_class[ReconciliationView])
        self.adjustment_proposals = cast(AdjustmentProposalView, by_class[AdjustmentProposalView])
        self.notifications = cast(NotificationView, by_class[NotificationView])
        self.payout_schedules = cast(PayoutScheduleView, by_class[PayoutScheduleView])
        self.reviews = cast(ReviewView, by_class[ReviewView])
        self.support_tickets = cast(SupportTicketView, by_class[SupportTicketView])
        self.analytics = cast(AnalyticsView, by_class[AnalyticsView])
        self.disputes = cast(DisputeView, by_class[DisputeView])
        self._datastore = views[0].datastore
        # Where every read model has got, in one round trip (one per view adds up, and
        # read-your-writes asks it again and again while it waits).
        self._lowest_position_statement = SQL("SELECT least({}) AS position").format(SQL(", ").join(
            SQL("coalesce((SELECT max(notification_id) FROM {} WHERE application_name = %(app)s), 0)")
            .format(Identifier(view.tracking_table_name)) for view in views))
        # Where the leader says the read models stand, when another process leads them.
        self._listener = PositionListener(database_url, self._stored_position, self._on_advance)

    def start(self) -> ReadSide:
        """Run the projections here whenever no other process is running them."""
        self.runner.start()
        return self

    def stop(self) -> None:
        """Stop the runner and close the views' connections."""
        self.runner.stop()
        self._listener.stop()
        self._datastore.close()
        if self._reader is not None:
            self._reader.close()

    def catch_up(self) -> None:
        """Project everything recorded so far, in this thread."""
        self.runner.run_until_caught_up()

    def rebuild(self, progress: Progress = quiet) -> None:
        """Empty every view and build it again from event zero (with this process's runner stopped)."""
        if self.runner.is_running:
            raise RuntimeError("stop the projection runner before rebuilding")
        for view in self.runner.views:
            view.rebuild()
        progress(0, total=self.app.recorder.max_notification_id() or 0)
        reached = 0
        while self.runner.process_page(REBUILD_PAGE_SIZE):
            now = min(self.runner.committed.values())
            progress(now - reached)
            reached = now

    def checks(self, books: Books | None = None) -> list[Check]:
        """Every comparison of a read model with the events (see each view's `checks`); one
        that cannot read the events it needs (tampered into no JSON, say) says so. Analytics'
        check compares the wallet view's payment orders too, reading their events once, and
        given `books`, answers there whether the log's journal entries balance."""
        checks: list[Check] = []
        for projection in self.runner.projections:
            name = projection.name
            if projection.view is self.wallets:
                view_checks = self.wallets.checks(self.app.name, orders=False)
            elif projection.view is self.analytics:
                name = f"{WalletProjection.name} and {projection.name}"
                view_checks = self.analytics.checks(self.app.name, with_orders_of=self.wallets,
                                                    books=books)
            else:
                view_checks = projection.view.checks(self.app.name)
            checks += [partial(_reported, name, check) for check in view_checks]
        return checks

    def position(self) -> int:
        """The log position every read model has reached, as queries see them: from memory
        where this process leads, or on the standby queries are served from."""
        remembered = self.runner.remembered_positions()
        if self._reader is None and remembered is not None:
            return min(remembered.values())
        return self._stored_position()

    def _shown(self) -> int:
        """`position()`, or where another process leading the projections last announced
        they stand: never ahead of them, maybe a moment behind, and asking nobody."""
        if self._reader is None and self.runner.remembered_positions() is None:
            heard = self._listener.position()
            if heard is not None:
                return heard
        return self.position()

    def _stored_position(self) -> int:
        with (self._reader or self._datastore).transaction(commit=False) as cursor:
            cursor.execute(self._lowest_position_statement, {"app": self.app.name})
            row = cursor.fetchone()
        return int(row["position"]) if row else 0

    def reads_from_standby(self) -> bool:
        """Whether queries are served by a standby (checked, not assumed)."""
        if self._reader is None:
            return False
        with self._reader.transaction(commit=False) as cursor:
            cursor.execute("SELECT pg_is_in_recovery() AS standby")
            row = cursor.fetchone()
        return bool(row and row["standby"])

    def wait_for(self, position: int, timeout: float) -> bool:
        """Block until every read model shows `position` (a command's last event), or time out.

        A long wait also asks the database now and then, in case the leader's announcement
        went unheard (it runs code that does not announce, say)."""
        started = time.monotonic()
        deadline = started + timeout
        interval = 0.001
        asked = started
        while self._shown() < position:
            now = time.monotonic()
            if now - asked >= ASK_WHILE_WAITING:
                asked = now
                if self._stored_position() >= position:
                    return True
            remaining = deadline - now
            if remaining <= 0:
                return False
            with self._advanced:
                self._advanced.wait(min(interval, remaining))
            interval = min(interval * 2, 0.02)
        return True

    def lag_seconds(self) -> float:
        """How old the oldest event some read model does not show yet is."""
        return lag_seconds(self.app, self.position())

    def _on_advance(self, position: int) -> None:
        with self._advanced:
            self._advanced.notify_all()
