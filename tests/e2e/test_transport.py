"""Transport: security headers on every answer, and HTTPS only when given a certificate."""

from __future__ import annotations

import datetime
import ipaddress
import ssl
import time
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.support import GoPayProcess, free_port


def self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key, as PEM files."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(
            [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .sign(key, hashes.SHA256()))
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


class TestSecurityHeaders:
    @pytest.mark.parametrize("path", ["/health/live", "/v1/wallet", "/v1/nothing"])
    def test_every_answer_carries_them(self, server, path: str) -> None:
        """Success, 401 and 404 alike: nosniff, no framing, no caching, no referrer, a strict CSP."""
        headers = httpx.get(f"{server.url}{path}").headers
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["x-frame-options"] == "DENY"
        assert headers["cache-control"] == "no-store"
        assert headers["referrer-policy"] == "no-referrer"
        assert headers["content-security-policy"].startswith("default-src 'none'")
        assert "strict-transport-security" not in headers  # plain HTTP: HSTS would be ignored

    def test_the_docs_page_can_still_load_its_scripts(self, server) -> None:
        response = httpx.get(f"{server.url}/docs")
        assert response.status_code == 200
        assert "content-security-policy" not in response.headers


class TestHttps:
    def test_with_a_certificate_gopay_speaks_https_only(self, server_env, tmp_path) -> None:
        """HTTPS answers with HSTS; plain HTTP on the same port gets no answer."""
        cert, key = self_signed_certificate(tmp_path)
        port = free_port()
        process = GoPayProcess(("serve", "--host", "127.0.0.1", "--port", str(port),
                                "--tls-cert", str(cert), "--tls-key", str(key)),
                               server_env, tmp_path / "tls.log").start()
        try:
            url = f"https://127.0.0.1:{port}"
            trusted = ssl.create_default_context(cafile=str(cert))
            response = None
            for _ in range(300):
                try:
                    response = httpx.get(f"{url}/health/live", verify=trusted)
                    break
                except httpx.HTTPError:
                    time.sleep(0.1)
            assert response is not None and response.status_code == 200
            assert response.headers["strict-transport-security"].startswith("max-age=")
            with pytest.raises(httpx.HTTPError):
                httpx.get(f"http://127.0.0.1:{port}/health/live")
        finally:
            process.stop()
