"""Time-based one-time passwords (RFC 6238, via pyotp) and one-time recovery codes."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import string
import time

import pyotp

ISSUER = "GoPay"
STEP_SECONDS = 30
# A code is accepted one step either side of now (clock drift of up to 30 s), never further.
DRIFT_STEPS = 1
RECOVERY_CODES = 10
ALPHABET = string.ascii_lowercase + "234567"  # base32: no 0/o or 1/l to misread


def new_secret() -> str:
    return pyotp.random_base32()


def provisioning_uri(secret: str, account: str) -> str:
    """The otpauth:// URI an authenticator app reads (usually from a QR code)."""
    return pyotp.TOTP(secret).provisioning_uri(name=account, issuer_name=ISSUER)


def matching_step(secret: str, code: str, now: float | None = None) -> int | None:
    """The time step `code` belongs to, within the allowed drift; None if it matches none."""
    if not (len(code) == 6 and code.isascii() and code.isdigit()):
        return None
    totp = pyotp.TOTP(secret)
    current = int((time.time() if now is None else now) // STEP_SECONDS)
    for step in range(current - DRIFT_STEPS, current + DRIFT_STEPS + 1):
        if hmac.compare_digest(totp.at(step * STEP_SECONDS), code):
            return step
    return None


def is_totp_code(code: str) -> bool:
    return len(code) == 6 and code.isdigit()


def new_recovery_codes() -> list[str]:
    """Ten codes of 50 random bits each, shown once, `xxxxx-xxxxx`."""
    codes = []
    for _ in range(RECOVERY_CODES):
        raw = "".join(secrets.choice(ALPHABET) for _ in range(10))
        codes.append(f"{raw[:5]}-{raw[5:]}")
    return codes


def recovery_code_digest(code: str) -> str:
    """Recovery codes are random, so a plain SHA-256 keeps them as well as a slow hash would."""
    normalised = code.strip().lower().replace("-", "").replace(" ", "")
    return hashlib.sha256(f"gopay-recovery/{normalised}".encode()).hexdigest()
