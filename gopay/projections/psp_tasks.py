"""The PSP-work read model: which tasks are due, and the dead letters staff look after."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from eventsourcing.dispatch import singledispatchmethod
from eventsourcing.persistence import Tracking
from eventsourcing.projection import Projection
from psycopg import Cursor
from psycopg.rows import DictRow

from gopay.aggregates.psp_task import PspTask
from gopay.projections.view import PagedView


class PspTaskView(PagedView):
    """One row per task, with its attempts; done tasks stay, for the record."""

    tables = ("psp_tasks",)
    schema_statements = (
        """CREATE TABLE IF NOT EXISTS psp_tasks (
            id uuid PRIMARY KEY, kind text NOT NULL, operation text NOT NULL, order_id uuid,
            attempts integer NOT NULL DEFAULT 0, due_at timestamptz NOT NULL,
            last_error text NOT NULL DEFAULT '', dead boolean NOT NULL DEFAULT false,
            done boolean NOT NULL DEFAULT false, created_at timestamptz NOT NULL,
            updated_at timestamptz NOT NULL)""",
        """CREATE INDEX IF NOT EXISTS psp_tasks_due_idx ON psp_tasks (due_at)
            WHERE NOT done AND NOT dead""",
        """CREATE INDEX IF NOT EXISTS psp_tasks_dead_idx ON psp_tasks (created_at, id) WHERE dead""",
    )

    def start_page(self) -> None:
        self._created: list[tuple[Any, ...]] = []
        self._changed: dict[UUID, dict[str, Any]] = {}

    def task_created(self, row: tuple[Any, ...]) -> None:
        self._created.append(row)

    def task_changed(self, task_id: UUID, **columns: Any) -> None:
        change = self._changed.setdefault(task_id, {"attempts": 0})
        change["attempts"] += columns.pop("attempt", 0)
        # None leaves a column as it is (COALESCE below), also within a page: a later event
        # of the page must not undo what an earlier one set.
        change.update({name: value for name, value in columns.items() if value is not None})

    def write_page(self, cursor: Cursor[DictRow]) -> None:
        if self._created:
            cursor.executemany(
                "INSERT INTO psp_tasks (id, kind, operation, order_id, due_at, created_at, "
                "updated_at) VALUES (%s, %s, %s, %s, %s, %s, %s)", self._created)
        for task_id, c in self._changed.items():
            cursor.execute(
                "UPDATE psp_tasks SET attempts = attempts + %s, "
                "due_at = COALESCE(%s, due_at), last_error = COALESCE(%s, last_error), "
                "dead = COALESCE(%s, dead), done = COALESCE(%s, done), updated_at = %s "
                "WHERE id = %s",
                (c["attempts"], c.get("due_at"), c.get("last_error"), c.get("dead"),
                 c.get("done"), c["at"], task_id))

    def due(self, limit: int, now: datetime) -> list[UUID]:
        """Tasks to try now, the longest waiting first."""
        rows = self.query("SELECT id FROM psp_tasks WHERE NOT done AND NOT dead AND due_at <= %s "
                          "ORDER BY due_at LIMIT %s", (now, limit))
        return [row["id"] for row in rows]

    def dead_letters(self, *, limit: int, after: UUID | None = None) -> list[dict[str, Any]]:
        """Dead-lettered tasks, newest first; `after` is the last id of the page before."""
        if after is None:
            return self.query("SELECT * FROM psp_tasks WHERE dead "
                              "ORDER BY created_at DESC, id DESC LIMIT %s", (limit,))
        return self.query(
            "SELECT * FROM psp_tasks WHERE dead AND (created_at, id) < "
            "(SELECT created_at, id FROM psp_tasks WHERE id = %s) "
            "ORDER BY created_at DESC, id DESC LIMIT %s", (after, limit))

    def task(self, task_id: UUID) -> dict[str, Any] | None:
        rows = self.query("SELECT * FROM psp_tasks WHERE id = %s", (task_id,))
        return rows[0] if rows else None

    def unfinished(self) -> list[dict[str, Any]]:
        """Every task neither done nor dead-lettered (what is still owed to or by the PSP)."""
        return self.query("SELECT * FROM psp_tasks WHERE NOT done AND NOT dead ORDER BY due_at")


class PspTaskProjection(Projection[PspTaskView]):
    """Turns PSP task events into the PSP-work view."""

    name = "psp_task_projection"

    @singledispatchmethod
    def process_event(self, domain_event: Any, tracking: Tracking) -> None:
        """Events this view does not show."""

    @process_event.register
    def _(self, e: PspTask.Created, tracking: Tracking) -> None:
        self.view.task_created((e.originator_id, e.kind, e.operation, e.order_id,
                                datetime.fromisoformat(e.due_at), e.timestamp, e.timestamp))

    @process_event.register
    def _(self, e: PspTask.AttemptFailed, tracking: Tracking) -> None:
        self.view.task_changed(e.originator_id, attempt=1, last_error=e.error, at=e.timestamp,
                               dead=e.retry_at is None,
                               due_at=datetime.fromisoformat(e.retry_at) if e.retry_at else None)

    @process_event.register
    def _(self, e: PspTask.Postponed, tracking: Tracking) -> None:
        self.view.task_changed(e.originator_id, due_at=datetime.fromisoformat(e.until),
                               at=e.timestamp)

    @process_event.register
    def _(self, e: PspTask.Requeued, tracking: Tracking) -> None:
        self.view.task_changed(e.originator_id, dead=False, due_at=datetime.fromisoformat(e.at),
                               at=e.timestamp)

    @process_event.register
    def _(self, e: PspTask.Completed, tracking: Tracking) -> None:
        self.view.task_changed(e.originator_id, done=True, dead=False, at=e.timestamp)
