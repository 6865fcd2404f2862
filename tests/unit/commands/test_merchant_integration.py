"""The merchant integration's commands: API keys kept as hashes and revoked, webhook subscriptions."""

from __future__ import annotations

from typing import Any
from uuid import UUID, uuid4

import pytest

from gopay.aggregates.api_key import ApiKey, secret_digest
from gopay.aggregates.errors import Forbidden, IdempotencyConflict, NotFound, ValidationFailed
from gopay.aggregates.user import User
from gopay.aggregates.webhook_endpoint import WebhookEndpoint
from gopay.commands.api_keys import IssueApiKey, RevokeApiKey
from gopay.commands.webhook_endpoints import AddWebhookEndpoint, RemoveWebhookEndpoint
from gopay.security.api_keys import PREFIX, key_id_of, new_secret
from tests.unit.commands.in_memory import InMemoryGoPay


@pytest.fixture
def shop(gopay: InMemoryGoPay) -> User:
    return gopay.register("till@shop.example", kind="company", business_name="Corner Shop",
                          category="merchant")


def issue(gopay: InMemoryGoPay, merchant: User, key_id: UUID | None = None,
          **fields: Any) -> tuple[ApiKey, str]:
    """Issue a key as the API does: a new secret, of which the command gets the hash."""
    key_id = key_id or uuid4()
    secret = new_secret(key_id)
    key = gopay.run(IssueApiKey(merchant_id=merchant.id, key_id=key_id, name="shop server",
                                prefix=PREFIX, last4=secret[-4:], digest=secret_digest(secret),
                                **fields))
    return key, secret


class TestApiKeys:
    def test_a_key_is_kept_as_its_hash_and_admits_its_secret(self, gopay: InMemoryGoPay,
                                                             shop: User) -> None:
        """No event holds the secret; the key knows its own secret again, and nothing else."""
        key, secret = issue(gopay, shop)
        assert key_id_of(secret) == key.id
        assert key.admits(secret)
        assert not key.admits(secret[:-1] + ("A" if secret[-1] != "A" else "B"))
        stored = [event.__dict__ for event in gopay.events(key.id)]
        assert secret not in repr(stored)
        assert stored[0]["digest"] == secret_digest(secret)
        assert (key.prefix, key.last4) == ("sk_live_", secret[-4:])

    def test_a_revoked_key_admits_nobody(self, gopay: InMemoryGoPay, shop: User) -> None:
        key, secret = issue(gopay, shop)
        revoked = gopay.run(RevokeApiKey(merchant_id=shop.id, key_id=key.id))
        assert not revoked.admits(secret)
        assert not gopay.app.get(key.id, ApiKey).admits(secret)

    def test_only_its_merchant_revokes_a_key(self, gopay: InMemoryGoPay, shop: User) -> None:
        other = gopay.register("kiosk@example.com", kind="company", business_name="Kiosk",
                               category="merchant")
        key, secret = issue(gopay, shop)
        for merchant_id, key_id in ((other.id, key.id), (shop.id, uuid4())):
            with pytest.raises(NotFound):
                gopay.run(RevokeApiKey(merchant_id=merchant_id, key_id=key_id))
        assert gopay.app.get(key.id, ApiKey).admits(secret)

    def test_only_merchants_have_keys(self, gopay: InMemoryGoPay) -> None:
        person = gopay.register("ada@example.com")
        with pytest.raises(Forbidden):
            issue(gopay, person)

    def test_a_keyed_repeat_finds_the_first_key(self, gopay: InMemoryGoPay, shop: User) -> None:
        """Its secret was shown once: the repeat's own new secret is not the key's."""
        key_id = ApiKey.id_for(shop.id, "k")
        first, secret = issue(gopay, shop, key_id=key_id, idempotency_key="k", fingerprint="f")
        again, other_secret = issue(gopay, shop, key_id=key_id, idempotency_key="k", fingerprint="f")
        assert again.id == first.id
        assert again.admits(secret) and not again.admits(other_secret)
        with pytest.raises(IdempotencyConflict):
            issue(gopay, shop, key_id=key_id, idempotency_key="k", fingerprint="g")


class TestWebhookEndpoints:
    def test_an_endpoint_keeps_its_url_and_events(self, gopay: InMemoryGoPay, shop: User) -> None:
        endpoint = gopay.run(AddWebhookEndpoint(
            merchant_id=shop.id, url="https://shop.example/hooks",
            events=("refund.succeeded", "payment.succeeded", "payment.succeeded")))
        assert (endpoint.url, endpoint.events, endpoint.wallet_id) == (
            "https://shop.example/hooks", ("payment.succeeded", "refund.succeeded"), shop.wallet_id)

    @pytest.mark.parametrize("events", [(), ("payment.failed",), ("payment.succeeded", "nope")])
    def test_only_known_events_are_subscribed_to(self, gopay: InMemoryGoPay, shop: User,
                                                 events: tuple[str, ...]) -> None:
        with pytest.raises(ValidationFailed, match="events must be"):
            gopay.run(AddWebhookEndpoint(merchant_id=shop.id, url="https://shop.example/hooks",
                                         events=events))

    def test_only_its_merchant_removes_an_endpoint(self, gopay: InMemoryGoPay, shop: User) -> None:
        other = gopay.register("kiosk@example.com", kind="company", business_name="Kiosk",
                               category="merchant")
        endpoint = gopay.run(AddWebhookEndpoint(merchant_id=shop.id, url="https://shop.example/h",
                                                events=("payment.succeeded",)))
        with pytest.raises(NotFound):
            gopay.run(RemoveWebhookEndpoint(merchant_id=other.id, endpoint_id=endpoint.id))
        gopay.run(RemoveWebhookEndpoint(merchant_id=shop.id, endpoint_id=endpoint.id))
        assert gopay.app.get(endpoint.id, WebhookEndpoint).removed

    def test_only_merchants_add_endpoints(self, gopay: InMemoryGoPay) -> None:
        agent = gopay.register("agent@example.com", kind="agent")
        with pytest.raises(Forbidden):
            gopay.run(AddWebhookEndpoint(merchant_id=agent.id, url="https://a.example/h",
                                         events=("payment.succeeded",)))
