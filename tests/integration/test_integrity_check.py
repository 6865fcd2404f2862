"""The scheduled integrity check: a read model changed behind GoPay's back is found, by the job
(metric, log line, e-mail to admins) and by `verify`."""

from __future__ import annotations

import logging
from datetime import timedelta

import psycopg
import pytest
from prometheus_client import REGISTRY

from gopay.reconcile.audit import verify
from gopay.reconcile.integrity import IntegrityCheck
from gopay.scheduler import start_jobs
from gopay.system import System
from tests.support import open_wallets, transfer


def drift_checks(outcome: str) -> float:
    return REGISTRY.get_sample_value("gopay_integrity_checks_total", {"outcome": outcome}) or 0.0


def test_a_read_model_changed_in_sql_is_alerted(system: System, database_url: str,
                                                caplog: pytest.LogCaptureFixture) -> None:
    alice, bob = open_wallets(system.commands, 2, 1_000)
    transfer(system.commands, alice, bob, 40)
    system.read_side.catch_up()
    [admin] = system.read_side.directory.query(
        "SELECT id FROM users WHERE kind = 'staff' AND role = 'admin'")
    check = IntegrityCheck(system)
    assert check() == []
    assert REGISTRY.get_sample_value("gopay_read_model_drift") == 0

    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("UPDATE wallets SET balance = balance + 1 WHERE wallet_id = %s",
                     (alice.wallet_id,))
        conn.execute("DELETE FROM wallet_transactions WHERE wallet_id = %s AND seq = "
                     "(SELECT max(seq) FROM wallet_transactions WHERE wallet_id = %s)",
                     (bob.wallet_id, bob.wallet_id))
    drifts_before = drift_checks("drift")
    with caplog.at_level(logging.ERROR, logger="gopay.reconcile.integrity"):
        problems = check()

    assert problems == ["the read model's wallets differ from the events in 1 rows",
                        "the read model's wallet_transactions differ from the events in 1 rows"]
    assert REGISTRY.get_sample_value("gopay_read_model_drift") == 2
    assert drift_checks("drift") == drifts_before + 1
    assert [r.getMessage() for r in caplog.records] == [
        f"integrity check: read model drift: {problem}" for problem in problems]
    alerts = [m for m in system.outbox.messages_for(admin["id"])
              if m.subject == "GoPay: read model drift"]
    assert len(alerts) == 1 and "wallet_transactions" in alerts[0].body
    verdict = verify(system.app, system.signer, system.read_side)
    assert (verdict.chain_ok, verdict.ledger_balanced, verdict.projections_match) == (
        True, True, False)
    assert set(problems) <= set(verdict.problems)

    check()  # the same drift again: counted and logged, but admins are not e-mailed twice
    assert len([m for m in system.outbox.messages_for(admin["id"])
                if m.subject == "GoPay: read model drift"]) == 1


def test_the_worker_schedules_it_as_configured(system: System) -> None:
    system.settings = system.settings.model_copy(update={"integrity_check_minutes": 0.5})
    jobs = start_jobs(system)
    try:
        job = jobs.get_job("integrity_check")
        assert job is not None and job.trigger.interval == timedelta(seconds=30)
    finally:
        jobs.shutdown(wait=True)
