"""The signed-in user's own profile, and the companies a person can pay."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from gopay.api.deps import Caller, Customer, IdCursor, SecondFactor, SystemDep, id_cursor
from gopay.api.pagination import page_of
from gopay.api.routes.auth import shown_user
from gopay.api.schemas import CompanyPublic, KycSubmit, Page, ProfileUpdate, UserPublic
from gopay.commands.kyc import SubmitKyc
from gopay.commands.notification_preferences import ChangeNotificationPreferences
from gopay.commands.profile import UpdateProfile
from gopay.commands.two_factor import ConfirmSecondFactor

router = APIRouter(tags=["people"])


@router.get("/v1/me", response_model=UserPublic)
def me(caller: Caller, system: SystemDep) -> UserPublic:
    return _with_preferences(system, shown_user(system, caller.user_id, system.head()))


@router.patch("/v1/me", response_model=UserPublic)
def update_me(body: ProfileUpdate, caller: Caller, system: SystemDep,
              otp: SecondFactor = None) -> UserPublic:
    """Change your name, phone number, security or notification preferences; nothing else.

    With 2FA on, security preferences change only with a fresh code in `GoPay-OTP`.
    `notification_preferences` (`{TYPE: {email: bool, in_app: bool}}`) is merged over what
    you chose before; turning a security notice off is refused (422).
    """
    if body.login_notifications is not None:
        system.commands.run(ConfirmSecondFactor(user_id=caller.user_id, code=otp))
    position = system.head()
    if body.notification_preferences is not None:
        position = system.commands.run(ChangeNotificationPreferences(
            user_id=caller.user_id, preferences={
                kind: choice.model_dump(exclude_none=True)
                for kind, choice in body.notification_preferences.items()})).position
    profile = body.model_dump(exclude_unset=True, exclude={"notification_preferences"})
    if profile or body.notification_preferences is None:
        position = system.commands.run(UpdateProfile(user_id=caller.user_id, **profile)).position
    return _with_preferences(system, shown_user(system, caller.user_id, position))


def _with_preferences(system: SystemDep, user: UserPublic) -> UserPublic:
    return user.model_copy(update={
        "notification_preferences": system.read_side.notifications.preferences(user.id)})


@router.post("/v1/me/kyc", response_model=UserPublic)
def submit_kyc(body: KycSubmit, caller: Customer, system: SystemDep) -> UserPublic:
    """Send identity documents for staff to check; higher limits follow their approval."""
    outcome = system.commands.run(SubmitKyc(
        user_id=caller.user_id, document_type=body.document_type,
        document_number=body.document_number, date_of_birth=body.date_of_birth))
    return shown_user(system, caller.user_id, outcome.position)


@router.get("/v1/companies", response_model=Page[CompanyPublic])
def companies(caller: Caller, system: SystemDep,
              q: Annotated[str | None, Query(max_length=100)] = None,
              limit: Annotated[int, Query(ge=1, le=200)] = 50,
              cursor: IdCursor = None) -> Page[CompanyPublic]:
    """Companies whose name matches `q`, newest first."""
    system.catch_up_reads()
    rows = system.read_side.directory.search(q, kinds=("company",), limit=limit + 1,
                                             after=id_cursor(cursor))
    return page_of(Page[CompanyPublic], rows, limit, CompanyPublic.model_validate,
                   lambda row: row["id"])
