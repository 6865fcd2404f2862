"""The operator port over HTTP (httpx): GoPay's recharges at GOPAY_OPERATOR_URL, and their errors.

It never retries, and reads answers as the PSP adapter does (`gopay.psp.http_adapter`).
"""

from __future__ import annotations

from urllib.parse import quote

from gopay.psp.http_adapter import NonceService
from gopay.psp.port import PspResult
from gopay.settings import Settings


class HttpOperators(NonceService):
    """`Operators` over HTTP: the bundled simulator's `/v1/recharges`, or a gateway like it."""

    name = "the operators' gateway"

    @classmethod
    def from_settings(cls, settings: Settings) -> HttpOperators:
        return cls(settings.operator_base_url, settings.operator_key, settings.psp_timeout)

    def recharge(self, nonce: str, phone_number: str, operator: str, amount: int,
                 currency: str) -> PspResult:
        return self._operation("POST", "/v1/recharges", json={
            "nonce": nonce, "phone_number": phone_number, "operator": operator,
            "amount": amount, "currency": currency})

    def status(self, nonce: str) -> PspResult | None:
        return self._found(f"/v1/recharges/{quote(nonce, safe='')}")
