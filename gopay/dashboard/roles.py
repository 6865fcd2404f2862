"""Who sees which dashboard page and who is offered which change.

What a page shows follows the API's readers of the same data, with auditors added: they
see everything and change nothing. The buttons offered follow the roles of the API
operation they call; the API checks those roles again, whatever a page offered.
"""

from __future__ import annotations

from gopay.api.routes.analytics import ANALYTICS_READERS
from gopay.api.routes.disputes import DECIDERS as DISPUTE_DECIDERS
from gopay.api.routes.support_tickets import READERS as TICKET_READERS
from gopay.commands.support_tickets import SUPPORT_ROLES

PAGES: dict[str, frozenset[str]] = {
    "figures": frozenset(ANALYTICS_READERS),
    "users": frozenset({"admin", "sub_admin", "support", "auditor"}),
    "reviews": frozenset({"admin", "sub_admin", "support", "auditor"}),
    "dead_letters": frozenset({"admin", "auditor"}),
    "reconciliation": frozenset({"finance", "auditor"}),
    "tickets": frozenset(TICKET_READERS),
    "disputes": DISPUTE_DECIDERS | {"auditor"},
}

# What each page shows, as a refusal names it.
SHOWN: dict[str, str] = {
    "users": "customer accounts",
    "reviews": "the review queue",
    "tickets": "support tickets",
    "disputes": "disputes",
    "dead_letters": "dead letters",
    "reconciliation": "reconciliation runs",
}

CHANGES: dict[str, frozenset[str]] = {
    "freeze": frozenset({"admin", "sub_admin"}),  # POST /v1/admin/users/{id}/freeze, unfreeze
    "kyc": frozenset({"admin", "sub_admin"}),  # POST /v1/admin/users/{id}/kyc
    "review": frozenset({"admin", "sub_admin", "support"}),  # POST /v1/admin/reviews/{id}/...
    "retry": frozenset({"admin"}),  # POST /v1/admin/dead-letters/{id}/retry
    # POST /v1/support/tickets/{id}/messages, /v1/admin/tickets/{id}/assign and /close
    "ticket": frozenset(SUPPORT_ROLES),
    "dispute": DISPUTE_DECIDERS,  # POST /v1/admin/disputes/{id}/resolve
}


def sees(role: str, page: str) -> bool:
    return role in PAGES[page]


def may(role: str, change: str) -> bool:
    return role in CHANGES[change]
