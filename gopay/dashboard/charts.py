"""Bar charts drawn as SVG on the server: the dashboard needs no script and no outside asset."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

from gopay.aggregates.money import CURRENCIES


def money_text(amount: int, currency: str) -> str:
    """Minor units as a person reads them: 123456 USD is "1,234.56 USD"."""
    digits = CURRENCIES.get(currency, 2)
    sign = "-" if amount < 0 else ""
    whole, minor = divmod(abs(amount), 10**digits)
    return f"{sign}{whole:,}" + (f".{minor:0{digits}d}" if digits else "") + f" {currency}"


@dataclass(frozen=True)
class Bar:
    """One bar: its label under (or beside) it, and its value."""

    label: str
    value: int


def column_chart(bars: Sequence[Bar], *, title: str, value_text: Callable[[int], str],
                 width: int = 720, height: int = 220, every_nth_label: int = 5) -> Markup:
    """Vertical bars side by side (a value per day, say), each with its value as a tooltip."""
    top, bottom, left = 16, 28, 8
    plot_height = height - top - bottom
    peak = max((bar.value for bar in bars), default=0) or 1
    step = (width - left) / max(len(bars), 1)
    parts = [(f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" '
             f'viewBox="0 0 {width} {height}" width="100%" aria-label="{escape(title)}">'),
             f"<title>{escape(title)}</title>",
             (f'<line class="axis" x1="{left}" y1="{top + plot_height}" x2="{width}" '
             f'y2="{top + plot_height}"/>')]
    for n, bar in enumerate(bars):
        bar_height = round(plot_height * max(bar.value, 0) / peak, 1)
        x = round(left + n * step + step * 0.1, 1)
        parts.append(
            f'<rect class="bar" data-label="{escape(bar.label)}" data-value="{bar.value}" '
            f'x="{x}" y="{round(top + plot_height - bar_height, 1)}" '
            f'width="{round(step * 0.8, 1)}" height="{bar_height}">'
            f"<title>{escape(bar.label)}: {escape(value_text(bar.value))}</title></rect>")
        if n % every_nth_label == 0 or n == len(bars) - 1:
            last = n == len(bars) - 1  # kept inside the drawing
            parts.append(f'<text class="label" x="{width if last else round(x + step * 0.4, 1)}" '
                         f'y="{height - 8}" text-anchor="{"end" if last else "middle"}">'
                         f"{escape(bar.label[-5:])}</text>")
    parts.append(f'<text class="peak" x="{width - 4}" y="12" text-anchor="end">'
                 f"max {escape(value_text(peak if bars else 0))}</text>")
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704  # every value above is escaped or a number


def bar_chart(bars: Sequence[Bar], *, title: str, value_text: Callable[[int], str],
              width: int = 720, row_height: int = 26) -> Markup:
    """Horizontal bars one under another (a value per payment type, say), labelled in full."""
    label_width = 130
    height = max(len(bars), 1) * row_height + 8
    peak = max((bar.value for bar in bars), default=0) or 1
    room = width - label_width - 170
    parts = [(f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" '
             f'viewBox="0 0 {width} {height}" width="100%" aria-label="{escape(title)}">'),
             f"<title>{escape(title)}</title>"]
    for n, bar in enumerate(bars):
        y = 4 + n * row_height
        length = round(room * max(bar.value, 0) / peak, 1)
        parts.append(
            f'<text class="label" x="{label_width - 6}" y="{y + row_height * 0.65}" '
            f'text-anchor="end">{escape(bar.label)}</text>'
            f'<rect class="bar" data-label="{escape(bar.label)}" data-value="{bar.value}" '
            f'x="{label_width}" y="{y + 3}" width="{length}" height="{row_height - 8}">'
            f"<title>{escape(bar.label)}: {escape(value_text(bar.value))}</title></rect>"
            f'<text class="value" x="{label_width + length + 6}" y="{y + row_height * 0.65}">'
            f"{escape(value_text(bar.value))}</text>")
    if not bars:
        parts.append(f'<text class="label" x="{width / 2}" y="{row_height * 0.65}" '
                     f'text-anchor="middle">nothing yet</text>')
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704  # every value above is escaped or a number
