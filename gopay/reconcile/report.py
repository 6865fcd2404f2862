"""Reconciliation reports for finance: the findings as CSV, and an HTML page with the totals
and a chart of the day drawn on the server (inline SVG: nothing is fetched from anywhere,
and the page's one style sheet is allowed by its hash in the content security policy).
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
from collections.abc import Iterable, Iterator, Mapping, Sequence
from html import escape
from typing import Any

from gopay.aggregates.money import CURRENCIES
from gopay.aggregates.reconciliation import SUMMARY_KEYS

CSV_COLUMNS = ("kind", "line", "psp_reference", "merchant_reference", "expected", "actual",
               "cause", "order_ids", "difference_account", "difference_amount",
               "difference_currency", "suspense_order_id")
# Findings shown on the HTML page; the CSV has them all.
HTML_FINDINGS = 500

STYLE = ("body{font-family:system-ui,sans-serif;margin:2rem;color:#222}"
         "table{border-collapse:collapse;margin:.5rem 0 1.5rem}"
         "th,td{border:1px solid #ccc;padding:.25rem .5rem;text-align:left;vertical-align:top}"
         "td.n{text-align:right;font-variant-numeric:tabular-nums}"
         ".ok{color:#2e7d4f}.bad{color:#b3261e}code{font-size:.9em}")
HTML_CSP = ("default-src 'none'; style-src 'sha256-"
            + base64.b64encode(hashlib.sha256(STYLE.encode()).digest()).decode()
            + "'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'")

MATCHED_COLOUR, DIFFERING_COLOUR = "#4c9a6a", "#c0392b"


def csv_lines(findings: Iterable[Mapping[str, Any]]) -> Iterator[str]:
    """The findings as CSV text, a header first, a few lines at a time."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for count, item in enumerate(findings, start=1):
        difference = item["difference"] or {}
        writer.writerow([
            item["kind"], item["line"] or "", _cell(item["psp_reference"]),
            _cell(item["merchant_reference"]), _cell(_fields(item["expected"])),
            _cell(_fields(item["actual"])), _cell(item["cause"]),
            " ".join(item["order_ids"]), difference.get("account", ""),
            difference.get("amount", ""), difference.get("currency", ""),
            item["suspense_order_id"] or ""])
        if count % 1000 == 0:
            yield _drain(buffer)
    yield _drain(buffer)


def html_page(run: Mapping[str, Any], findings: Sequence[Mapping[str, Any]]) -> str:
    """The run's page: what was compared, the summary, both sides' totals, the day by hour,
    and the first findings."""
    summary = run["summary"] or {}
    report = run["report"] or {}
    title = f"Reconciliation of {run['file_name']}"
    parts = [
        "<!doctype html>", '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{escape(title)}</title><style>{STYLE}</style></head><body>",
        f"<h1>{escape(title)}</h1>",
        "<table>",
        _row("Run", f"<code>{escape(str(run['id']))}</code>"),
        _row("File SHA-256", f"<code>{escape(run['file_sha256'])}</code>"),
        _row("Period (UTC)", escape(", ".join(run["period"]))),
        _row("Lines", f"{run['lines']:,}"),
        _row("Status", escape(run["status"])),
        *([_row("Abandoned because", escape(run["abandoned_because"]))]
          if run.get("abandoned_because") else []),
        _row("Started", escape(_when(run["started_at"]))),
        _row("Finished", escape(_when(run["finished_at"]))),
        "</table>",
        "<h2>Summary</h2><table><tr><th>kind</th><th>count</th></tr>",
        *(f'<tr><td class="{"ok" if key == "matched" else "bad"}">{key}</td>'
          f'<td class="n">{summary.get(key, 0):,}</td></tr>' for key in SUMMARY_KEYS),
        "</table>",
        "<h2>Totals</h2><h3>The PSP's file</h3>",
        _totals(report.get("file_totals", []), "type"),
        "<h3>GoPay's ledger, orders of the period</h3>",
        _totals(report.get("ledger_totals", []), "kind"),
        "<h2>The day, hour by hour</h2>",
        *(_chart(day, hours) for day, hours in sorted(report.get("hours", {}).items())),
        f"<h2>Discrepancies</h2><p>{_shown(len(findings), _discrepancies(summary))}</p>",
        _findings(findings),
        "</body></html>",
    ]
    return "\n".join(parts)


def _totals(rows: list[Mapping[str, Any]], kind: str) -> str:
    if not rows:
        return "<p>None.</p>"
    lines = ["<table><tr><th>kind</th><th>status</th><th>count</th><th>amount</th><th>fee</th></tr>"]
    lines += [f"<tr><td>{escape(str(row[kind]))}</td><td>{escape(str(row['status']))}</td>"
              f'<td class="n">{row["count"]:,}</td>'
              f'<td class="n">{escape(money(row["amount"], row["currency"]))}</td>'
              f'<td class="n">{escape(money(row["fee"], row["currency"]))}</td></tr>'
              for row in rows]
    lines.append("</table>")
    return "".join(lines)


def _chart(day: str, hours: list[list[int]]) -> str:
    """A stacked bar per hour: lines that matched, and findings, drawn as SVG."""
    width, height, left, bottom, top = 760, 240, 50, 30, 20
    bar = (width - left - 10) / 24
    most = max((matched + differing for matched, differing in hours), default=0) or 1
    scale = (height - bottom - top) / most
    base = height - bottom
    shapes = [f'<line x1="{left}" y1="{base}" x2="{width - 10}" y2="{base}" stroke="#888"/>',
              f'<text x="{left - 6}" y="{top + 4}" font-size="11" text-anchor="end">{most:,}</text>',
              f'<text x="{left - 6}" y="{base}" font-size="11" text-anchor="end">0</text>']
    for hour, (matched, differing) in enumerate(hours):
        x = left + hour * bar + 2
        matched_height, differing_height = matched * scale, differing * scale
        label = f"{hour:02d}:00-{hour:02d}:59 UTC: {matched:,} matched, {differing:,} discrepancies"
        shapes.append(f"<g><title>{escape(label)}</title>"
                      f'<rect x="{x:.1f}" y="{base - matched_height:.1f}" width="{bar - 4:.1f}" '
                      f'height="{matched_height:.1f}" fill="{MATCHED_COLOUR}"/>'
                      f'<rect x="{x:.1f}" y="{base - matched_height - differing_height:.1f}" '
                      f'width="{bar - 4:.1f}" height="{differing_height:.1f}" '
                      f'fill="{DIFFERING_COLOUR}"/></g>')
        if hour % 3 == 0:
            shapes.append(f'<text x="{x + (bar - 4) / 2:.1f}" y="{base + 16}" font-size="11" '
                          f'text-anchor="middle">{hour:02d}h</text>')
    legend = ('<p><span class="ok">&#9632; matched</span> &nbsp; '
              '<span class="bad">&#9632; discrepancies</span> (by the hour of the PSP\'s '
              "settlement, or of GoPay's order for those missing at the PSP)</p>")
    return (f"<h3>{escape(day)}</h3>"
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" role="img" aria-label="{escape(day)} by hour">'
            + "".join(shapes) + "</svg>" + legend)


def _findings(findings: Sequence[Mapping[str, Any]]) -> str:
    if not findings:
        return ""
    lines = [("<table><tr><th>kind</th><th>line</th><th>PSP reference</th><th>GoPay reference</th>"
              "<th>expected (ledger)</th><th>actual (file)</th><th>cause</th><th>difference</th></tr>")]
    for item in findings:
        difference = item["difference"]
        shown = (money(difference["amount"], difference["currency"]) + " in "
                 + difference["account"]) if difference else ""
        lines.append(
            f'<tr><td class="bad">{escape(item["kind"])}</td><td class="n">{item["line"] or ""}</td>'
            f"<td><code>{escape(item['psp_reference'] or '')}</code></td>"
            f"<td><code>{escape(item['merchant_reference'] or '')}</code></td>"
            f"<td>{escape(_fields(item['expected']))}</td><td>{escape(_fields(item['actual']))}</td>"
            f"<td>{escape(item['cause'])}</td><td>{escape(shown)}</td></tr>")
    lines.append("</table>")
    return "".join(lines)


def money(amount: int, currency: str) -> str:
    """Minor units as a person reads them: 1050 USD is 10.50 USD."""
    places = CURRENCIES.get(currency, 2)
    sign = "-" if amount < 0 else ""
    whole, minor = divmod(abs(amount), 10**places)
    return f"{sign}{whole:,}{'.' + str(minor).zfill(places) if places else ''} {currency}"


def _fields(value: Mapping[str, Any] | None) -> str:
    """A side of a finding as `field=value` pairs ('' when that side has nothing)."""
    if not value:
        return ""
    return "; ".join(f"{key}={item}" for key, item in value.items())


def _cell(text: str | None) -> str:
    """A CSV cell a spreadsheet will not run as a formula (the file's text comes from outside)."""
    if not text:
        return ""
    return "'" + text if text[0] in "=+-@\t\r" else text


def _drain(buffer: io.StringIO) -> str:
    text = buffer.getvalue()
    buffer.seek(0)
    buffer.truncate()
    return text


def _row(name: str, value: str) -> str:
    return f"<tr><th>{escape(name)}</th><td>{value}</td></tr>"


def _when(moment: Any) -> str:
    return moment.isoformat().replace("+00:00", "Z") if moment is not None else "-"


def _discrepancies(summary: Mapping[str, int]) -> int:
    return sum(summary.get(key, 0) for key in SUMMARY_KEYS if key != "matched")


def _shown(shown: int, total: int) -> str:
    if total == shown:
        return f"{total:,} in all."
    return f"The first {shown:,} of {total:,}; the CSV report has them all."
