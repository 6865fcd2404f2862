"""The signed-in user's own profile, and the companies a person can pay."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from gopay.aggregates.user import User
from gopay.api.deps import Caller, Customer, IdCursor, SecondFactor, SystemDep, id_cursor
from gopay.api.routes.auth import user_public
from gopay.api.schemas import CompanyPublic, KycSubmit, Page, ProfileUpdate, UserPublic
from gopay.system import System

router = APIRouter(tags=["people"])


@router.get("/v1/me", response_model=UserPublic)
def me(caller: Caller, system: SystemDep) -> UserPublic:
    system.catch_up_reads()
    return _profile(system, system.app.get_user(caller.user_id))


@router.patch("/v1/me", response_model=UserPublic)
def update_me(body: ProfileUpdate, caller: Caller, system: SystemDep,
              otp: SecondFactor = None) -> UserPublic:
    """Change your name, phone number or security preferences; nothing else.

    With 2FA on, security preferences change only with a fresh code in `GoPay-OTP`.
    """
    if body.login_notifications is not None:
        system.identity.confirm_second_factor(caller.user_id, otp)
    outcome = system.app.update_profile(caller.user_id, **body.model_dump(exclude_unset=True))
    system.show(outcome.position)
    return _profile(system, outcome.value)


@router.post("/v1/me/kyc", response_model=UserPublic)
def submit_kyc(body: KycSubmit, caller: Customer, system: SystemDep) -> UserPublic:
    """Send identity documents for staff to check; higher limits follow their approval."""
    outcome = system.identity.submit_kyc(caller.user_id, body.document_type,
                                         body.document_number, body.date_of_birth)
    system.show(outcome.position)
    return _profile(system, outcome.value)


def _profile(system: System, user: User) -> UserPublic:
    """The user as they see themselves, with their wallet's frozen flag from the read side."""
    wallet = system.read_side.wallets.wallet(user.wallet_id) if user.wallet_id else None
    return user_public(user, frozen=bool(wallet and wallet["frozen"]))


@router.get("/v1/companies", response_model=Page[CompanyPublic])
def companies(caller: Caller, system: SystemDep,
              q: Annotated[str | None, Query(max_length=100)] = None,
              limit: Annotated[int, Query(ge=1, le=200)] = 50,
              cursor: IdCursor = None) -> Page[CompanyPublic]:
    """Companies whose name matches `q`, newest first."""
    system.catch_up_reads()
    rows = system.read_side.directory.search(q, kinds=("company",), limit=limit + 1,
                                             after=id_cursor(cursor))
    data = [CompanyPublic(id=r["id"], business_name=r["business_name"], category=r["category"],
                          wallet_id=r["wallet_id"]) for r in rows[:limit]]
    return Page(data=data, next_cursor=str(rows[limit - 1]["id"]) if len(rows) > limit else None)

