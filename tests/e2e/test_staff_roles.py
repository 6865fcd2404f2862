"""Staff roles change only by an admin, apply at once, and show in the security history."""

from __future__ import annotations

from tests.support import PASSWORD, login, register, staff


class TestRoleChanges:
    def test_a_new_role_applies_at_once(self, server, server_env, admin) -> None:  # type: ignore[no-untyped-def]
        """The old tokens die with the old role; signing in again carries the new one."""
        member = staff(server.url, server_env, "support")
        member_id = member.get("/v1/me").json()["id"]
        customer = register(server.url)
        assert member.post(f"/v1/admin/users/{customer.user['id']}/freeze").status_code == 403

        changed = admin.post(f"/v1/admin/staff/{member_id}/role", {"role": "sub_admin"})
        assert changed.status_code == 200, changed.text
        assert changed.json()["role"] == "sub_admin"
        assert member.get("/v1/me").status_code == 401

        again = login(server.url, changed.json()["email"], PASSWORD)
        assert again.post(f"/v1/admin/users/{customer.user['id']}/freeze").status_code == 200

        history = admin.get(f"/v1/admin/users/{member_id}/security-events").json()
        role_changes = [e for e in history if e["type"] == "RoleChanged"]
        assert role_changes and role_changes[-1]["data"]["role"] == "sub_admin"
        assert role_changes[-1]["data"]["by"] == admin.get("/v1/me").json()["id"]
        frozen = admin.get(f"/v1/admin/users/{customer.user['id']}/security-events").json()
        assert any(e["type"] == "Frozen" for e in frozen)

    def test_admins_cannot_change_their_own_role_nor_give_customers_one(self, server, admin) -> None:  # type: ignore[no-untyped-def]
        me = admin.get("/v1/me").json()["id"]
        own = admin.post(f"/v1/admin/staff/{me}/role", {"role": "support"})
        assert own.status_code == 422 and admin.get("/v1/me").json()["role"] == "admin"
        customer = register(server.url)
        assert admin.post(f"/v1/admin/staff/{customer.user['id']}/role",
                          {"role": "admin"}).status_code == 422
        assert admin.post(f"/v1/admin/staff/{me}/role", {"role": "king"}).status_code == 422
