"""How long GoPay waits when the PSP turns a request away: its Retry-After, read as HTTP says."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from gopay.psp.http_adapter import LONGEST_RETRY_AFTER, _seconds


@pytest.mark.parametrize(("header", "seconds"), [
    ("7", 7.0), ("0", 0.0), ("2.5", 2.5), ("-3", 0.0), ("99999999", LONGEST_RETRY_AFTER),
    ("inf", LONGEST_RETRY_AFTER), (None, None), ("", None), ("soon", None), ("nan", None),
    ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0)])  # a date gone by: at once
def test_seconds_or_a_date_or_nothing(header: str | None, seconds: float | None) -> None:
    assert _seconds(header) == seconds


def test_an_http_date_is_the_wait_until_then() -> None:
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=90), usegmt=True)
    wait = _seconds(later)
    assert wait is not None and 85 <= wait <= 90
