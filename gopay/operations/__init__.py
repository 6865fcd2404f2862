"""Running the store: backups and point-in-time recovery."""
