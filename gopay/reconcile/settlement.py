"""Settlement files: the PSP's CSV, read as a stream, each line checked, the bytes hashed as read.

`psp_reference,merchant_reference,type,amount,currency,fee,status,settled_at` (API.md), UTF-8,
a header row naming the columns (in any order; other columns are ignored). A file with a
line GoPay cannot read is refused whole, naming the line: a reconciliation of part of a file
would pass for the whole of it.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any, BinaryIO, NamedTuple

from gopay.aggregates.errors import ValidationFailed
from gopay.aggregates.money import CURRENCIES, MAX_AMOUNT

HEADER = ("psp_reference", "merchant_reference", "type", "amount", "currency", "fee", "status",
          "settled_at")
LINE_TYPES = frozenset({"charge", "payout", "refund", "chargeback"})
LINE_STATUSES = frozenset({"settled", "failed"})
MAX_REFERENCE = 255
CURRENCY = re.compile(r"[A-Z]{3}")
_MAX_DIGITS = 16  # of an amount or a fee: MAX_AMOUNT fits, a number too long to parse does not

# Told how many bytes of the file have been read so far (a progress bar, say).
Progress = Callable[[int], None]


class SettlementFileInvalid(ValidationFailed):
    """The file is not a settlement file GoPay can read; nothing was reconciled."""


class SettlementLine(NamedTuple):
    """One operation the PSP settled (or failed), as its file has it."""

    number: int  # the file's line number (the header is line 1)
    psp_reference: str
    merchant_reference: str
    type: str
    amount: int
    currency: str
    fee: int
    status: str
    settled_at: datetime


def sha256_of(source: BinaryIO, progress: Progress | None = None) -> str:
    """The file's SHA-256 (what makes the same file the same run), read in large pieces."""
    digest = hashlib.sha256()
    read = 0
    while chunk := source.read(1 << 20):
        digest.update(chunk)
        read += len(chunk)
        if progress is not None:
            progress(read)
    return digest.hexdigest()


def lines(source: BinaryIO, progress: Progress | None = None,
          digest: Any = None) -> Iterator[SettlementLine]:
    """The file's lines, in order; `digest` is fed the bytes read.

    Raises `SettlementFileInvalid` at the first line that is not a settlement line.
    """
    return _lines(_HashingReader(source, digest, progress))


def _lines(reader: _HashingReader) -> Iterator[SettlementLine]:
    text = io.TextIOWrapper(io.BufferedReader(reader, 1 << 16), encoding="utf-8-sig", newline="")
    rows = csv.reader(text, strict=True)
    try:
        header = next(rows, None)
        if header is None:
            raise SettlementFileInvalid("the file is empty: a settlement file starts with a header "
                                        f"row ({','.join(HEADER)})")
        columns = _columns(header)
        width = len(header)
        in_order = columns == list(range(len(HEADER))) and width == len(HEADER)
        for row in rows:
            if not row:
                continue  # a blank line
            if len(row) != width:
                raise _invalid(rows.line_num, f"it has {len(row)} fields, the header {width}")
            yield _line(rows.line_num, row if in_order else [row[index] for index in columns])
    except UnicodeDecodeError:
        raise SettlementFileInvalid("the file is not UTF-8 text") from None
    except csv.Error as error:
        raise _invalid(rows.line_num, f"it is not CSV ({error})") from None


def _columns(header: list[str]) -> list[int]:
    """Where each of the file's columns is; every one of HEADER must be there."""
    names = [name.strip() for name in header]
    missing = [name for name in HEADER if name not in names]
    if missing:
        raise SettlementFileInvalid(f"the header row lacks {', '.join(missing)}: a settlement "
                                    f"file's columns are {','.join(HEADER)}")
    return [names.index(name) for name in HEADER]


def _line(number: int, fields: list[str]) -> SettlementLine:
    """The line, checked: one test of every field at once for the usual line (a known
    currency, a time in UTC), the field-by-field checks naming the problem for any other."""
    psp_reference, merchant_reference, kind, amount, currency, fee, status, settled_at = fields
    if (0 < len(psp_reference) <= MAX_REFERENCE and 0 < len(merchant_reference) <= MAX_REFERENCE
            and kind in LINE_TYPES and status in LINE_STATUSES and currency in CURRENCIES
            and amount.isascii() and amount.isdigit() and len(amount) <= _MAX_DIGITS
            and fee.isascii() and fee.isdigit() and len(fee) <= _MAX_DIGITS):
        amount_units, fee_units = int(amount), int(fee)
        if 0 < amount_units <= MAX_AMOUNT and fee_units <= MAX_AMOUNT:
            try:
                moment = datetime.fromisoformat(settled_at)
            except ValueError:
                pass
            else:
                if moment.tzinfo is UTC:
                    # tuple.__new__ skips the named tuple's Python-level constructor.
                    return _new_line(SettlementLine, (
                        number, psp_reference, merchant_reference, kind, amount_units, currency,
                        fee_units, status, moment))
    return _checked_line(number, fields)


def _checked_line(number: int, fields: list[str]) -> SettlementLine:
    psp_reference, merchant_reference, kind, amount, currency, fee, status, settled_at = fields
    if not 0 < len(psp_reference) <= MAX_REFERENCE:
        raise _invalid(number, f"psp_reference must be 1 to {MAX_REFERENCE} characters")
    if not 0 < len(merchant_reference) <= MAX_REFERENCE:
        raise _invalid(number, f"merchant_reference must be 1 to {MAX_REFERENCE} characters")
    if kind not in LINE_TYPES:
        raise _invalid(number, f"type must be one of {', '.join(sorted(LINE_TYPES))}")
    if status not in LINE_STATUSES:
        raise _invalid(number, f"status must be one of {', '.join(sorted(LINE_STATUSES))}")
    if not CURRENCY.fullmatch(currency):
        raise _invalid(number, "currency must be an ISO 4217 code")
    return SettlementLine(number, psp_reference, merchant_reference, kind,
                          _minor_units(number, "amount", amount, least=1), currency,
                          _minor_units(number, "fee", fee, least=0), status,
                          _moment(number, settled_at))


_new_line = tuple.__new__


def _minor_units(number: int, name: str, text: str, *, least: int) -> int:
    if not (text.isascii() and text.isdigit() and len(text) <= _MAX_DIGITS):
        raise _invalid(number, f"{name} must be an integer number of minor units")
    value = int(text)
    if not least <= value <= MAX_AMOUNT:
        raise _invalid(number, f"{name} must be from {least} to {MAX_AMOUNT}")
    return value


def _moment(number: int, text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise _invalid(number, "settled_at must be an RFC 3339 date-time") from None
    if moment.tzinfo is UTC:  # "Z" or "+00:00": most lines, and the cheapest check
        return moment
    if moment.tzinfo is None:
        raise _invalid(number, "settled_at must say its offset from UTC (Z or +hh:mm)")
    return moment.astimezone(UTC)


def _invalid(number: int, problem: str) -> SettlementFileInvalid:
    return SettlementFileInvalid(f"line {number}: {problem}", line=number)


class _HashingReader(io.RawIOBase):
    """The file's bytes as they are read, fed to a digest and counted for a progress bar."""

    def __init__(self, source: BinaryIO, digest: Any, progress: Progress | None) -> None:
        self.source = source
        self.digest = digest
        self.progress = progress
        self.read_bytes = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        chunk = self.source.read(len(buffer))
        size = len(chunk)
        buffer[:size] = chunk
        if self.digest is not None:
            self.digest.update(chunk)
        self.read_bytes += size
        if self.progress is not None:
            self.progress(self.read_bytes)
        return size
