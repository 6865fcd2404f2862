"""The payment-method vault on real PostgreSQL: numbers sealed, opened only for their owner, and
still opening after a master key rotation that deleted the old key."""

from __future__ import annotations

import hashlib
import re
from datetime import date
from uuid import uuid4

import psycopg
import pytest
from stdnum import luhn

from gopay.aggregates import instruments
from gopay.aggregates.errors import IdempotencyConflict, NotFound, ValidationFailed
from gopay.aggregates.payment_method import PaymentMethod, PaymentMethodExists
from gopay.aggregates.user import User
from gopay.application import GoPay, application_env
from gopay.commands import Commands
from gopay.commands.payment_methods import AddPaymentMethod, RemovePaymentMethod, reveal
from gopay.commands.registration import Register
from gopay.security.data_keys import SealBroken
from gopay.security.keyring import KeyRing
from gopay.settings import Settings
from gopay.system import System, command_context

NUMBER, CVC, HOLDER = "4000056655665556", "7391", "Quintessa Marchbanks"
IBAN = "DE89370400440532013000"
TODAY = date(2026, 1, 1)


def customer(commands: Commands, kind: str = "person") -> User:
    return commands.run(Register(
        email=f"{uuid4().hex[:10]}@example.org", password="correct horse battery", kind=kind,
        full_name="Vault Tester", phone=f"+1202{uuid4().int % 10**7:07d}", country="US",
        role="admin" if kind == "staff" else None)).value


def add_payment_method(commands: Commands, owner_id, instrument, key: str | None = None  # type: ignore[no-untyped-def]
                       ) -> PaymentMethod:
    return commands.run(AddPaymentMethod(owner_id=owner_id, instrument=instrument,
                                         idempotency_key=key)).value


def reveal_card(commands: Commands, owner_id, method_id) -> str:  # type: ignore[no-untyped-def]
    return reveal(commands.context, owner_id, method_id, "card")


def get_payment_method(commands: Commands, owner_id, method_id) -> PaymentMethod:  # type: ignore[no-untyped-def]
    """The owner's saved method as the write model holds it; NotFound once removed."""
    method = commands.context.app.find(method_id, PaymentMethod)
    if method is None or method.owner_id != owner_id or method.removed:
        raise NotFound("payment method not found")
    return method


def card(number: str = NUMBER) -> instruments.Instrument:
    return instruments.card(number, 12, 2030, CVC, HOLDER, today=TODAY)


def vault_rows(database_url: str) -> list[tuple]:
    with psycopg.connect(database_url) as conn:
        return conn.execute("SELECT payment_method_id, fingerprint, owner_id, sealed "
                            "FROM vault_secrets").fetchall()


def stored_states(database_url: str) -> list[bytes]:
    with psycopg.connect(database_url) as conn:
        return [bytes(row[0]) for row in conn.execute("SELECT state FROM gopay_events")]


def luhn_valid_runs(data: bytes) -> list[bytes]:
    """Runs of 13-19 digits standing alone that pass the Luhn check: card numbers."""
    return [run for run in re.findall(rb"(?<![0-9A-Za-z])[0-9]{13,19}(?![0-9A-Za-z])", data)
            if luhn.is_valid(run.decode())]


class TestVault:
    def test_a_saved_card_opens_for_its_owner_and_nobody_else(self, system: System) -> None:
        alice, mallory = customer(system.commands), customer(system.commands)
        method = add_payment_method(system.commands, alice.id, card())

        assert reveal_card(system.commands, alice.id, method.id) == NUMBER
        with pytest.raises(NotFound):
            reveal_card(system.commands, mallory.id, method.id)
        with pytest.raises(NotFound):
            reveal_card(system.commands, alice.id, uuid4())

    def test_only_a_card_opens_as_a_card(self, system: System) -> None:
        alice = customer(system.commands)
        account = add_payment_method(system.commands, alice.id,
                                     instruments.bank_account(IBAN, HOLDER))
        with pytest.raises(ValidationFailed):
            reveal_card(system.commands, alice.id, account.id)
        assert reveal(system.commands.context, alice.id, account.id, "bank_account") == IBAN

    def test_numbers_are_sealed_and_the_cvc_kept_nowhere(self, system: System,
                                                         database_url: str) -> None:
        """The event store holds no number, IBAN, CVC or holder name; the vault holds the
        number sealed, and what it seals is the number alone."""
        alice = customer(system.commands)
        method = add_payment_method(system.commands, alice.id, card())
        add_payment_method(system.commands, alice.id, instruments.bank_account(IBAN, HOLDER))

        states = stored_states(database_url)
        for secret in (NUMBER, IBAN, HOLDER, "4000 0566", f'"{CVC}"'):
            assert not any(secret.encode() in state for state in states), secret
        assert not any(luhn_valid_runs(state) for state in states)

        rows = vault_rows(database_url)
        assert len(rows) == 2
        for _, _, owner_id, sealed in rows:
            assert sealed.startswith("sealed:v1:") and NUMBER not in sealed and IBAN not in sealed
            assert not luhn_valid_runs(sealed.encode())
            assert owner_id == alice.id
        [card_row] = [row for row in rows if row[0] == method.id]
        assert system.app.data_keys.unseal(alice.id, f"vault/{method.id}", card_row[3]) == NUMBER

    def test_a_sealed_number_moved_to_another_method_does_not_open(
            self, system: System, database_url: str) -> None:
        alice = customer(system.commands)
        first = add_payment_method(system.commands, alice.id, card())
        second = add_payment_method(system.commands, alice.id, card("5555555555554444"))
        with psycopg.connect(database_url) as conn:
            conn.execute("UPDATE vault_secrets SET sealed = (SELECT sealed FROM vault_secrets "
                         "WHERE payment_method_id = %s) WHERE payment_method_id = %s",
                         (first.id, second.id))
        with pytest.raises(SealBroken):
            reveal_card(system.commands, alice.id, second.id)

    def test_removing_a_method_forgets_its_number(self, system: System,
                                                  database_url: str) -> None:
        alice = customer(system.commands)
        method = add_payment_method(system.commands, alice.id, card())
        system.commands.run(RemovePaymentMethod(owner_id=alice.id, method_id=method.id))
        assert vault_rows(database_url) == []
        for look in (get_payment_method, reveal_card):
            with pytest.raises(NotFound):
                look(system.commands, alice.id, method.id)

    def test_staff_keep_no_payment_methods(self, system: System) -> None:
        staff = customer(system.commands, kind="staff")
        with pytest.raises(ValidationFailed):
            add_payment_method(system.commands, staff.id, card())


class TestFingerprints:
    def test_the_same_card_twice_is_refused_and_leaves_no_second_secret(
            self, system: System, database_url: str) -> None:
        alice = customer(system.commands)
        first = add_payment_method(system.commands, alice.id, card())
        for again in (card(), card("4000 0566 5566 5556")):
            with pytest.raises(PaymentMethodExists) as exists:
                add_payment_method(system.commands, alice.id, again)
            assert exists.value.existing_id == first.id
        assert len(vault_rows(database_url)) == 1

    def test_fingerprints_are_keyed_per_owner(self, system: System) -> None:
        """Two owners may save one card, and its fingerprints do not link them."""
        alice, bob = customer(system.commands), customer(system.commands)
        of_alice = add_payment_method(system.commands, alice.id, card())
        of_bob = add_payment_method(system.commands, bob.id, card())
        assert of_alice.fingerprint != of_bob.fingerprint
        assert hashlib.sha256(NUMBER.encode()).hexdigest() not in (of_alice.fingerprint,
                                                                   of_bob.fingerprint)


class TestIdempotency:
    def test_same_key_same_card_is_one_method(self, system: System, database_url: str) -> None:
        alice = customer(system.commands)
        first = add_payment_method(system.commands, alice.id, card(), "key-1")
        again = add_payment_method(system.commands, alice.id, card(), "key-1")
        assert first.id == again.id
        assert len(vault_rows(database_url)) == 1

    def test_same_key_other_card_is_a_conflict_and_keeps_no_number(
            self, system: System, database_url: str) -> None:
        alice = customer(system.commands)
        first = add_payment_method(system.commands, alice.id, card(), "key-1")
        with pytest.raises(IdempotencyConflict):
            add_payment_method(system.commands, alice.id, card("5555555555554444"), "key-1")
        assert [row[0] for row in vault_rows(database_url)] == [first.id]
        assert reveal_card(system.commands, alice.id, first.id) == NUMBER


def test_rotation_then_deleting_the_old_key_loses_nothing(system: System, settings: Settings,
                                                          database_url: str) -> None:
    """Rotate, delete the old master key: every saved number still opens, every holder name
    still reads, and the same card is still recognised (fingerprints did not change)."""
    owners = [customer(system.commands) for _ in range(3)]
    saved = {}
    for i, owner in enumerate(owners):
        number = card(["4242424242424242", "5555555555554444", "378282246310005"][i])
        saved[owner.id] = [
            (add_payment_method(system.commands, owner.id, number).id, "card", number.secret),
            (add_payment_method(system.commands, owner.id, instruments.bank_account(IBAN, HOLDER))
             .id, "bank_account", IBAN)]
    old = settings.key_ring_text()
    new = KeyRing.new_entry("new")
    system.close()
    rotated = System.connect(Settings(database_url=database_url, var_dir=settings.var_dir,
                                      encryption_keys=f"{new},{old}"), database_url)
    try:
        rotated.app.data_keys.rotate()
        assert set(rotated.app.data_keys.master_keys_in_use()) == {"new"}
    finally:
        rotated.close()

    only_new = GoPay(KeyRing.parse(new), env={**application_env(database_url, pool_size=1),
                                               "AGGREGATE_CACHE_MAXSIZE": ""})
    commands = Commands(command_context(only_new, settings))
    try:
        for owner in owners:
            for method_id, kind, secret in saved[owner.id]:
                assert reveal(commands.context, owner.id, method_id, kind) == secret
                assert get_payment_method(commands, owner.id, method_id).holder_name == HOLDER
        first_card = saved[owners[0].id][0]
        with pytest.raises(PaymentMethodExists) as exists:
            add_payment_method(commands, owners[0].id, card(first_card[2]))
        assert exists.value.existing_id == first_card[0]
    finally:
        only_new.close()
