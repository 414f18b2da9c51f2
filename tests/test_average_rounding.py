"""Average order value is cut down to the minor unit rather than rounded: $10.00 + $10.01 + $10.01 (mean $10.0067)
shows as $10.00 on /sales, App Home, the reports and the JSON API; ¥100 + ¥101 + ¥101 shows ¥100."""

from __future__ import annotations

from bot.blocks.currency import average_text
from bot.currency import StoreTotals


def test_store_average_is_rounded_not_truncated() -> None:
    st = StoreTotals(currency="USD", orders=3, gross=1000 + 1001 + 1001, fees=0, refunds=0, unsettled=0)
    assert average_text(st) == "$10.01"


def test_zero_decimal_average_is_rounded_not_truncated() -> None:
    st = StoreTotals(currency="JPY", orders=3, gross=100 + 101 + 101, fees=0, refunds=0, unsettled=0)
    assert average_text(st) == "¥101"
