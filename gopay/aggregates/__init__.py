"""The write model: aggregates and the rules they enforce, free of web and storage code."""
