"""KYC: customers submit documents, staff decide, and the tier's limits follow at once."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import new_database
from tests.support import Client, fund, gopay_env, register, staff

DOCUMENTS = {"document_type": "passport", "document_number": "X1234567",
             "date_of_birth": "1990-04-01"}


@pytest.fixture(scope="module")
def server_env(postgres_server, tmp_path_factory) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """The real default limits (other modules run with limits nobody reaches)."""
    return gopay_env(new_database(postgres_server), tmp_path_factory.mktemp("var"),
                     GOPAY_KYC_LIMITS="{}")


def send(client: Client, to: Client, amount: int, key: str | None = None):  # type: ignore[no-untyped-def]
    return client.post("/v1/transfers", {"recipient": to.user["email"], "amount": amount,
                                         "currency": "USD"}, key=key)


class TestUnverifiedLimits:
    def test_per_payment_per_day_and_balance_limits_answer_422(self, server, admin) -> None:  # type: ignore[no-untyped-def]
        """100.00 a payment, 300.00 a day, 1,000.00 held; each refusal moves nothing."""
        payer, payee = register(server.url), register(server.url)
        fund(admin, payer.user["wallet_id"], 90_000)
        over = send(payer, payee, 10_001)
        assert over.status_code == 422 and over.json()["code"] == "limit_exceeded"
        assert over.headers["content-type"] == "application/problem+json"
        for _ in range(3):
            assert send(payer, payee, 10_000).status_code == 201
        daily = send(payer, payee, 1)
        assert daily.status_code == 422 and daily.json()["code"] == "limit_exceeded"
        assert payer.balance() == 60_000 and payee.balance() == 30_000

        rich = register(server.url)
        fund(admin, rich.user["wallet_id"], 100_000)  # staff corrections are not limited
        full = send(register_and_fund(server, admin), rich, 1)
        assert full.status_code == 422 and full.json()["code"] == "limit_exceeded"
        assert rich.balance() == 100_000

    def test_a_keyed_refusal_repeats_itself(self, server, admin) -> None:  # type: ignore[no-untyped-def]
        payer, payee = register(server.url), register(server.url)
        fund(admin, payer.user["wallet_id"], 50_000)
        first = send(payer, payee, 20_000, key="too-much")
        again = send(payer, payee, 20_000, key="too-much")
        assert first.status_code == again.status_code == 422
        assert again.json()["code"] == "limit_exceeded"


def register_and_fund(server, admin) -> Client:  # type: ignore[no-untyped-def]
    client = register(server.url)
    fund(admin, client.user["wallet_id"], 10_000)
    return client


class TestVerification:
    def test_approval_lifts_the_limits(self, server, admin) -> None:  # type: ignore[no-untyped-def]
        payer, payee = register(server.url), register(server.url)
        fund(admin, payer.user["wallet_id"], 500_000)
        submitted = payer.post("/v1/me/kyc", DOCUMENTS)
        assert submitted.status_code == 200, submitted.text
        assert submitted.json()["kyc_status"] == "pending"
        assert send(payer, payee, 50_000).status_code == 422  # pending is still unverified
        payee_approved = admin.post(f"/v1/admin/users/{payee.user['id']}/kyc",
                                    {"decision": "approve"})
        assert payee_approved.status_code == 409  # payee never submitted documents

        approved = admin.post(f"/v1/admin/users/{payer.user['id']}/kyc", {"decision": "approve"})
        assert approved.status_code == 200, approved.text
        assert approved.json()["kyc_status"] == "verified"
        assert payer.get("/v1/me").json()["kyc_status"] == "verified"
        # The payer may now send 500.00, but the unverified payee may hold at most 1,000.00.
        assert send(payer, payee, 50_000).status_code == 201
        assert send(payer, payee, 60_000).json()["code"] == "limit_exceeded"

    def test_rejection_keeps_low_limits_and_allows_a_new_submission(self, server, admin) -> None:  # type: ignore[no-untyped-def]
        client = register(server.url)
        assert client.post("/v1/me/kyc", DOCUMENTS).status_code == 200
        assert client.post("/v1/me/kyc", DOCUMENTS).status_code == 409  # already pending
        rejected = admin.post(f"/v1/admin/users/{client.user['id']}/kyc",
                              {"decision": "reject", "reason": "blurry photo"})
        assert rejected.json()["kyc_status"] == "rejected"
        assert client.post("/v1/me/kyc", DOCUMENTS).json()["kyc_status"] == "pending"

    @pytest.mark.parametrize("change", [
        {"document_type": "library_card"}, {"document_number": "!"},
        {"document_number": "x" * 40}, {"date_of_birth": "2020-01-01"},
        {"date_of_birth": "1850-01-01"}, {"date_of_birth": "01/04/1990"},
        {"kyc_status": "verified"}])
    def test_bad_documents_are_422(self, server, change) -> None:  # type: ignore[no-untyped-def]
        client = register(server.url)
        response = client.post("/v1/me/kyc", {**DOCUMENTS, **change})
        assert response.status_code == 422 and response.json()["code"] == "validation_error"
        assert client.get("/v1/me").json()["kyc_status"] == "unverified"

    def test_only_admins_and_sub_admins_decide(self, server, server_env) -> None:  # type: ignore[no-untyped-def]
        client = register(server.url)
        client.post("/v1/me/kyc", DOCUMENTS)
        for role in ("support", "auditor", "finance"):
            staffer = staff(server.url, server_env, role)
            response = staffer.post(f"/v1/admin/users/{client.user['id']}/kyc",
                                    {"decision": "approve"})
            assert response.status_code == 403
        assert client.post(f"/v1/admin/users/{client.user['id']}/kyc",
                           {"decision": "approve"}).status_code == 403


class TestSecurityHistory:
    def test_auditors_see_sign_ins_failures_kyc_and_locks(self, server, server_env) -> None:  # type: ignore[no-untyped-def]
        client = register(server.url)
        email = client.user["email"]
        httpx.post(f"{server.url}/v1/auth/login", json={"email": email, "password": "wrong one!"})
        httpx.post(f"{server.url}/v1/auth/login",
                   json={"email": email, "password": "correct horse battery", "device_id": "p1"})
        client.post("/v1/me/kyc", DOCUMENTS)
        client.post("/v1/me/devices/p1/lock", {"wipe": True})
        auditor = staff(server.url, server_env, "auditor")
        response = auditor.get(f"/v1/admin/users/{client.user['id']}/security-events")
        assert response.status_code == 200, response.text
        events = response.json()
        kinds = [e["type"] for e in events]
        for expected in ("Registered", "LoginFailed", "LoggedIn", "KycSubmitted", "DeviceLocked"):
            assert expected in kinds
        failed = next(e for e in events if e["type"] == "LoginFailed")
        assert failed["data"]["reason"] == "password" and failed["data"]["address"] == "127.0.0.1"
        text = response.text
        assert "X1234567" not in text and "password_hash" not in text and "argon2" not in text
        assert client.get(f"/v1/admin/users/{client.user['id']}/security-events").status_code == 403
