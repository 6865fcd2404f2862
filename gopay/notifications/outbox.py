"""The notification outbox: messages wait, sealed, until they are delivered.

A message is written once the command that caused it is durable, or, for a notification,
by the notification process in the page that creates it (`gopay.projections.notifications`):
such a row names the notice, and its e-mail is rendered from it when it goes out. Delivery
is at least once:
a sender claims due messages for a short lease (processes share the work with SKIP LOCKED),
sends them with no lock held, and marks each one sent after the SMTP server took it, so a
message goes out one time unless a process dies between the two; even then it carries the
same Message-ID both times, so the receiving mail system can drop the copy. A failed attempt
is tried again when the retry policy says, and given up after its last attempt.
"""

from __future__ import annotations

import logging
import smtplib
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from typing import Any, Protocol
from urllib.parse import urlsplit
from uuid import UUID

from prometheus_client import Counter, Histogram

from gopay.notifications.letters import Letter
from gopay.retry import EMAIL_DELIVERY, RetryPolicy
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
);
ALTER TABLE outbox ADD COLUMN IF NOT EXISTS next_attempt_at timestamptz NOT NULL DEFAULT now();
ALTER TABLE outbox ADD COLUMN IF NOT EXISTS given_up boolean NOT NULL DEFAULT false;
ALTER TABLE outbox ADD COLUMN IF NOT EXISTS notification_id uuid UNIQUE;
"""

EMAILS = Counter("gopay_emails_total", "E-mail delivery attempts, by outcome", ["outcome"])
EMAIL_LAG = Histogram("gopay_email_delivery_seconds",
                      "From a message entering the outbox to the SMTP server taking it",
                      buckets=(0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600, 86400))

# Long enough to send a batch; a sender that dies leaves its claim to others after this.
LEASE = timedelta(minutes=1)


@dataclass(frozen=True)
class Message:
    id: int
    user_id: UUID
    recipient: str
    subject: str
    body: str
    attempts: int = 0
    notification_id: UUID | None = None  # set: the e-mail is the notice's, rendered on sending
    created_at: datetime | None = None


class MessageStore(Protocol):
    """Where messages wait; recipient and body arrive sealed."""

    def add(self, user_id: UUID, recipient: str, subject: str, body: str) -> None: ...

    def for_user(self, user_id: UUID) -> list[Message]:
        """Newest first."""

    def claim(self, batch: int, lease: timedelta) -> list[Message]:
        """Up to `batch` due, unsent messages, hidden from other senders for `lease`."""

    def sent(self, message_id: int) -> None: ...

    def failed(self, message_id: int, error: str, retry_in: float | None) -> None:
        """An attempt failed: try again in `retry_in` seconds, or never (None)."""


class Outbox:
    """Writes, reads and delivers messages; addresses and bodies are sealed per user."""

    def __init__(self, store: MessageStore, data_keys: DataKeys, smtp_url: str | None,
                 sender: str, retry: RetryPolicy = EMAIL_DELIVERY) -> None:
        self.store = store
        self.data_keys = data_keys
        self.smtp_url = smtp_url
        self.sender = sender
        self.retry = retry
        # The e-mail of a notification, by its id (the notification view's `letter`).
        self.letters: Callable[[UUID], Letter | None] = lambda notice_id: None

    def put(self, user_id: UUID, recipient: str, subject: str, body: str) -> None:
        seal = self.data_keys.seal
        self.store.add(user_id, seal(user_id, "outbox/recipient", recipient), subject,
                       seal(user_id, "outbox/body", body))

    def messages_for(self, user_id: UUID) -> list[Message]:
        """A user's messages, newest first (what support, or a test, may read)."""
        return [self._opened(message) for message in self.store.for_user(user_id)]

    def deliver(self, batch: int = 50) -> int:
        """Send what is due (when SMTP is configured); how many messages went out."""
        if not self.smtp_url:
            return 0
        messages = self.store.claim(batch, LEASE)
        if not messages:
            return 0
        sent = 0
        try:
            with self._smtp() as smtp:
                for message in messages:
                    email = self._email(message)
                    if email is None:  # its notice is not readable (a rebuild under way): later
                        self.store.failed(message.id, "notice not found",
                                          self.retry.next_delay(message.attempts + 1))
                        sent += 1
                        continue
                    smtp.send_message(email)
                    EMAILS.labels("sent").inc()
                    if message.created_at is not None:
                        EMAIL_LAG.observe((datetime.now(UTC) - message.created_at).total_seconds())
                    self.store.sent(message.id)
                    sent += 1
        except (OSError, smtplib.SMTPException) as error:
            log.warning("e-mail delivery failed: %s", error)
            EMAILS.labels("failed").inc(len(messages) - sent)
            for message in messages[sent:]:
                self.store.failed(message.id, str(error)[:500],
                                  self.retry.next_delay(message.attempts + 1))
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

    def _email(self, message: Message) -> EmailMessage | None:
        """The e-mail of a message (None: a notice whose person is gone, nothing to send)."""
        email = EmailMessage()
        email["From"] = self.sender
        # The same on every attempt: a copy sent again after a crash can be recognised.
        email["Message-ID"] = f"<outbox-{message.notification_id or message.id}@gopay>"
        if message.notification_id is None:
            opened = self._opened(message)
            email["To"] = opened.recipient
            email["Subject"] = opened.subject
            email.set_content(opened.body)
            return email
        letter = self.letters(message.notification_id)
        if letter is None:
            return None
        email["To"] = letter.recipient
        email["Subject"] = letter.subject
        email.set_content(letter.text)
        email.add_alternative(letter.html, subtype="html")
        return email

    def _opened(self, message: Message) -> Message:
        if message.notification_id is not None:
            letter = self.letters(message.notification_id)
            return message if letter is None else replace(
                message, recipient=letter.recipient, subject=letter.subject, body=letter.text)
        unseal = self.data_keys.unseal
        return replace(message, recipient=unseal(message.user_id, "outbox/recipient", message.recipient),
                       body=unseal(message.user_id, "outbox/body", message.body))


class PostgresMessageStore:
    """The `outbox` table, in the event store's database."""

    def __init__(self, datastore: Any) -> None:
        self.datastore = datastore  # the eventsourcing PostgresDatastore

    def add(self, user_id: UUID, recipient: str, subject: str, body: str) -> None:
        with self.datastore.transaction(commit=True) as cursor:
            cursor.execute(
                "INSERT INTO outbox (user_id, recipient, subject, body) VALUES (%s, %s, %s, %s)",
                (user_id, recipient, subject, body))

    def for_user(self, user_id: UUID) -> list[Message]:
        with self.datastore.transaction(commit=False) as cursor:
            cursor.execute("SELECT * FROM outbox WHERE user_id = %s ORDER BY id DESC", (user_id,))
            return [_message(row) for row in cursor.fetchall()]

    def claim(self, batch: int, lease: timedelta) -> list[Message]:
        with self.datastore.transaction(commit=True) as cursor:
            cursor.execute(
                "UPDATE outbox SET next_attempt_at = now() + %s WHERE id IN ("
                "  SELECT id FROM outbox WHERE sent_at IS NULL AND NOT given_up"
                "  AND next_attempt_at <= now() ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED) "
                "RETURNING *", (lease, batch))
            return sorted((_message(row) for row in cursor.fetchall()), key=lambda m: m.id)

    def sent(self, message_id: int) -> None:
        with self.datastore.transaction(commit=True) as cursor:
            cursor.execute("UPDATE outbox SET sent_at = now(), attempts = attempts + 1 "
                           "WHERE id = %s", (message_id,))

    def failed(self, message_id: int, error: str, retry_in: float | None) -> None:
        with self.datastore.transaction(commit=True) as cursor:
            cursor.execute(
                "UPDATE outbox SET attempts = attempts + 1, last_error = %s, "
                "given_up = %s, next_attempt_at = now() + %s WHERE id = %s",
                (error, retry_in is None, timedelta(seconds=retry_in or 0), message_id))


@dataclass
class MemoryMessageStore:
    """Messages in a list: for an application on in-memory persistence (leases not timed)."""

    messages: list[tuple[Message, bool]] = field(default_factory=list)  # (message, done)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, user_id: UUID, recipient: str, subject: str, body: str) -> None:
        with self._lock:
            message = Message(len(self.messages) + 1, user_id, recipient, subject, body)
            self.messages.append((message, False))

    def for_user(self, user_id: UUID) -> list[Message]:
        return [m for m, _ in reversed(self.messages) if m.user_id == user_id]

    def claim(self, batch: int, lease: timedelta) -> list[Message]:
        return [m for m, done in self.messages if not done][:batch]

    def sent(self, message_id: int) -> None:
        with self._lock:
            message, _ = self.messages[message_id - 1]
            self.messages[message_id - 1] = (replace(message, attempts=message.attempts + 1), True)

    def failed(self, message_id: int, error: str, retry_in: float | None) -> None:
        with self._lock:
            message, _ = self.messages[message_id - 1]
            self.messages[message_id - 1] = (replace(message, attempts=message.attempts + 1),
                                             retry_in is None)


def _message(row: dict[str, Any]) -> Message:
    return Message(id=row["id"], user_id=row["user_id"], recipient=row["recipient"],
                   subject=row["subject"], body=row["body"], attempts=row["attempts"],
                   notification_id=row["notification_id"], created_at=row["created_at"])
