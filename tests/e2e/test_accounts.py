"""Registration, sign-in, sessions, profiles and staff powers over HTTP."""

from __future__ import annotations

import base64
import json
import time
import uuid

import httpx
import jwt

from tests.support import PASSWORD, SECRET_KEY, Client, fund, login, register, staff, unique_phone


def registration(**fields: object) -> dict[str, object]:
    return {"email": f"{uuid.uuid4().hex[:10]}@example.com", "password": PASSWORD,
            "full_name": "Ada Lovelace", "phone": unique_phone(), "country": "GB",
            "kind": "person", **fields}


class TestRegistration:
    def test_person_gets_an_unverified_wallet(self, server) -> None:
        response = httpx.post(f"{server.url}/v1/auth/register", json=registration())
        assert response.status_code == 201
        body = response.json()
        assert body["kind"] == "person" and body["kyc_status"] == "unverified"
        assert uuid.UUID(body["id"]) and uuid.UUID(body["wallet_id"])

    def test_wallet_in_the_chosen_currency(self, server) -> None:
        client = register(server.url, currency="EUR")
        assert client.get("/v1/wallet").json() == {
            "id": client.user["wallet_id"], "currency": "EUR", "balance": 0, "available": 0,
            "held": 0, "frozen": False}

    def test_company_needs_business_name_and_category(self, server) -> None:
        missing = httpx.post(f"{server.url}/v1/auth/register", json=registration(kind="company"))
        assert (missing.status_code, missing.json()["code"]) == (422, "validation_error")
        company = httpx.post(f"{server.url}/v1/auth/register", json=registration(
            kind="company", business_name="Corner Shop", category="merchant"))
        assert company.status_code == 201 and company.json()["business_name"] == "Corner Shop"

    def test_invalid_fields_are_refused(self, server) -> None:
        """Short passwords, bad e-mails, phones, countries, kinds and currencies: 422."""
        for bad in ({"password": "short"}, {"email": "not-an-email"}, {"phone": "2025550123"},
                    {"country": "XX"}, {"country": "usa"}, {"kind": "staff"},
                    {"currency": "XYZ"}, {"currency": 840}, {"full_name": ""}):
            response = httpx.post(f"{server.url}/v1/auth/register", json=registration(**bad))
            assert response.status_code == 422, bad
            assert response.json()["code"] == "validation_error"

    def test_email_and_phone_are_unique(self, server) -> None:
        first = registration()
        assert httpx.post(f"{server.url}/v1/auth/register", json=first).status_code == 201
        same_email = httpx.post(f"{server.url}/v1/auth/register",
                                json=registration(email=first["email"].upper()))
        assert (same_email.status_code, same_email.json()["code"]) == (409, "email_taken")
        same_phone = httpx.post(f"{server.url}/v1/auth/register",
                                json=registration(phone=first["phone"]))
        assert same_phone.status_code == 409

    def test_repeated_key_returns_the_same_account(self, server) -> None:
        body = registration()
        headers = {"Idempotency-Key": "signup-1"}
        first = httpx.post(f"{server.url}/v1/auth/register", json=body, headers=headers)
        again = httpx.post(f"{server.url}/v1/auth/register", json=body, headers=headers)
        assert first.status_code == again.status_code == 201
        assert first.json() == again.json()
        other = httpx.post(f"{server.url}/v1/auth/register",
                           json={**body, "full_name": "Someone Else"}, headers=headers)
        assert (other.status_code, other.json()["code"]) == (409, "idempotency_conflict")


class TestSignIn:
    def test_wrong_password_and_unknown_email_look_the_same(self, server) -> None:
        client = register(server.url)
        answers = [httpx.post(f"{server.url}/v1/auth/login", json=credentials)
                   for credentials in ({"email": client.user["email"], "password": "wrong" * 3},
                                       {"email": "nobody@example.com", "password": PASSWORD})]
        assert [a.status_code for a in answers] == [401, 401]
        assert answers[0].json() == answers[1].json()

    def test_me_shows_the_profile(self, server) -> None:
        client = register(server.url)
        me = client.get("/v1/me").json()
        assert me["id"] == client.user["id"] and me["email"] == client.user["email"]
        assert "password_hash" not in me and "password" not in json.dumps(me)

    def test_forged_expired_and_unsigned_tokens_are_refused(self, server) -> None:
        client = register(server.url)
        token = client.http.headers["Authorization"].split()[1]
        claims = jwt.decode(token, SECRET_KEY, algorithms=["HS256"])
        expired = jwt.encode({**claims, "exp": int(time.time()) - 10}, SECRET_KEY, "HS256")
        wrong_key = jwt.encode(claims, "another-key-of-sufficient-length-xyz", "HS256")
        header = base64.urlsafe_b64encode(b'{"alg":"none","typ":"JWT"}').rstrip(b"=").decode()
        unsigned = f"{header}.{token.split('.')[1]}."
        for bad in (expired, wrong_key, unsigned, token[:-2], "garbage", "a.b.c"):
            response = httpx.get(f"{server.url}/v1/wallet",
                                 headers={"Authorization": f"Bearer {bad}"})
            assert response.status_code == 401, bad
            assert response.json()["code"] == "unauthenticated"
        assert httpx.get(f"{server.url}/v1/wallet").status_code == 401

    def test_refresh_rotates_and_reuse_revokes_the_session(self, server) -> None:
        client = register(server.url)
        old_refresh = client.refresh_token
        rotated = httpx.post(f"{server.url}/v1/auth/refresh", json={"refresh_token": old_refresh})
        assert rotated.status_code == 200
        new_pair = rotated.json()
        reused = httpx.post(f"{server.url}/v1/auth/refresh", json={"refresh_token": old_refresh})
        assert reused.status_code == 401
        # The theft is detected: the newest tokens of that session die too.
        after = httpx.post(f"{server.url}/v1/auth/refresh",
                           json={"refresh_token": new_pair["refresh_token"]})
        assert after.status_code == 401
        assert Client(server.url, new_pair["access_token"]).get("/v1/wallet").status_code == 401

    def test_logout_kills_the_access_token_at_once(self, server) -> None:
        client = register(server.url)
        assert client.get("/v1/wallet").status_code == 200
        assert client.post("/v1/auth/logout").status_code == 204
        assert client.get("/v1/wallet").status_code == 401
        again = login(server.url, client.user["email"])
        assert again.get("/v1/wallet").status_code == 200


class TestProfile:
    def test_owner_changes_name_phone_and_preferences(self, server) -> None:
        client = register(server.url)
        new_phone = unique_phone()
        response = client.http.patch("/v1/me", json={
            "full_name": "Ada King", "phone": new_phone, "login_notifications": False})
        assert response.status_code == 200, response.text
        assert client.get("/v1/me").json() == response.json()
        me = response.json()
        assert (me["full_name"], me["phone"], me["login_notifications"]) == (
            "Ada King", new_phone, False)

    def test_mass_assignment_is_refused_and_changes_nothing(self, server) -> None:
        """Role, balance, KYC status, wallet or id cannot be set through the profile."""
        client = register(server.url)
        before = client.get("/v1/me").json()
        for field, value in (("role", "admin"), ("kyc_status", "verified"), ("balance", 10**6),
                             ("wallet_id", str(uuid.uuid4())), ("kind", "agent"),
                             ("id", str(uuid.uuid4())), ("email", "new@example.com")):
            response = client.http.patch("/v1/me", json={field: value, "full_name": "Eve"})
            assert response.status_code == 422, field
            assert response.json()["code"] == "validation_error"
        assert client.get("/v1/me").json() == before
        assert client.balance() == 0

    def test_a_phone_number_moves_between_accounts_only_when_released(self, server, admin) -> None:
        """Taking someone's number is a 409; once they change theirs, it can be claimed."""
        alice, bob = register(server.url), register(server.url)
        alices_number = alice.user["phone"]
        taken = bob.http.patch("/v1/me", json={"phone": alices_number})
        assert (taken.status_code, taken.json()["code"]) == (409, "phone_taken")
        assert alice.http.patch("/v1/me", json={"phone": unique_phone()}).status_code == 200
        assert bob.http.patch("/v1/me", json={"phone": alices_number}).status_code == 200
        fund(admin, alice.user["wallet_id"], 100)
        sent = alice.post("/v1/transfers", {"recipient": alices_number, "amount": 40,
                                            "currency": "USD"})
        assert sent.status_code == 201 and sent.json()["recipient_wallet_id"] == bob.user["wallet_id"]
        assert bob.balance() == 40


class TestStaff:
    def test_customers_cannot_use_staff_endpoints(self, server) -> None:
        client = register(server.url)
        for path in ("/v1/admin/users", ):
            assert client.get(path).status_code == 403
        response = client.post("/v1/admin/adjustments", {
            "wallet_id": client.user["wallet_id"], "direction": "credit", "amount": 100,
            "currency": "USD", "reason": "free money"})
        assert (response.status_code, response.json()["code"]) == (403, "forbidden")
        assert client.post(f"/v1/admin/users/{client.user['id']}/freeze").status_code == 403
        assert client.balance() == 0

    def test_only_admins_adjust_and_the_entry_names_them(self, server, server_env, admin) -> None:
        customer = register(server.url)
        auditor = staff(server.url, server_env, "auditor")
        body = {"wallet_id": customer.user["wallet_id"], "direction": "credit", "amount": 700,
                "currency": "USD", "reason": "goodwill"}
        assert auditor.post("/v1/admin/adjustments", body).status_code == 403
        created = admin.post("/v1/admin/adjustments", body)
        assert created.status_code == 201
        me = admin.get("/v1/me").json()
        assert created.json()["created_by"] == me["id"] and created.json()["reason"] == "goodwill"
        [row] = customer.history()
        assert (row["type"], row["direction"], row["amount"]) == ("adjustment", "credit", 700)

    def test_debit_adjustment_cannot_overdraw(self, server, admin) -> None:
        customer = register(server.url)
        fund(admin, customer.user["wallet_id"], 100)
        response = admin.post("/v1/admin/adjustments", {
            "wallet_id": customer.user["wallet_id"], "direction": "debit", "amount": 101,
            "currency": "USD", "reason": "correction"})
        assert (response.status_code, response.json()["code"]) == (422, "insufficient_funds")
        assert customer.balance() == 100

    def test_user_search_finds_customers(self, server, server_env, admin) -> None:
        customer = register(server.url, full_name="Grace Hopper")
        support = staff(server.url, server_env, "support")
        page = support.get("/v1/admin/users", params={"q": customer.user["email"]}).json()
        assert [row["id"] for row in page["data"]] == [customer.user["id"]]
        assert page["data"][0]["wallet"]["balance"] == 0

    def test_freeze_of_unknown_user_is_404(self, server, admin) -> None:
        assert admin.post(f"/v1/admin/users/{uuid.uuid4()}/freeze").status_code == 404
        assert admin.post("/v1/admin/users/nonsense/freeze").status_code == 404


class TestCompanies:
    def test_people_find_companies_by_name(self, server) -> None:
        shop = httpx.post(f"{server.url}/v1/auth/register", json=registration(
            kind="company", business_name="Zanzibar Spice Traders", category="merchant")).json()
        person = register(server.url)
        page = person.get("/v1/companies", params={"q": "zanzibar spice"}).json()
        assert [c["id"] for c in page["data"]] == [shop["id"]]
        assert page["data"][0]["category"] == "merchant"


class TestPagination:
    def test_history_pages_newest_first_without_gaps(self, server, admin) -> None:
        alice, bob = register(server.url), register(server.url)
        fund(admin, alice.user["wallet_id"], 1_000)
        for amount in range(1, 8):
            alice.post("/v1/transfers", {"recipient": bob.user["email"], "amount": amount,
                                         "currency": "USD"})
        seen, cursor = [], None
        while True:
            params = {"limit": 3, **({"cursor": cursor} if cursor else {})}
            page = bob.get("/v1/wallet/transactions", params=params).json()
            seen += [row["amount"] for row in page["data"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert seen == [7, 6, 5, 4, 3, 2, 1]
        only = bob.get("/v1/wallet/transactions", params={"type": "adjustment"}).json()
        assert only["data"] == []
        for bad in ({"limit": 0}, {"limit": 201}, {"cursor": "abc"}, {"type": "gift"}):
            assert bob.get("/v1/wallet/transactions", params=bad).status_code == 422


class TestOperations:
    def test_health_and_metrics(self, server) -> None:
        assert httpx.get(f"{server.url}/health/live").status_code == 200
        ready = httpx.get(f"{server.url}/health/ready")
        assert ready.status_code == 200 and ready.json()["status"] == "ready"
        metrics = httpx.get(f"{server.url}/metrics").text
        assert "gopay_http_requests_total" in metrics
        assert "gopay_projection_lag_seconds" in metrics
        assert "gopay_commit_batch_commands_count" in metrics

    def test_openapi_describes_the_api(self, server) -> None:
        spec = httpx.get(f"{server.url}/openapi.json").json()
        for path in ("/v1/auth/register", "/v1/auth/login", "/v1/me", "/v1/wallet",
                     "/v1/wallet/transactions", "/v1/transfers", "/v1/admin/adjustments"):
            assert path in spec["paths"]
        assert httpx.get(f"{server.url}/docs").status_code == 200

    def test_unknown_paths_and_methods_are_problems(self, server) -> None:
        missing = httpx.get(f"{server.url}/v1/nothing-here")
        assert missing.status_code == 404
        assert missing.headers["content-type"] == "application/problem+json"
        wrong_method = httpx.delete(f"{server.url}/v1/wallet")
        assert wrong_method.status_code == 405
