"""Payment methods: the number sealed in the vault, a masked method in the events, one copy per card."""

from __future__ import annotations

from datetime import date
from uuid import UUID

import pytest

from gopay.aggregates.errors import IdempotencyConflict, NotFound, ValidationFailed
from gopay.aggregates.instruments import Instrument, card, crypto
from gopay.aggregates.payment_method import PaymentMethod, PaymentMethodExists, SavedMethods
from gopay.aggregates.user import User
from gopay.commands.payment_methods import AddPaymentMethod, RemovePaymentMethod, reveal
from gopay.security.data_keys import SealBroken
from gopay.security.vault import MemorySecretStore
from tests.unit.commands.in_memory import InMemoryGoPay

VISA, MASTERCARD = "4242 4242 4242 4242", "5555555555554444"
TODAY = date(2026, 3, 13)


def a_card(number: str = VISA, holder: str = "Ada Lovelace") -> Instrument:
    return card(number, 12, 29, "123", holder, today=TODAY)


@pytest.fixture
def ada(gopay: InMemoryGoPay) -> User:
    return gopay.register("ada@example.com")


def add(gopay: InMemoryGoPay, owner: User, instrument: Instrument | None = None,
        key: str | None = None) -> PaymentMethod:
    return gopay.run(AddPaymentMethod(owner_id=owner.id, instrument=instrument or a_card(),
                                      idempotency_key=key))


def vaulted(gopay: InMemoryGoPay) -> dict[tuple[UUID, str], tuple[UUID, str]]:
    """What the vault's store holds: (method, fingerprint) → (owner, sealed secret)."""
    store = gopay.app.stores.secrets
    assert isinstance(store, MemorySecretStore)
    return store.secrets


class TestAdding:
    def test_the_method_shows_only_masked_details(self, gopay: InMemoryGoPay, ada: User) -> None:
        method = add(gopay, ada)
        assert (method.owner_id, method.method_type, method.holder_name) == (
            ada.id, "card", "Ada Lovelace")
        assert dict(method.details) == {"brand": "visa", "last4": "4242", "exp_month": 12,
                                        "exp_year": 2029}

    def test_the_vault_holds_the_number_sealed(self, gopay: InMemoryGoPay, ada: User) -> None:
        """One sealed secret for the method, under its owner, that opens to the full number."""
        method = add(gopay, ada)
        [(key, (owner, sealed))] = vaulted(gopay).items()
        assert key == (method.id, method.fingerprint) and owner == ada.id
        assert sealed.startswith("sealed:") and "4242424242424242" not in sealed
        assert reveal(gopay.context, ada.id, method.id, "card") == "4242424242424242"

    def test_no_stored_event_holds_the_number(self, gopay: InMemoryGoPay, ada: User) -> None:
        """The log carries a keyed fingerprint, never the number (nor the sealed holder name)."""
        add(gopay, ada)
        stored = b"".join(n.state for n in gopay.app.recorder.select_notifications(start=1,
                                                                                  limit=100))
        assert b"4242424242424242" not in stored and b"Ada Lovelace" not in stored

    def test_other_kinds_of_method_are_kept_the_same_way(self, gopay: InMemoryGoPay, ada: User) -> None:
        address = "0x52908400098527886e0f7030069857d2e4169ee7"
        method = add(gopay, ada, crypto("eth", address))
        assert method.details["address"] == "0x5290...9ee7"
        assert reveal(gopay.context, ada.id, method.id, "crypto") == address

    def test_staff_keep_no_payment_methods(self, gopay: InMemoryGoPay) -> None:
        with pytest.raises(ValidationFailed, match="only customers"):
            add(gopay, gopay.admin)
        assert vaulted(gopay) == {}


class TestOneCopyOfACard:
    def test_the_same_card_again_is_refused_naming_the_saved_one(self, gopay: InMemoryGoPay,
                                                                 ada: User) -> None:
        """The refusal tells the client which method to use; the second number is not kept."""
        first = add(gopay, ada)
        with pytest.raises(PaymentMethodExists) as refused:
            add(gopay, ada, a_card(holder="A. Lovelace"))
        assert refused.value.existing_id == first.id
        assert refused.value.details["payment_method_id"] == str(first.id)
        assert list(vaulted(gopay)) == [(first.id, first.fingerprint)]

    def test_another_customer_may_save_the_same_card(self, gopay: InMemoryGoPay, ada: User) -> None:
        """Fingerprints are keyed per owner: nothing links one customer's card to another's."""
        grace = gopay.register("grace@example.com")
        mine, theirs = add(gopay, ada), add(gopay, grace)
        assert mine.fingerprint != theirs.fingerprint

    def test_a_removed_card_may_be_saved_again(self, gopay: InMemoryGoPay, ada: User) -> None:
        first = add(gopay, ada)
        gopay.run(RemovePaymentMethod(owner_id=ada.id, method_id=first.id))
        again = add(gopay, ada)
        assert again.id != first.id
        saved = gopay.app.get(SavedMethods.id_for(ada.id), SavedMethods)
        assert saved.newest_first() == [again.id]


class TestRepeatedRequests:
    def test_a_repeated_key_finds_the_first_method(self, gopay: InMemoryGoPay, ada: User) -> None:
        """A retry answers with the method the first request saved and saves nothing."""
        first = add(gopay, ada, key="card-1")
        head = gopay.head()
        again = add(gopay, ada, key="card-1")
        assert again.id == first.id and gopay.head() == head
        assert reveal(gopay.context, ada.id, first.id, "card") == "4242424242424242"

    def test_the_same_key_for_another_card_is_a_conflict(self, gopay: InMemoryGoPay,
                                                         ada: User) -> None:
        """The key stands for its first request; the other card's number is not kept."""
        first = add(gopay, ada, key="card-1")
        with pytest.raises(IdempotencyConflict):
            add(gopay, ada, a_card(MASTERCARD), key="card-1")
        assert list(vaulted(gopay)) == [(first.id, first.fingerprint)]
        assert reveal(gopay.context, ada.id, first.id, "card") == "4242424242424242"


class TestRemoving:
    def test_removing_forgets_the_number_and_keeps_the_masked_history(self, gopay: InMemoryGoPay,
                                                                      ada: User) -> None:
        method = add(gopay, ada)
        removed = gopay.run(RemovePaymentMethod(owner_id=ada.id, method_id=method.id))
        assert removed.removed and removed.details["last4"] == "4242"
        assert vaulted(gopay) == {}
        with pytest.raises(NotFound):
            reveal(gopay.context, ada.id, method.id, "card")

    def test_nobody_removes_another_customer_s_method(self, gopay: InMemoryGoPay, ada: User) -> None:
        method = add(gopay, ada)
        grace = gopay.register("grace@example.com")
        with pytest.raises(NotFound):
            gopay.run(RemovePaymentMethod(owner_id=grace.id, method_id=method.id))
        assert reveal(gopay.context, ada.id, method.id, "card") == "4242424242424242"

    def test_removing_twice_is_not_found(self, gopay: InMemoryGoPay, ada: User) -> None:
        method = add(gopay, ada)
        gopay.run(RemovePaymentMethod(owner_id=ada.id, method_id=method.id))
        with pytest.raises(NotFound):
            gopay.run(RemovePaymentMethod(owner_id=ada.id, method_id=method.id))


class TestRevealing:
    def test_only_the_owner_s_method_of_that_kind_is_opened(self, gopay: InMemoryGoPay,
                                                           ada: User) -> None:
        method = add(gopay, ada)
        grace = gopay.register("grace@example.com")
        with pytest.raises(NotFound):
            reveal(gopay.context, grace.id, method.id, "card")
        with pytest.raises(ValidationFailed, match="not a bank_account"):
            reveal(gopay.context, ada.id, method.id, "bank_account")

    def test_a_secret_moved_to_another_method_does_not_open(self, gopay: InMemoryGoPay,
                                                            ada: User) -> None:
        """A sealed number is bound to its method: copied onto another one, it is refused."""
        visa, mastercard = add(gopay, ada), add(gopay, ada, a_card(MASTERCARD))
        store = vaulted(gopay)
        store[(mastercard.id, mastercard.fingerprint)] = store[(visa.id, visa.fingerprint)]
        with pytest.raises(SealBroken):
            reveal(gopay.context, ada.id, mastercard.id, "card")
