"""Running the store: backups, point-in-time recovery and high availability."""
