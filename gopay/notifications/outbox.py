"""The notification outbox: messages wait in PostgreSQL, sealed, until they are delivered.

A message is written in its own transaction once the command that caused it is durable.
Delivery is at least once: the sender marks a message sent only after the SMTP server took
it, and processes share the work with SKIP LOCKED, so each message goes out one time unless
a process dies between the two.
"""

from __future__ import annotations

import logging
import smtplib
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any
from urllib.parse import urlsplit
from uuid import UUID

from gopay.security.data_keys import DataKeys

log = logging.getLogger(__name__)

CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS outbox (
    id bigserial PRIMARY KEY,
    user_id uuid NOT NULL,
    recipient text NOT NULL,
    subject text NOT NULL,
    body text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    sent_at timestamptz,
    attempts integer NOT NULL DEFAULT 0,
    last_error text
)"""

MAX_ATTEMPTS = 10


@dataclass(frozen=True)
class Message:
    id: int
    user_id: UUID
    recipient: str
    subject: str
    body: str


class Outbox:
    """Writes, reads and delivers messages; addresses and bodies are sealed per user."""

    def __init__(self, datastore: Any, data_keys: DataKeys, smtp_url: str | None,
                 sender: str) -> None:
        self.datastore = datastore
        self.data_keys = data_keys
        self.smtp_url = smtp_url
        self.sender = sender

    def put(self, user_id: UUID, recipient: str, subject: str, body: str) -> None:
        seal = self.data_keys.seal
        with self.datastore.transaction(commit=True) as cursor:
            cursor.execute(
                "INSERT INTO outbox (user_id, recipient, subject, body) VALUES (%s, %s, %s, %s)",
                (user_id, seal(user_id, "outbox/recipient", recipient), subject,
                 seal(user_id, "outbox/body", body)))

    def messages_for(self, user_id: UUID) -> list[Message]:
        """A user's messages, newest first (what support, or a test, may read)."""
        with self.datastore.transaction(commit=False) as cursor:
            cursor.execute("SELECT * FROM outbox WHERE user_id = %s ORDER BY id DESC", (user_id,))
            return [self._opened(row) for row in cursor.fetchall()]

    def deliver(self, batch: int = 50) -> int:
        """Send what waits (when SMTP is configured); how many messages went out."""
        if not self.smtp_url:
            return 0
        sent = 0
        with self.datastore.transaction(commit=True) as cursor:
            cursor.execute("SELECT * FROM outbox WHERE sent_at IS NULL AND attempts < %s "
                           "ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED", (MAX_ATTEMPTS, batch))
            rows = cursor.fetchall()
            if not rows:
                return 0
            try:
                with self._smtp() as smtp:
                    for row in rows:
                        message = self._opened(row)
                        smtp.send_message(self._email(message))
                        cursor.execute("UPDATE outbox SET sent_at = now(), attempts = attempts + 1 "
                                       "WHERE id = %s", (message.id,))
                        sent += 1
            except (OSError, smtplib.SMTPException) as error:
                log.warning("e-mail delivery failed: %s", error)
                cursor.execute("UPDATE outbox SET attempts = attempts + 1, last_error = %s "
                               "WHERE id = ANY(%s) AND sent_at IS NULL",
                               (str(error)[:500], [row["id"] for row in rows]))
        return sent

    def _smtp(self) -> smtplib.SMTP:
        url = urlsplit(self.smtp_url or "")
        if url.scheme not in ("smtp", "smtps"):
            raise smtplib.SMTPException(f"GOPAY_SMTP_URL must be smtp:// or smtps://, not {url.scheme}")
        kind = smtplib.SMTP_SSL if url.scheme == "smtps" else smtplib.SMTP
        smtp = kind(url.hostname or "127.0.0.1", url.port or (465 if url.scheme == "smtps" else 25),
                    timeout=10)
        if url.username:
            if url.scheme == "smtp":
                smtp.starttls()
            smtp.login(url.username, url.password or "")
        return smtp

    def _email(self, message: Message) -> EmailMessage:
        email = EmailMessage()
        email["From"] = self.sender
        email["To"] = message.recipient
        email["Subject"] = message.subject
        email.set_content(message.body)
        return email

    def _opened(self, row: dict[str, Any]) -> Message:
        user_id = row["user_id"]
        return Message(id=row["id"], user_id=user_id, subject=row["subject"],
                       recipient=self.data_keys.unseal(user_id, "outbox/recipient", row["recipient"]),
                       body=self.data_keys.unseal(user_id, "outbox/body", row["body"]))
