"""Business analytics over HTTP: the projection's figures against what the wallets' histories say."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.test_topups_and_payouts import Deployment, settled, top_up
from tests.support import Client, fund, register, run_gopay, staff

FEES = json.dumps({"transfer": {"fixed": 10, "bps": 100, "paid_by": "payer"},
                   "topup": {"fixed": 30, "bps": 0, "paid_by": "payee"}})
LINE_ONLY = {"fee", "commission"}  # lines of a payment, never payments of their own


class Load:
    """What the mixed load did, as the test itself saw it."""

    def __init__(self) -> None:
        self.customers: list[Client] = []
        self.failed = 0


@pytest.fixture(scope="module")
def gopay(postgres_server: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    deployment = Deployment(postgres_server, tmp_path_factory.mktemp("analytics"),
                            GOPAY_FEES=FEES, GOPAY_FRAUD_SCREENING="monitor").start()
    yield deployment
    deployment.stop()


@pytest.fixture(scope="module")
def load(gopay: Deployment) -> Load:
    """Registrations, funding, transfers, a card top-up, a declined card and a refused transfer."""
    done = Load()
    alice, bob, carol, dave = (register(gopay.server.url) for _ in range(4))
    done.customers = [alice, bob, carol, dave]  # dave registers and does nothing else
    fund(gopay.admin, alice.user["wallet_id"], 50_000)
    fund(gopay.admin, bob.user["wallet_id"], 20_000)
    for sender, recipient, amount in ((alice, bob, 1_000), (alice, bob, 2_500),
                                      (bob, carol, 700), (carol, alice, 100)):
        sent = sender.post("/v1/transfers", {"recipient": recipient.user["email"],
                                             "amount": amount, "currency": "USD"})
        assert sent.status_code == 201, sent.text
    for person, card, outcome in ((alice, "4242424242424242", "succeeded"),
                                  (bob, "4000000000000002", "failed")):
        method = person.post("/v1/payment-methods", {"type": "card", "card": {
            "number": card, "exp_month": 12, "exp_year": 2031, "cvc": "123",
            "holder_name": "Ada Lovelace"}})
        assert method.status_code == 201, method.text
        answer = top_up(person, method.json()["id"], 5_000)
        assert answer.status_code in (201, 202), answer.text
        assert settled(person, "topups", answer.json()["id"])["status"] == outcome
    done.failed += 1
    # A keyed request the ledger refuses leaves a failed order behind.
    refused = carol.post("/v1/transfers", {"recipient": dave.user["email"], "amount": 10**7,
                                           "currency": "USD"}, key="too-much")
    assert refused.status_code == 422, refused.text
    done.failed += 1
    return done


def expected_from_histories(customers: list[Client]) -> dict[date, dict[str, Any]]:
    """Each UTC day's figures as the customers' wallet histories tell them."""
    days: dict[date, dict[str, Any]] = defaultdict(lambda: {
        "orders": {}, "fees": 0, "fee_count": 0, "active": set()})
    for number, customer in enumerate(customers):
        for line in customer.history():
            day = datetime.fromisoformat(line["created_at"]).astimezone(UTC).date()
            figures = days[day]
            figures["active"].add(number)
            if line["type"] == "fee":
                figures["fees"] += line["amount"]
                figures["fee_count"] += 1
            elif line["type"] not in LINE_ONLY:
                # One order, seen from both of its wallets when it is a transfer.
                figures["orders"][line["id"]] = (line["type"], line["amount"])
    return days


def by_type(orders: dict[str, tuple[str, int]]) -> dict[str, dict[str, Any]]:
    shown: dict[str, dict[str, Any]] = {}
    for order_type, amount in orders.values():
        figures = shown.setdefault(order_type, {"count": 0, "volume": {"USD": 0}})
        figures["count"] += 1
        figures["volume"]["USD"] += amount
    return shown


def analytics_of(reader: Client, since: date, until: date) -> dict[str, Any]:
    response = reader.get("/v1/admin/analytics", params={"from": since.isoformat(),
                                                         "to": until.isoformat()})
    assert response.status_code == 200, response.text
    return response.json()


def assert_matches(answer: dict[str, Any], load: Load) -> None:
    expected = expected_from_histories(load.customers)
    shown = {date.fromisoformat(day["date"]): day for day in answer["days"]}
    assert set(expected) <= set(shown)
    for day, figures in expected.items():
        assert shown[day]["by_type"] == by_type(figures["orders"]), day
        assert shown[day]["fees"] == ({"USD": figures["fees"]} if figures["fees"] else {})
        assert shown[day]["fee_count"] == figures["fee_count"]
        assert shown[day]["active_users"] == len(figures["active"])
    totals = answer["totals"]
    assert totals["new_users"] == len(load.customers)
    assert totals["failed"] == load.failed
    assert totals["active_users"] == len(set().union(*(f["active"] for f in expected.values())))
    assert totals["payments"] == sum(len(f["orders"]) for f in expected.values())


class TestAnalytics:
    def test_the_figures_are_what_the_wallets_histories_say(self, gopay: Deployment,
                                                             load: Load) -> None:
        """Counts and volumes by type, fees, active and new customers, failures: all agree."""
        today = datetime.now(UTC).date()
        finance = staff(gopay.server.url, gopay.server.env, "finance")
        answer = analytics_of(finance, today - timedelta(days=1), today)
        assert_matches(answer, load)
        types = answer["totals"]["by_type"]
        assert types["transfer"] == {"count": 4, "volume": {"USD": 4_300}}
        assert types["topup"] == {"count": 1, "volume": {"USD": 5_000}}
        assert types["adjustment"] == {"count": 2, "volume": {"USD": 70_000}}
        # Transfers: 10 + 1 % each, paid by the sender; the top-up's 30 out of what arrived.
        assert answer["totals"]["fees"] == {"USD": 4 * 10 + 10 + 25 + 7 + 1 + 30}
        assert answer["totals"]["active_users"] == 3  # dave only registered
        assert answer["totals"]["failed_volume"] == {"USD": 5_000 + 10**7}

    def test_every_day_of_the_period_is_listed_and_30_by_default(self, gopay: Deployment,
                                                                 load: Load) -> None:
        """Empty days are there with zeros; without `from` and `to`, the last 30 days up to today."""
        answer = gopay.admin.get("/v1/admin/analytics").json()
        today = datetime.now(UTC).date()
        assert [day["date"] for day in answer["days"]] == [
            (today - timedelta(days=29 - n)).isoformat() for n in range(30)]
        empty = answer["days"][0]
        assert (empty["by_type"], empty["fees"], empty["new_users"], empty["failed"]) == (
            {}, {}, 0, 0)

    @pytest.mark.parametrize("params", [{"from": "2026-12-02", "to": "2026-12-01"},
                                        {"from": "yesterday"}, {"to": "2026-13-01"},
                                        {"from": "2020-01-01", "to": "2026-01-01"},
                                        {"from": "9999-12-31"}, {"to": "0001-01-01"}])
    def test_a_bad_period_is_a_422(self, gopay: Deployment, params: dict[str, str]) -> None:
        """Reversed, malformed or over-long periods are refused as problems, never a 500."""
        response = gopay.admin.get("/v1/admin/analytics", params=params)
        assert response.status_code == 422, response.text
        assert response.json()["code"] == "validation_error"

    def test_only_admins_finance_and_auditors_read_them(self, gopay: Deployment,
                                                        load: Load) -> None:
        """Support staff and customers get 403; nobody signed in gets 401."""
        assert staff(gopay.server.url, gopay.server.env, "support").get(
            "/v1/admin/analytics").status_code == 403
        customer = register(gopay.server.url)
        load.customers.append(customer)  # a new user all the same
        assert customer.get("/v1/admin/analytics").status_code == 403
        assert Client(gopay.server.url).get("/v1/admin/analytics").status_code == 401
        for role in ("sub_admin", "auditor"):
            assert staff(gopay.server.url, gopay.server.env, role).get(
                "/v1/admin/analytics").status_code == 200

    def test_a_rebuild_from_event_zero_gives_the_same_figures(
            self, gopay: Deployment, load: Load, tmp_path: Path) -> None:
        """`gopay projections rebuild` (servers stopped) builds the figures again, identical."""
        today = datetime.now(UTC).date()
        before = analytics_of(gopay.admin, today - timedelta(days=1), today)
        gopay.server.stop()
        run_gopay("projections", "rebuild", env=gopay.server.env)
        gopay.server.start()
        admin = staff(gopay.server.url, gopay.server.env)
        after = analytics_of(admin, today - timedelta(days=1), today)
        # The new admin has no wallet: no figure changes.
        assert after == before
        assert_matches(after, load)
        verdict = staff(gopay.server.url, gopay.server.env, "auditor").get("/v1/audit/verify")
        assert verdict.status_code == 200, verdict.text
        assert verdict.json()["projections_match"] is True, verdict.json()
