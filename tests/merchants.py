"""Helpers for tests of the merchant integration over HTTP: merchants, their keys and QR codes."""

from __future__ import annotations

from typing import Any

import httpx

from tests.support import Client, register


def merchant(url: str, name: str = "Corner Shop") -> Client:
    """A company in the merchant category, signed in."""
    return register(url, kind="company", business_name=name, category="merchant")


def api_key(owner: Client, name: str = "shop server") -> tuple[Client, dict[str, Any]]:
    """A new API key of `owner`'s: a client that calls with it, and the key as created."""
    created = owner.post("/v1/merchant/api-keys", {"name": name})
    assert created.status_code == 201, created.text
    key = created.json()
    return Client(owner.base_url, key["secret"]), key


def qr_code(owner: Client, amount: int | None = None, **fields: Any) -> dict[str, Any]:
    body = {**({"amount": amount} if amount is not None else {}), **fields}
    created = owner.post("/v1/merchant/qr", body)
    assert created.status_code == 201, created.text
    return created.json()


def pay(payer: Client, code: dict[str, Any], amount: int | None = None,
        key: str | None = None, **headers: str) -> httpx.Response:
    body = {"qr_payload": code["qr_payload"], **({"amount": amount} if amount is not None else {})}
    return payer.post("/v1/qr-payments", body, key=key, headers=headers or None)


def refund(owner: Client, payment_id: str, amount: int | None = None,
           key: str | None = None) -> httpx.Response:
    return owner.post(f"/v1/payments/{payment_id}/refunds",
                      {"amount": amount} if amount is not None else {}, key=key)
