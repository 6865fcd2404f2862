"""Reactions to events and work that must get done: each retried until done, durably."""
