"""Running GoPay's store: the PostgreSQL around the ledger, beyond the embedded one."""
