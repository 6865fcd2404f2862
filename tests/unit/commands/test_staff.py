"""Staff acting on accounts: freezing a wallet, giving a colleague another role."""

from __future__ import annotations

import pytest

from gopay.aggregates.errors import AccountFrozen, NotFound, ValidationFailed
from gopay.aggregates.session import Session
from gopay.aggregates.user import User
from gopay.aggregates.wallet import Wallet
from gopay.commands.staff import ChangeRole, SetFrozen
from tests.unit.commands.in_memory import InMemoryGoPay, wallet_id


@pytest.fixture
def ada(gopay: InMemoryGoPay) -> User:
    ada = gopay.register("ada@example.com")
    gopay.fund(ada, 5_000)
    return ada


def freeze(gopay: InMemoryGoPay, user: User, frozen: bool = True) -> None:
    gopay.run(SetFrozen(staff_id=gopay.admin.id, user_id=user.id, frozen=frozen,
                        reason="suspicious activity" if frozen else "cleared"))


class TestFreezing:
    def test_a_frozen_wallet_cannot_send(self, gopay: InMemoryGoPay, ada: User) -> None:
        """Sending from it is refused and no money moves."""
        gopay.register("grace@example.com")
        freeze(gopay, ada)
        with pytest.raises(AccountFrozen):
            gopay.transfer(ada, "grace@example.com", 100)
        assert gopay.balance(ada) == 5_000

    def test_a_frozen_wallet_still_receives(self, gopay: InMemoryGoPay, ada: User) -> None:
        grace = gopay.register("grace@example.com")
        gopay.fund(grace, 1_000)
        freeze(gopay, ada)
        gopay.transfer(grace, "ada@example.com", 300)
        assert gopay.balance(ada) == 5_300
        gopay.check_books()

    def test_unfreezing_lets_it_send_again(self, gopay: InMemoryGoPay, ada: User) -> None:
        gopay.register("grace@example.com")
        freeze(gopay, ada)
        freeze(gopay, ada, frozen=False)
        gopay.transfer(ada, "grace@example.com", 100)
        assert gopay.balance(ada) == 4_900

    def test_freezing_twice_records_it_once(self, gopay: InMemoryGoPay, ada: User) -> None:
        """Who froze it and why is recorded on the wallet, once."""
        freeze(gopay, ada)
        freeze(gopay, ada)
        frozen = [e for e in gopay.events(wallet_id(ada))
                  if isinstance(e, Wallet.Frozen)]
        assert [(e.by, e.reason) for e in frozen] == [(gopay.admin.id, "suspicious activity")]

    def test_an_account_without_a_wallet_cannot_be_frozen(self, gopay: InMemoryGoPay) -> None:
        support = gopay.register("support@gopay.example", kind="staff", role="support")
        with pytest.raises(NotFound, match="no wallet"):
            freeze(gopay, support)


class TestChangingRoles:
    def test_a_new_role_ends_every_session(self, gopay: InMemoryGoPay) -> None:
        """No token issued under the old role outlives the change."""
        member = gopay.register("support@gopay.example", kind="staff", role="support")
        sessions = [gopay.sign_in("support@gopay.example", device_id=d).session.id
                    for d in ("desk", None)]
        user = gopay.run(ChangeRole(admin_id=gopay.admin.id, staff_id=member.id, role="finance"))
        assert user.role == "finance"
        for session_id in sessions:
            revoked = gopay.events(session_id)[-1]
            assert isinstance(revoked, Session.Revoked) and revoked.reason == "role_changed"

    def test_the_same_role_again_changes_nothing(self, gopay: InMemoryGoPay) -> None:
        """Giving someone the role they have records nothing and ends no session."""
        member = gopay.register("support@gopay.example", kind="staff", role="support")
        session = gopay.sign_in("support@gopay.example").session
        admin = gopay.admin
        before = gopay.head()
        gopay.run(ChangeRole(admin_id=admin.id, staff_id=member.id, role="support"))
        assert gopay.head() == before
        assert not gopay.app.get(session.id, Session).revoked

    def test_nobody_changes_their_own_role(self, gopay: InMemoryGoPay) -> None:
        admin = gopay.admin
        with pytest.raises(ValidationFailed, match="own role"):
            gopay.run(ChangeRole(admin_id=admin.id, staff_id=admin.id, role="support"))
        assert gopay.user(admin.id).role == "admin"

    def test_customers_have_no_role_to_change(self, gopay: InMemoryGoPay, ada: User) -> None:
        with pytest.raises(ValidationFailed, match="only staff"):
            gopay.run(ChangeRole(admin_id=gopay.admin.id, staff_id=ada.id, role="admin"))

    def test_only_known_roles_are_given(self, gopay: InMemoryGoPay) -> None:
        member = gopay.register("support@gopay.example", kind="staff", role="support")
        with pytest.raises(ValidationFailed, match="role must be one of"):
            gopay.run(ChangeRole(admin_id=gopay.admin.id, staff_id=member.id, role="owner"))
        assert gopay.user(member.id).role == "support"

    def test_the_change_records_who_made_it(self, gopay: InMemoryGoPay) -> None:
        member = gopay.register("support@gopay.example", kind="staff", role="support")
        gopay.run(ChangeRole(admin_id=gopay.admin.id, staff_id=member.id, role="auditor"))
        changed = gopay.events(member.id)[-1]
        assert isinstance(changed, User.RoleChanged)
        assert (changed.role, changed.by) == ("auditor", gopay.admin.id)
