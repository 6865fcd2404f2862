"""Messages to users: kept in an outbox, delivered by e-mail when SMTP is configured."""
