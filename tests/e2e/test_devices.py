"""Lost or stolen phones: sign-in enrolls the device; locking it kills its tokens at once."""

from __future__ import annotations

import time
import uuid

import httpx
import pyotp

from tests.support import PASSWORD, Client, register


def sign_in(url: str, email: str, device_id: str | None, **fields: str) -> httpx.Response:
    body = {"email": email, "password": PASSWORD, **fields}
    if device_id:
        body["device_id"] = device_id
    return httpx.post(f"{url}/v1/auth/login", json=body)


def on_device(url: str, email: str, device_id: str) -> Client:
    response = sign_in(url, email, device_id)
    assert response.status_code == 200, response.text
    client = Client(url, response.json()["access_token"])
    client.refresh_token = response.json()["refresh_token"]
    return client


def status(url: str, device_id: str) -> dict:
    response = httpx.get(f"{url}/v1/devices/{device_id}/status")
    assert response.status_code == 200, response.text
    return response.json()


class TestLocking:
    def test_every_token_of_the_lost_phone_dies_at_once(self, server) -> None:  # type: ignore[no-untyped-def]
        """Access and refresh tokens of the locked device answer 401; other devices go on."""
        me = register(server.url)
        email = me.user["email"]
        phone, tablet = f"phone-{uuid.uuid4()}", f"tablet-{uuid.uuid4()}"
        lost, lost_too = on_device(server.url, email, phone), on_device(server.url, email, phone)
        other = on_device(server.url, email, tablet)
        listed = {d["id"]: d for d in other.get("/v1/me/devices").json()}
        assert set(listed) == {phone, tablet} and not listed[phone]["locked"]

        locked = other.post(f"/v1/me/devices/{phone}/lock", {"wipe": False})
        assert locked.status_code == 200, locked.text
        for client in (lost, lost_too):
            assert client.get("/v1/wallet").status_code == 401
            refreshed = httpx.post(f"{server.url}/v1/auth/refresh",
                                   json={"refresh_token": client.refresh_token})
            assert refreshed.status_code == 401
        assert other.get("/v1/wallet").status_code == 200
        assert status(server.url, phone) == {"locked": True, "wipe": False}
        assert status(server.url, tablet) == {"locked": False, "wipe": False}

    def test_wipe_is_what_the_phone_reads_when_it_next_connects(self, server) -> None:  # type: ignore[no-untyped-def]
        me = register(server.url)
        phone = f"phone-{uuid.uuid4()}"
        on_device(server.url, me.user["email"], phone)
        assert me.post(f"/v1/me/devices/{phone}/lock", {"wipe": True}).status_code == 200
        assert status(server.url, phone) == {"locked": True, "wipe": True}

    def test_a_locked_device_cannot_sign_in_again_until_reenrolled(self, server) -> None:  # type: ignore[no-untyped-def]
        """Not even with the right password; re-enrolling takes the password and the 2FA code."""
        me = register(server.url)
        email, phone = me.user["email"], f"phone-{uuid.uuid4()}"
        secret = me.post("/v1/auth/2fa/setup").json()["secret"]
        totp = pyotp.TOTP(secret)
        enabled = me.post("/v1/auth/2fa/enable", {"otp": totp.now()})
        assert enabled.status_code == 200
        recovery_code = enabled.json()["recovery_codes"][0]
        assert sign_in(server.url, email, phone, otp=totp.at(time.time() + 30)).status_code == 200
        assert me.post(f"/v1/me/devices/{phone}/lock", {"wipe": True}).status_code == 200

        refused = sign_in(server.url, email, phone, otp=totp.at(time.time() + 30))
        assert refused.status_code == 401 and refused.json()["code"] == "unauthenticated"
        no_code = me.post(f"/v1/me/devices/{phone}/reenroll", {"password": PASSWORD})
        assert no_code.status_code == 401 and no_code.json()["code"] == "otp_required"
        wrong_password = me.post(f"/v1/me/devices/{phone}/reenroll",
                                 {"password": "not the password", "otp": totp.now()})
        assert wrong_password.status_code == 401
        back = me.post(f"/v1/me/devices/{phone}/reenroll",
                       {"password": PASSWORD, "otp": recovery_code})
        assert back.status_code == 200, back.text
        assert status(server.url, phone) == {"locked": False, "wipe": False}
        assert sign_in(server.url, email, phone,
                       otp=enabled.json()["recovery_codes"][1]).status_code == 200

    def test_another_users_device_is_not_found(self, server) -> None:  # type: ignore[no-untyped-def]
        """Device ids are per account: locking someone else's answers 404 and changes nothing."""
        owner, stranger = register(server.url), register(server.url)
        phone = f"phone-{uuid.uuid4()}"
        kept = on_device(server.url, owner.user["email"], phone)
        for path, body in ((f"/v1/me/devices/{phone}/lock", {"wipe": True}),
                           (f"/v1/me/devices/{phone}/reenroll", {"password": PASSWORD})):
            response = stranger.post(path, body)
            assert response.status_code == 404 and response.json()["code"] == "not_found"
        assert kept.get("/v1/wallet").status_code == 200
        assert status(server.url, phone) == {"locked": False, "wipe": False}

    def test_an_unknown_device_looks_unlocked(self, server) -> None:  # type: ignore[no-untyped-def]
        assert status(server.url, "never-seen") == {"locked": False, "wipe": False}
