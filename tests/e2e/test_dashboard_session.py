"""Dashboard pages that load at once with an expired access token renew it once between them,
and the session lives on (the refresh token is single-use: presenting it twice ends it)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx

from tests.support import GoPayServer, staff


def cookie(answer: httpx.Response, name: str) -> str | None:
    """A cookie the answer sets (read from the header: it is Secure, and this is plain HTTP)."""
    for header in answer.headers.get_list("set-cookie"):
        key, _, rest = header.partition("=")
        if key == name:
            return rest.split(";", 1)[0]
    return None


def test_pages_loading_at_once_share_one_renewal(server: GoPayServer,
                                                 server_env: dict[str, str]) -> None:
    admin = staff(server.url, server_env)
    cookies = f"gopay_staff=expired; gopay_staff_refresh={admin.refresh_token}"

    def load(_: int) -> httpx.Response:
        return httpx.get(f"{server.url}/admin", headers={"Cookie": cookies}, timeout=30)

    with ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(load, range(6)))
    assert [answer.status_code for answer in answers] == [200] * 6, "a page was signed out"
    renewed = {cookie(answer, "gopay_staff") for answer in answers}
    assert len(renewed) == 1 and None not in renewed, "one renewal, given to every page"
    [access] = renewed
    assert access is not None
    me = httpx.get(f"{server.url}/v1/me", headers={"Authorization": f"Bearer {access}"})
    assert me.status_code == 200, "the session ended: the refresh token was presented twice"
