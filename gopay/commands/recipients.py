"""Finding the wallet a person means: by e-mail, by E.164 phone number or by wallet id."""

from __future__ import annotations

from uuid import UUID

from gopay.aggregates.errors import NotFound
from gopay.aggregates.user import EmailIndex, PhoneIndex, User
from gopay.aggregates.wallet import Wallet
from gopay.group_commit import UnitOfWork


def wallet_of(unit: UnitOfWork, recipient: str) -> Wallet:
    """The wallet an e-mail, E.164 phone number or wallet id points at."""
    recipient = recipient.strip()
    index: EmailIndex | PhoneIndex | None
    if "@" in recipient:
        index = unit.find(EmailIndex.id_for(recipient), EmailIndex)
    elif recipient.startswith("+"):
        index = unit.find(PhoneIndex.id_for(recipient), PhoneIndex)
    else:
        try:
            return unit.get(UUID(recipient), Wallet)
        except (ValueError, NotFound):
            raise NotFound("no GoPay wallet matches this recipient") from None
    user = unit.find(index.user_id, User) if index and index.user_id else None
    if user is None or user.wallet_id is None:
        raise NotFound("no GoPay wallet matches this recipient")
    return unit.get(user.wallet_id, Wallet)


def agent_wallet(unit: UnitOfWork, agent_id: UUID) -> Wallet:
    """The float of the agent whose account id this is; no other kind of account is an agent."""
    user = unit.find(agent_id, User)
    if user is None or user.kind != "agent" or user.wallet_id is None:
        raise NotFound("no agent has this id")
    return unit.get(user.wallet_id, Wallet)
