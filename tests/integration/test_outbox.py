"""The outbox keeps e-mails sealed until delivered; recovery tokens expire."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import psycopg
import pytest

from gopay.aggregates.user import RecoveryRefused, User
from gopay.commands import Commands
from gopay.commands.recovery import ConfirmRecovery, RequestRecovery
from gopay.commands.registration import Register
from gopay.commands.sign_in import SignIn
from gopay.system import System

EMAIL = "outbox.owner@example.org"


def registered(system: System) -> User:
    return system.commands.run(Register(email=EMAIL, password="correct horse battery",
                                        kind="person", full_name="Owner")).value


def test_without_smtp_messages_wait_in_the_outbox_sealed(system: System,
                                                          database_url: str) -> None:
    """Nothing is sent, the message is readable through GoPay, and not in the table."""
    user = registered(system)
    system.commands.run(RequestRecovery(email=EMAIL))
    assert system.outbox.deliver() == 0
    [message] = system.outbox.messages_for(user.id)
    assert message.recipient == EMAIL and str(user.id) in message.body
    token = next(word for word in message.body.split() if word.startswith(str(user.id)))
    with psycopg.connect(database_url) as conn:
        raw = " ".join(str(value) for row in conn.execute("SELECT * FROM outbox") for value in row)
    assert EMAIL not in raw and token.split(".")[1] not in raw


def test_an_expired_token_is_refused(system: System) -> None:
    user = registered(system)
    expired = Commands(replace(system.commands.context, recovery_ttl=timedelta(seconds=-1)))
    expired.run(RequestRecovery(email=EMAIL))
    body = system.outbox.messages_for(user.id)[0].body
    token = next(word for word in body.split() if word.startswith(str(user.id)))
    with pytest.raises(RecoveryRefused):
        system.commands.run(ConfirmRecovery(token=token, new_password="a brand new passphrase"))
    assert system.commands.run(SignIn(email=EMAIL, password="correct horse battery")).value
