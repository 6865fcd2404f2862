"""Personal data is sealed in the event store, and survives a master key rotation."""

from __future__ import annotations

from uuid import uuid4

import psycopg
import pytest

from gopay.aggregates.user import User
from gopay.application import GoPay, application_env
from gopay.commands import Commands
from gopay.commands.profile import UpdateProfile
from gopay.commands.registration import Register
from gopay.security.data_keys import SealBroken
from gopay.security.keyring import KeyRing, KeyRingError
from gopay.settings import Settings
from gopay.system import System

NAME, PHONE, EMAIL = "Zelda Quintessa", "+12025550199", "zelda.q@example.org"


def register(commands: Commands, email: str = EMAIL, phone: str = PHONE, name: str = NAME) -> User:
    return commands.run(Register(email=email, password="correct horse battery", kind="person",
                                 full_name=name, phone=phone, country="US")).value


def stored_states(database_url: str) -> list[bytes]:
    with psycopg.connect(database_url) as conn:
        return [bytes(row[0]) for row in conn.execute("SELECT state FROM gopay_events")]


def replayed(ring: KeyRing, database_url: str, user_id):
    """The user as a process with no memory of it rebuilds it from the stored events."""
    app = GoPay(ring, env={**application_env(database_url, pool_size=1),
                           "AGGREGATE_CACHE_MAXSIZE": ""})
    try:
        return app.get(user_id, User)
    finally:
        app.close()


def test_names_phones_and_emails_are_stored_sealed(system: System, database_url: str) -> None:
    user = register(system.commands)
    system.commands.run(UpdateProfile(user_id=user.id, full_name="Zelda Q. Renamed",
                                      phone="+12025550100"))

    states = stored_states(database_url)
    for secret in (NAME, "Zelda Q. Renamed", PHONE, "+12025550100", EMAIL, "2025550"):
        assert not any(secret.encode() in state for state in states), secret
    assert any(b"sealed:v1:" in state for state in states)

    again = replayed(system.settings.key_ring(), database_url, user.id)
    assert (again.email, again.full_name, again.phone) == (EMAIL, "Zelda Q. Renamed",
                                                           "+12025550100")


def test_rotation_lets_the_old_master_key_go(system: System, settings: Settings,
                                             database_url: str) -> None:
    users = [register(system.commands, f"user{i}@example.org", f"+1202555{i:04d}", f"Person {i}")
             for i in range(5)]
    old = settings.key_ring_text()
    new = KeyRing.new_entry("new")
    rotated = Settings(database_url=database_url, var_dir=settings.var_dir,
                       encryption_keys=f"{new},{old}")
    system.close()
    after = System.connect(rotated, database_url)
    try:
        assert after.app.data_keys.rotate() == len(users)
        assert after.app.data_keys.master_keys_in_use() == {"new": len(users)}
        register(after.commands)  # new data keys are wrapped by the new key straight away
        assert after.app.data_keys.master_keys_in_use() == {"new": len(users) + 1}
    finally:
        after.close()

    only_new = KeyRing.parse(new)
    for user in users:
        assert replayed(only_new, database_url, user.id).full_name == user.full_name
    with pytest.raises(KeyRingError):
        replayed(KeyRing.parse(old), database_url, users[0].id)


def test_a_sealed_value_opens_only_for_its_owner_and_purpose(system: System) -> None:
    keys = system.app.data_keys
    alice, mallory = uuid4(), uuid4()
    sealed = keys.seal(alice, "full_name", NAME)
    assert keys.unseal(alice, "full_name", sealed) == NAME
    for subject, purpose in ((mallory, "full_name"), (alice, "phone")):
        with pytest.raises(SealBroken):
            keys.unseal(subject, purpose, sealed)
    tampered = sealed[:-4] + ("AAAA" if not sealed.endswith("AAAA") else "BBBB")
    with pytest.raises(SealBroken):
        keys.unseal(alice, "full_name", tampered)


def test_a_malformed_key_ring_is_refused() -> None:
    for text in ("", "k1:notbase64!", "k1:" + "QUJD", ":" + KeyRing.new_entry().split(":")[1]):
        with pytest.raises(KeyRingError):
            KeyRing.parse(text)
