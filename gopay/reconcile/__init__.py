"""Settlement files, matching against the ledger, reports and audit verification (its own issue)."""
