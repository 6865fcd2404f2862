"""The merchant integration's cryptography and address rules, as pure functions."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from uuid import uuid4

import pytest

from gopay.aggregates.qr_code import QrInvalid, QrTerms
from gopay.security.api_keys import key_id_of, new_secret
from gopay.security.qr_codes import PREFIX, qr_payload, read_qr_payload
from gopay.security.webhook_secrets import endpoint_secret
from gopay.security.webhook_urls import refusal

KEY = "qr-signing-key-for-tests"
TERMS = QrTerms(qr_id=uuid4(), merchant_wallet_id=uuid4(), amount=1_250, currency="USD",
                reference="order 17 — café", expires_at=datetime(2026, 3, 13, 9, 41, 40, tzinfo=UTC))


class TestQrPayloads:
    def test_a_payload_reads_back_as_its_terms(self) -> None:
        payload = qr_payload(TERMS, KEY)
        assert payload.startswith(PREFIX) and len(payload) < 300
        assert read_qr_payload(payload, KEY) == TERMS

    def test_an_open_amount_without_expiry_reads_back_too(self) -> None:
        terms = QrTerms(qr_id=uuid4(), merchant_wallet_id=uuid4(), amount=None, currency="JPY",
                        reference="", expires_at=None)
        assert read_qr_payload(qr_payload(terms, KEY), KEY) == terms

    def test_the_same_terms_always_make_the_same_payload(self) -> None:
        """The PNG is drawn later from the stored terms: it must show the payload answered."""
        assert qr_payload(TERMS, KEY) == qr_payload(TERMS, KEY)

    def test_changing_any_character_makes_it_unreadable(self) -> None:
        payload = qr_payload(TERMS, KEY)
        for position in range(len(payload)):
            for replacement in {"A", "0", "-", "."} - {payload[position]}:
                altered = payload[:position] + replacement + payload[position + 1:]
                with pytest.raises(QrInvalid):
                    read_qr_payload(altered, KEY)

    def test_terms_signed_with_another_key_are_refused(self) -> None:
        with pytest.raises(QrInvalid, match="not made by GoPay"):
            read_qr_payload(qr_payload(TERMS, "someone else's key"), KEY)

    def test_rewritten_terms_keep_no_signature(self) -> None:
        """The amount changed in the terms, the signature carried over: refused."""
        prefix_and_terms, _, signature = qr_payload(TERMS, KEY).rpartition(".")
        raw = prefix_and_terms.removeprefix(PREFIX)
        terms = json.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
        terms["a"] = 1
        forged = base64.urlsafe_b64encode(json.dumps(terms).encode()).rstrip(b"=").decode()
        with pytest.raises(QrInvalid):
            read_qr_payload(f"{PREFIX}{forged}.{signature}", KEY)

    @pytest.mark.parametrize("payload", [
        "", "GOPAY1.", "GOPAY1..", "hello", "GOPAY1.e30.", "GOPAY1.e30.AAAA", "x" * 5_000,
        "GOPAY1.\u00e9\u00e9.\u00e9", "GOPAY2.e30.e30"])
    def test_anything_else_is_refused(self, payload: str) -> None:
        with pytest.raises(QrInvalid):
            read_qr_payload(payload, KEY)


class TestApiKeySecrets:
    def test_a_secret_names_its_key_and_carries_256_random_bits(self) -> None:
        key_id = uuid4()
        secret = new_secret(key_id)
        assert secret.startswith("sk_live_") and len(secret) == 8 + 32 + 43
        assert key_id_of(secret) == key_id
        assert new_secret(key_id) != secret

    @pytest.mark.parametrize("secret", ["", "sk_live_", "sk_test_" + "0" * 75, "sk_live_xyz",
                                        "sk_live_" + "0" * 32 + "short"])
    def test_other_text_names_no_key(self, secret: str) -> None:
        assert key_id_of(secret) is None


class TestWebhookSecrets:
    def test_each_endpoint_has_its_own_stable_secret(self) -> None:
        first, second = uuid4(), uuid4()
        assert endpoint_secret("k", first) == endpoint_secret("k", first)
        assert endpoint_secret("k", first) != endpoint_secret("k", second)
        assert endpoint_secret("k", first) != endpoint_secret("other", first)
        assert endpoint_secret("k", first).startswith("whsec_")


class TestWebhookAddresses:
    @pytest.mark.parametrize("url", [
        "https://127.0.0.1/hooks", "https://localhost:8443/hooks", "https://api.localhost/h",
        "https://10.0.0.7/h", "https://192.168.1.20/h", "https://172.16.5.4/h",
        "https://169.254.169.254/latest/meta-data", "https://[::1]/h", "https://[fd00::1]/h",
        "https://[::ffff:127.0.0.1]/h", "https://100.64.0.1/h", "https://0.0.0.0/h",
        "https://printer.local/h", "https://db.internal/h"])
    def test_loopback_and_private_addresses_are_refused(self, url: str) -> None:
        assert refusal(url, allow_private=False) is not None
        assert refusal(url, allow_private=True) is None

    @pytest.mark.parametrize("url", ["http://93.184.215.14/h", "ftp://93.184.215.14/h",
                                     "https:///h", "https://user:pw@93.184.215.14/h",
                                     "https://[zz/h", "not a url"])
    def test_only_plain_https_urls_are_taken(self, url: str) -> None:
        assert refusal(url, allow_private=False) is not None

    def test_a_public_https_address_is_taken(self) -> None:
        assert refusal("https://93.184.215.14:8443/webhooks", allow_private=False) is None

    def test_plain_http_is_for_development_only(self) -> None:
        assert refusal("http://127.0.0.1:9000/h", allow_private=True) is None
