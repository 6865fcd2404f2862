"""A customer's saved payment methods: one copy of each card, listed newest first."""

from __future__ import annotations

from uuid import uuid4

import pytest

from gopay.aggregates.errors import NotFound, ValidationFailed
from gopay.aggregates.payment_method import (
    PAYMENT_METHOD_SEALED_FIELDS,
    PaymentMethod,
    PaymentMethodExists,
    SavedMethods,
)
from gopay.api.problems import STATUS_OF_CODE


def saved_with(*fingerprints: str) -> tuple[SavedMethods, list]:
    saved = SavedMethods(id=uuid4(), owner_id=uuid4())
    ids = [uuid4() for _ in fingerprints]
    for method_id, fingerprint in zip(ids, fingerprints, strict=True):
        saved.add(method_id, fingerprint)
    return saved, ids


class TestSavedMethods:
    def test_the_same_fingerprint_twice_is_refused_naming_the_first(self) -> None:
        saved, [first] = saved_with("fp-a")
        with pytest.raises(PaymentMethodExists) as exists:
            saved.add(uuid4(), "fp-a")
        assert exists.value.existing_id == first
        assert (STATUS_OF_CODE[exists.value.code], exists.value.code) == (409, "payment_method_exists")

    def test_removing_a_method_frees_its_fingerprint(self) -> None:
        saved, [first] = saved_with("fp-a")
        saved.remove(first)
        again = uuid4()
        saved.add(again, "fp-a")
        assert saved.newest_first() == [again]

    def test_newest_first_and_after_a_cursor(self) -> None:
        """Removed methods are not listed, but a cursor naming one still works."""
        saved, [a, b, c, d] = saved_with("a", "b", "c", "d")
        saved.remove(c)
        assert saved.newest_first() == [d, b, a]
        assert saved.newest_first(after=d) == [b, a]
        assert saved.newest_first(after=c) == [b, a]
        assert saved.newest_first(after=a) == []
        with pytest.raises(ValidationFailed):
            saved.newest_first(after=uuid4())

    def test_removing_what_is_not_there_is_not_found(self) -> None:
        saved, [first] = saved_with("fp-a")
        saved.remove(first)
        for method_id in (first, uuid4()):
            with pytest.raises(NotFound):
                saved.remove(method_id)

    def test_changes_replace_attributes_instead_of_mutating_them(self) -> None:
        """The group commit copies aggregates shallowly: a copy must not see later changes."""
        saved, _ = saved_with("a")
        ids, in_use = saved.method_ids, saved.in_use
        saved.add(uuid4(), "b")
        assert (len(ids), len(in_use)) == (1, 1)


class TestPaymentMethod:
    def test_is_removed_once(self) -> None:
        method = PaymentMethod(id=uuid4(), owner_id=uuid4(), method_type="card",
                               details={"brand": "visa", "last4": "4242", "exp_month": 1,
                                        "exp_year": 2030},
                               holder_name="Ada", fingerprint="fp", request_digest=None)
        method.remove()
        assert method.removed
        with pytest.raises(NotFound):
            method.remove()
        assert [type(e) for e in method.collect_events()] == [PaymentMethod.Added,
                                                              PaymentMethod.Removed]

    def test_the_holder_name_is_sealed_in_stored_events(self) -> None:
        assert PAYMENT_METHOD_SEALED_FIELDS[PaymentMethod.Added] == ("holder_name",)
