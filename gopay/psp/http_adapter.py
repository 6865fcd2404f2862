"""The PSP port over HTTP (httpx): GoPay's calls to the PSP at GOPAY_PSP_URL, and their errors.

It never retries: whether and when to try again is the caller's policy. It turns every
answer into one of three things: a `PspResult`, `PspRefused` (a 4xx: nothing was done), or
`PspNoAnswer` (a timeout, a cut connection, a 5xx or an unreadable 2xx: ask later).
"""

from __future__ import annotations

from datetime import date
from typing import Any, ClassVar, Self
from urllib.parse import quote

import httpx

from gopay.psp.port import (
    BankAccount,
    Card,
    Destination,
    DigitalWallet,
    NonceReused,
    OperationKind,
    OperationStatus,
    PspNoAnswer,
    PspRefused,
    PspResult,
    Source,
)
from gopay.settings import Settings

# Connecting is quick or it is not happening; the answer may take the PSP a while.
CONNECT_TIMEOUT = 3.0


class NonceService:
    """A service whose operations are keyed by GoPay's nonces, over HTTP with an API key; safe
    to share between threads. The PSP and the mobile operators' gateway are two of them."""

    name: ClassVar[str] = "the service"  # how errors name it

    def __init__(self, base_url: str, api_key: str, timeout: float = 10.0,
                 transport: httpx.BaseTransport | None = None) -> None:
        self.http = httpx.Client(
            base_url=base_url, transport=transport,
            timeout=httpx.Timeout(timeout, connect=min(timeout, CONNECT_TIMEOUT)),
            headers={"Authorization": f"Bearer {api_key}"})

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _found(self, path: str) -> PspResult | None:
        """The operation at `path`, or None when the service has none under its nonce."""
        try:
            return self._operation("GET", path)
        except PspRefused as refusal:
            if refusal.http_status == 404 and refusal.code == "unknown_nonce":
                return None
            raise

    def _operation(self, method: str, path: str, json: Any = None) -> PspResult:
        response = self._send(method, path, json)
        try:
            return _result(response.json())
        except (ValueError, KeyError, TypeError) as error:
            # A 2xx GoPay cannot read: the work may be done, so the outcome is unknown.
            raise PspNoAnswer(f"unreadable answer from {self.name} to {method} {path}: {error}") from error

    def _send(self, method: str, path: str, json: Any = None) -> httpx.Response:
        try:
            response = self.http.request(method, path, json=json)
        except httpx.HTTPError as error:  # timeouts, refused or cut connections, protocol errors
            raise PspNoAnswer(f"no answer from {self.name} to {method} {path}: "
                              f"{type(error).__name__}: {error}") from error
        if response.is_server_error:
            raise PspNoAnswer(f"{self.name} answered {response.status_code} to {method} {path}")
        if response.is_client_error:
            raise _refusal(response)
        if not response.is_success:
            raise PspNoAnswer(f"{self.name} answered {response.status_code} to {method} {path}")
        return response


class HttpPsp(NonceService):
    """A `Psp` that talks to a PSP (the simulator or its twin) over HTTP; safe to share between threads."""

    name = "the PSP"

    @classmethod
    def from_settings(cls, settings: Settings) -> HttpPsp:
        return cls(settings.psp_base_url, settings.psp_key, settings.psp_timeout)

    def charge(self, nonce: str, amount: int, currency: str, source: Source) -> PspResult:
        return self._operation("POST", "/v1/charges", json={
            "nonce": nonce, "amount": amount, "currency": currency, "source": _instrument(source)})

    def payout(self, nonce: str, amount: int, currency: str, destination: Destination) -> PspResult:
        return self._operation("POST", "/v1/payouts", json={
            "nonce": nonce, "amount": amount, "currency": currency,
            "destination": _instrument(destination)})

    def refund(self, nonce: str, charge_reference: str, amount: int) -> PspResult:
        return self._operation("POST", "/v1/refunds", json={
            "nonce": nonce, "charge": charge_reference, "amount": amount})

    def status(self, nonce: str) -> PspResult | None:
        return self._found(f"/v1/operations/{quote(nonce, safe='')}")

    def settlement_file(self, day: date) -> str:
        response = self._send("GET", f"/sim/settlements/{day.isoformat()}.csv")
        return response.text


def _instrument(instrument: Source) -> dict[str, str]:
    if isinstance(instrument, Card):
        return {"type": "card", "number": instrument.number}
    if isinstance(instrument, BankAccount):
        return {"type": "bank_account", "iban": instrument.iban}
    if isinstance(instrument, DigitalWallet):
        return {"type": "digital_wallet", "provider": instrument.provider, "account": instrument.account}
    raise TypeError(f"not a payment instrument: {type(instrument).__name__}")


def _result(body: dict[str, Any]) -> PspResult:
    return PspResult(
        nonce=body["nonce"], kind=OperationKind(body["object"]),
        status=OperationStatus(body["status"]), psp_reference=body["psp_reference"],
        amount=_integer(body["amount"]), currency=body["currency"], fee=_integer(body["fee"]),
        failure_reason=body.get("failure_reason"), charge_reference=body.get("charge_reference"),
        disputed=bool(body.get("disputed", False)))


def _integer(value: Any) -> int:
    if type(value) is not int:
        raise TypeError(f"{value!r} is not an integer amount")
    return value


def _refusal(response: httpx.Response) -> PspRefused:
    try:
        problem = response.json()
        code, detail = str(problem["code"]), str(problem.get("detail", ""))
    except (ValueError, KeyError, TypeError):
        code, detail = f"http_{response.status_code}", response.text[:300]
    kind = NonceReused if code == "idempotency_conflict" else PspRefused
    return kind(code, detail, response.status_code)
