"""The dashboard's server-drawn charts and amounts: readable, to scale, and never a way in for markup."""

from __future__ import annotations

import re

from gopay.dashboard.charts import Bar, bar_chart, column_chart, money_text


class TestMoneyText:
    def test_minor_units_read_as_a_person_reads_them(self) -> None:
        """Thousands grouped, the currency's own number of decimals, the sign kept."""
        assert money_text(123_456, "USD") == "1,234.56 USD"
        assert money_text(5, "EUR") == "0.05 EUR"
        assert money_text(1_500, "JPY") == "1,500 JPY"
        assert money_text(-250, "GBP") == "-2.50 GBP"


class TestCharts:
    def test_bars_are_to_scale_and_carry_their_values(self) -> None:
        """The longest bar is the largest value; each bar says its label and exact value."""
        svg = str(column_chart([Bar("2026-12-01", 50), Bar("2026-12-02", 200)], title="t",
                               value_text=str, height=240))
        heights = [float(h) for h in re.findall(r'class="bar"[^>]* height="([0-9.]+)"', svg)]
        assert heights[1] == 4 * heights[0]
        assert 'data-label="2026-12-02" data-value="200"' in svg

    def test_labels_and_titles_are_escaped(self) -> None:
        """A label holding markup is shown as text, never run as markup."""
        for draw in (column_chart, bar_chart):
            svg = str(draw([Bar('<script>alert("x")</script>', 1)], title="<b>",
                           value_text=lambda amount: f"<{amount}>"))
            assert "<script>" not in svg and "<b>" not in svg and "<1>" not in svg
            assert "&lt;script&gt;" in svg

    def test_an_empty_chart_still_draws(self) -> None:
        """No bars (nothing happened yet) is a chart that says so, not an error."""
        assert "nothing yet" in str(bar_chart([], title="t", value_text=str))
        assert "<svg" in str(column_chart([], title="t", value_text=str))
