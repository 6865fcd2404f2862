"""The PSP port over HTTP (httpx): GoPay's calls to the PSP at GOPAY_PSP_URL, and their errors.

It never retries: whether and when to try again is the caller's policy. It turns every
answer into one of four things: a `PspResult`, `PspRefused` (a 4xx: nothing was done),
`PspBusy` (a 429: nothing was done, try again after its Retry-After) or `PspNoAnswer` (a
timeout, a cut connection, a 5xx or an unreadable 2xx: ask later). A status query that is
refused (other than "no operation under this nonce") leaves the outcome unknown: no answer. The calls
a request makes at once (charge, payout, and the status a reused nonce asks) can also be
awaited, so that an API process does not hold a thread while the PSP works.
"""

from __future__ import annotations

import json as json_module
import math
from datetime import UTC, date, datetime
from email.utils import parsedate_to_datetime
from typing import Any, ClassVar, Self
from urllib.parse import quote

import aiohttp
import httpx

from gopay.psp.port import (
    BankAccount,
    Card,
    Destination,
    DigitalWallet,
    NonceReused,
    OperationKind,
    OperationStatus,
    PspBusy,
    PspNoAnswer,
    PspRefused,
    PspResult,
    Source,
)
from gopay.settings import Settings

# Connecting is quick or it is not happening; the answer may take the PSP a while.
CONNECT_TIMEOUT = 3.0
# A Retry-After longer than this is taken as this (seconds): the caller's policy goes on.
LONGEST_RETRY_AFTER = 3600.0


class NonceService:
    """A service whose operations are keyed by GoPay's nonces, over HTTP with an API key; safe
    to share between threads. The PSP and the mobile operators' gateway are two of them.

    Calls made in a thread go through httpx; calls awaited on an event loop through aiohttp,
    whose connection pool costs a fraction of httpx's async one per request (measured: httpx's
    pool bookkeeping was most of an API process's work for a top-up at 64 clients).
    """

    name: ClassVar[str] = "the service"  # how errors name it

    def __init__(self, base_url: str, api_key: str, timeout: float = 10.0,
                 transport: httpx.BaseTransport | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.headers = {"Authorization": f"Bearer {api_key}"}
        self.http = httpx.Client(
            base_url=base_url, transport=transport, headers=self.headers,
            timeout=httpx.Timeout(timeout, connect=min(timeout, CONNECT_TIMEOUT)))
        # Made on first use, in the event loop that awaits it (one per API process).
        self._session: aiohttp.ClientSession | None = None

    def close(self) -> None:
        self.http.close()

    async def aclose(self) -> None:
        """Close the awaited calls' connections, in the loop that opened them."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _found(self, path: str) -> PspResult | None:
        """The operation at `path`, or None when the service has none under its nonce."""
        try:
            return self._operation("GET", path)
        except PspRefused as refusal:
            self._none_under_nonce(path, refusal)
            return None

    async def _found_async(self, path: str) -> PspResult | None:
        try:
            return await self._operation_async("GET", path)
        except PspRefused as refusal:
            self._none_under_nonce(path, refusal)
            return None

    def _none_under_nonce(self, path: str, refusal: PspRefused) -> None:
        """Passes for "no operation under this nonce"; any other refusal of a status query
        says nothing of what was done under the nonce: no answer."""
        if not _unknown_nonce(refusal):
            raise PspNoAnswer(f"{self.name} refused to say what it did ({path}): {refusal}"
                              ) from refusal

    def _operation(self, method: str, path: str, json: Any = None) -> PspResult:
        response = self._send(method, path, json)
        return self._result(method, path, response.content)

    async def _operation_async(self, method: str, path: str, json: Any = None) -> PspResult:
        if self._session is None:
            self._session = aiohttp.ClientSession(headers=self.headers, timeout=aiohttp.ClientTimeout(
                sock_connect=min(self.timeout, CONNECT_TIMEOUT), sock_read=self.timeout))
        try:
            async with self._session.request(method, self.base_url + path, json=json) as response:
                status, body = response.status, await response.read()
                retry_after = response.headers.get("Retry-After")
        except (aiohttp.ClientError, TimeoutError) as error:
            raise self._no_answer(method, path, error) from error
        self._check(method, path, status, body, retry_after)
        return self._result(method, path, body)

    def _send(self, method: str, path: str, json: Any = None) -> httpx.Response:
        try:
            response = self.http.request(method, path, json=json)
        except httpx.HTTPError as error:
            raise self._no_answer(method, path, error) from error
        self._check(method, path, response.status_code, response.content,
                    response.headers.get("Retry-After"))
        return response

    def _no_answer(self, method: str, path: str, error: Exception) -> PspNoAnswer:
        """Timeouts, refused or cut connections, protocol errors."""
        return PspNoAnswer(f"no answer from {self.name} to {method} {path}: "
                           f"{type(error).__name__}: {error}")

    def _check(self, method: str, path: str, status: int, body: bytes,
               retry_after: str | None = None) -> None:
        if status == 429:
            raise PspBusy(f"{self.name} turned {method} {path} away for now: {_refusal(status, body)}",
                          _seconds(retry_after))
        if 400 <= status < 500:
            raise _refusal(status, body)
        if not 200 <= status < 300:  # a 5xx, or nothing GoPay asked for
            raise PspNoAnswer(f"{self.name} answered {status} to {method} {path}")

    def _result(self, method: str, path: str, body: bytes) -> PspResult:
        try:
            return _result(json_module.loads(body))
        except (ValueError, KeyError, TypeError) as error:
            # A 2xx GoPay cannot read: the work may be done, so the outcome is unknown.
            raise PspNoAnswer(f"unreadable answer from {self.name} to {method} {path}: {error}") from error


class HttpPsp(NonceService):
    """A `Psp` that talks to a PSP (the simulator or its twin) over HTTP; safe to share between threads."""

    name = "the PSP"

    @classmethod
    def from_settings(cls, settings: Settings) -> HttpPsp:
        return cls(settings.psp_base_url, settings.psp_key, settings.psp_timeout)

    def charge(self, nonce: str, amount: int, currency: str, source: Source) -> PspResult:
        return self._operation("POST", "/v1/charges", json=_charge(nonce, amount, currency, source))

    def payout(self, nonce: str, amount: int, currency: str, destination: Destination) -> PspResult:
        return self._operation("POST", "/v1/payouts",
                               json=_payout(nonce, amount, currency, destination))

    async def charge_async(self, nonce: str, amount: int, currency: str,
                           source: Source) -> PspResult:
        return await self._operation_async("POST", "/v1/charges",
                                           json=_charge(nonce, amount, currency, source))

    async def payout_async(self, nonce: str, amount: int, currency: str,
                           destination: Destination) -> PspResult:
        return await self._operation_async("POST", "/v1/payouts",
                                           json=_payout(nonce, amount, currency, destination))

    async def status_async(self, nonce: str) -> PspResult | None:
        return await self._found_async(f"/v1/operations/{quote(nonce, safe='')}")

    def refund(self, nonce: str, charge_reference: str, amount: int) -> PspResult:
        return self._operation("POST", "/v1/refunds", json={
            "nonce": nonce, "charge": charge_reference, "amount": amount})

    def status(self, nonce: str) -> PspResult | None:
        return self._found(f"/v1/operations/{quote(nonce, safe='')}")

    def settlement_file(self, day: date) -> str:
        response = self._send("GET", f"/sim/settlements/{day.isoformat()}.csv")
        return response.text


def _charge(nonce: str, amount: int, currency: str, source: Source) -> dict[str, Any]:
    return {"nonce": nonce, "amount": amount, "currency": currency, "source": _instrument(source)}


def _payout(nonce: str, amount: int, currency: str, destination: Destination) -> dict[str, Any]:
    return {"nonce": nonce, "amount": amount, "currency": currency,
            "destination": _instrument(destination)}


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


def _refusal(status: int, body: bytes) -> PspRefused:
    try:
        problem = json_module.loads(body)
        code, detail = str(problem["code"]), str(problem.get("detail", ""))
    except (ValueError, KeyError, TypeError):
        code, detail = f"http_{status}", body[:300].decode("utf-8", "replace")
    kind = NonceReused if code == "idempotency_conflict" else PspRefused
    return kind(code, detail, status)


def _seconds(retry_after: str | None) -> float | None:
    """A Retry-After header's wait, in seconds (it gives seconds or an HTTP date); None when
    it is missing or unreadable."""
    if not retry_after:
        return None
    try:
        seconds = float(retry_after)
    except ValueError:
        try:
            seconds = (parsedate_to_datetime(retry_after) - datetime.now(UTC)).total_seconds()
        except (TypeError, ValueError):
            return None
    if math.isnan(seconds):
        return None
    return min(max(seconds, 0.0), LONGEST_RETRY_AFTER)


def _unknown_nonce(refusal: PspRefused) -> bool:
    return refusal.http_status == 404 and refusal.code == "unknown_nonce"
