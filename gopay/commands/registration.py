"""Opening an account: a person, company or agent with a wallet, or a staff member with a role."""

from __future__ import annotations

from dataclasses import dataclass, field
from uuid import UUID, uuid4, uuid5

from gopay.aggregates.errors import EmailTaken, IdempotencyConflict, PhoneTaken
from gopay.aggregates.ledger import LEDGER_NAMESPACE
from gopay.aggregates.money import Money
from gopay.aggregates.user import CUSTOMER_KINDS, EmailIndex, PhoneIndex, User, check_opening
from gopay.aggregates.wallet import Wallet
from gopay.commands.bus import Command, Context, Outcome, procedure
from gopay.commands.idempotency import repeat_of
from gopay.group_commit import UnitOfWork
from gopay.security.passwords import hash_password, verify_password


@dataclass(frozen=True, kw_only=True)
class Register(Command[User]):
    """Open a user (and, for customers, a wallet in `currency`), claiming e-mail and phone."""

    email: str
    password: str = field(repr=False)
    kind: str
    full_name: str
    phone: str | None = None
    country: str | None = None
    business_name: str | None = None
    category: str | None = None
    currency: str = "USD"
    role: str | None = None
    idempotency_key: str | None = None

    @property
    def normalised_email(self) -> str:
        return self.email.strip().lower()

    @property
    def user_id(self) -> UUID | None:
        """The id a key derives (a retry finds the same user); None without a key."""
        if self.idempotency_key is None:
            return None
        return uuid5(LEDGER_NAMESPACE, f"register/{self.normalised_email}/{self.idempotency_key}")

    def same_profile(self, user: User) -> bool:
        """Whether `user` has what this registration asks for (the password aside)."""
        return ((user.kind, user.role, user.full_name, user.phone, user.country,
                 user.business_name, user.category)
                == (self.kind, self.role, self.full_name, self.phone, self.country,
                    self.business_name, self.category))


@procedure(Register)
def register(command: Register, context: Context) -> Outcome[User]:
    check_opening(command.kind, command.role, command.business_name, command.category)
    if command.kind in CUSTOMER_KINDS:
        Money(0, command.currency)  # a currency GoPay holds
    email = command.normalised_email
    user_id = command.user_id or uuid4()
    password_hash = hash_password(command.password)  # slow on purpose: outside the batch
    context.app.data_keys.ensure(user_id)

    def open_account(unit: UnitOfWork) -> User:
        existing = repeat_of(unit, user_id, User, command.idempotency_key,
                             command.same_profile)
        if existing is None and command.idempotency_key is None:
            # This very registration, run again after a commit whose answer was lost.
            existing = unit.find(user_id, User)
        if existing is not None:
            wallet = unit.find(existing.wallet_id, Wallet) if existing.wallet_id else None
            if wallet is not None and wallet.currency != command.currency:
                raise IdempotencyConflict("this Idempotency-Key was already used with a "
                                          "different registration")
            return existing
        if unit.find(EmailIndex.id_for(email), EmailIndex):
            raise EmailTaken("an account with this e-mail already exists")
        phone_claim = claim_phone(unit, command.phone, user_id) if command.phone else None
        wallet = (Wallet(owner_id=user_id, currency=command.currency)
                  if command.kind in CUSTOMER_KINDS else None)
        user = User(id=user_id, email=email, password_hash=password_hash, kind=command.kind,
                    role=command.role, full_name=command.full_name, phone=command.phone,
                    country=command.country, business_name=command.business_name,
                    category=command.category, wallet_id=wallet.id if wallet else None)
        unit.add(user, EmailIndex(id=EmailIndex.id_for(email), user_id=user.id), wallet,
                 phone_claim)
        return user

    outcome = context.commit(open_account, probes=(user_id,))
    user = outcome.value
    repeated = user.password_hash != password_hash
    if repeated and not verify_password(user.password_hash, command.password):
        raise IdempotencyConflict("this Idempotency-Key was already used with a different "
                                  "registration")
    return outcome


def claim_phone(unit: UnitOfWork, phone: str, user_id: UUID) -> PhoneIndex:
    """The phone index, claimed for `user_id`; a number someone holds is taken."""
    index = unit.find(PhoneIndex.id_for(phone), PhoneIndex)
    if index is None:
        return PhoneIndex(id=PhoneIndex.id_for(phone), user_id=user_id)
    if index.user_id is not None:
        raise PhoneTaken("an account with this phone number already exists")
    index.claim(user_id)
    return index
