"""Scheduled jobs (APScheduler): the work that runs by the clock rather than by a request."""

from __future__ import annotations

import logging

from apscheduler.schedulers.background import BackgroundScheduler

from gopay.processes.expiry import expire_due
from gopay.processes.merchant_payouts import pay_out_due
from gopay.reconcile import audit, runs
from gopay.reconcile.integrity import IntegrityCheck
from gopay.system import System

log = logging.getLogger(__name__)


def start_jobs(system: System) -> BackgroundScheduler:
    """Start this process's jobs; every process may run them (they share work safely)."""
    scheduler = BackgroundScheduler(daemon=True)
    scheduler.add_job(system.outbox.deliver, "interval", seconds=1, id="deliver_outbox",
                      max_instances=1, coalesce=True)
    scheduler.add_job(lambda: _leading(system) and system.psp_process.run_due(), "interval",
                      seconds=1, id="psp_tasks", max_instances=1, coalesce=True)
    scheduler.add_job(lambda: _leading(system) and audit.checkpoint(system.app, system.signer),
                      "interval", seconds=60, id="audit_checkpoint", max_instances=1,
                      coalesce=True)
    scheduler.add_job(lambda: _leading(system) and system.webhooks.run_due(), "interval",
                      seconds=1, id="merchant_webhooks", max_instances=1, coalesce=True)
    scheduler.add_job(lambda: _leading(system) and expire_due(system.commands, system.read_side),
                      "interval", seconds=1, id="expiry", max_instances=1, coalesce=True)
    integrity_check = IntegrityCheck(system)
    scheduler.add_job(lambda: _leading(system) and integrity_check(), "interval",
                      minutes=system.settings.integrity_check_minutes, id="integrity_check",
                      max_instances=1, coalesce=True)
    scheduler.add_job(lambda: _leading(system) and pay_out_due(system.commands, system.read_side),
                      "interval", seconds=system.settings.merchant_payout_interval_seconds,
                      id="merchant_payouts", max_instances=1, coalesce=True)
    scheduler.add_job(_reconcile_yesterday, "interval", args=(system,), minutes=10,
                      id="daily_reconciliation", max_instances=1, coalesce=True)
    scheduler.start()
    return scheduler


def _reconcile_yesterday(system: System) -> None:
    """Yesterday's settlement file, once it is closed; if the PSP does not answer, next time."""
    if not _leading(system):
        return
    try:
        runs.reconcile_yesterday(system)
    except Exception:  # the PSP away, or a file it cannot read: logged, tried again later
        log.exception("the daily reconciliation failed; trying again in ten minutes")


def _leading(system: System) -> bool:
    """Whether this process leads the read side: PSP work is done by one process at a time,
    from the view that process keeps current."""
    return system.read_side.runner.is_leader
