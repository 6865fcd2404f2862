"""The expiry job on PostgreSQL: what the read side shows as due is ended, once, and nothing early."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

from gopay.aggregates.cash_out import CashOut, CashOutStatus
from gopay.aggregates.money import Money
from gopay.aggregates.payment_request import PaymentRequest, RequestStatus
from gopay.aggregates.wallet import Wallet
from gopay.commands.cash_outs import RequestCashOut
from gopay.commands.payment_requests import RequestPayment
from gopay.commands.registration import Register
from gopay.processes.expiry import expire_due
from gopay.system import System
from tests.support import open_wallets
from tests.unit.commands.in_memory import SettableClock


def test_cash_outs_and_requests_end_when_due_and_only_then(system: System) -> None:
    clock = SettableClock(datetime.now(UTC))
    system.commands.context = dataclasses.replace(system.commands.context, clock=clock)
    commands, read_side = system.commands, system.read_side
    customer, other = open_wallets(commands, 2, 10_000)
    agent = commands.run(Register(email="agent@example.com", password="x" * 12, kind="agent",
                                  full_name="Agent")).value
    order = commands.run(RequestCashOut(
        caller_id=customer.id, wallet_id=customer.wallet_id, agent_id=agent.id,
        money=Money(4_000, "USD"), valid_for=timedelta(minutes=15))).value
    request = commands.run(RequestPayment(
        requester_id=customer.id, requester_wallet_id=customer.wallet_id, payer=other.email,
        money=Money(500, "USD"), valid_for=timedelta(hours=1))).value

    def run() -> int:
        read_side.catch_up()
        return expire_due(commands, read_side)

    assert run() == 0
    clock.advance(minutes=15)
    assert run() == 1
    assert system.app.get(CashOut.id_for(order.id), CashOut).status == CashOutStatus.EXPIRED
    assert system.app.get(customer.wallet_id, Wallet).held == 0
    assert system.app.get(request.id, PaymentRequest).status == RequestStatus.OPEN
    clock.advance(minutes=45)
    assert run() == 1
    assert system.app.get(request.id, PaymentRequest).status == RequestStatus.EXPIRED
    assert run() == 0
    read_side.catch_up()
    assert read_side.cash_outs.cash_out(order.id)["status"] == "expired"
    assert read_side.payment_requests.request(request.id, clock())["status"] == "expired"
