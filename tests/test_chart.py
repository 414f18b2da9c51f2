"""The revenue-by-hour chart: a PNG of the expected size that shows the bars it was given."""

from __future__ import annotations

import datetime as dt
import io

import pytest
from PIL import Image

from bot.reports.chart import CURRENT, HEIGHT, LEFT, PREVIOUS, RIGHT, WIDTH, money_label, nice_step, render_chart
from bot.reports.figures import HourlyRevenue


def series(current: list[int], previous: list[int], *, currency: str = "USD",
           until: dt.time | None = None, others: tuple[str, ...] = ()) -> HourlyRevenue:
    """24 hourly values for a Monday and the Monday before."""
    return HourlyRevenue(currency=currency, day=dt.date(2026, 3, 9), previous_day=dt.date(2026, 3, 2),
                         current=tuple(current), previous=tuple(previous), others=others, until=until)


def decode(png: bytes) -> Image.Image:
    """The PNG, decoded."""
    image = Image.open(io.BytesIO(png))
    image.load()
    return image


def rgb(colour: str) -> tuple[int, int, int]:
    """#rrggbb as a tuple."""
    return tuple(int(colour[i:i + 2], 16) for i in (1, 3, 5))  # type: ignore[return-value]  # exactly three ints


def column_colours(image: Image.Image, hour: int) -> set[tuple[int, int, int]]:
    """Every colour drawn in the plot's column for `hour`, just above the axis."""
    slot = (WIDTH - LEFT - RIGHT) / 24
    y = HEIGHT - 80
    pixels = image.convert("RGB")
    return {pixels.getpixel((int(LEFT + hour * slot + dx), y)) for dx in range(int(slot))}  # type: ignore[misc]  # Pillow's pixel type is a union


@pytest.mark.parametrize("currency", ["USD", "EUR", "JPY", "KWD"])
def test_chart_is_a_png_of_the_expected_size(currency: str) -> None:
    """Whatever the currency, the chart decodes as a WIDTH × HEIGHT PNG."""
    image = decode(render_chart(series([0] * 7 + [1500] * 10 + [0] * 7, [900] * 24, currency=currency,
                                       until=dt.time(18), others=("GBP",))))
    assert image.format == "PNG" and image.size == (WIDTH, HEIGHT) == (1200, 600)


def test_bars_appear_where_there_was_revenue() -> None:
    """An hour with sales today and a week earlier shows both colours; an empty hour shows neither."""
    current, previous = [0] * 24, [0] * 24
    current[13], previous[13], previous[20] = 40_000, 30_000, 10_000
    image = decode(render_chart(series(current, previous)))
    assert {rgb(CURRENT), rgb(PREVIOUS)} <= column_colours(image, 13)
    assert rgb(PREVIOUS) in column_colours(image, 20) and rgb(CURRENT) not in column_colours(image, 20)
    assert not {rgb(CURRENT), rgb(PREVIOUS)} & column_colours(image, 3)


def test_the_same_figures_draw_the_same_bytes() -> None:
    """Rendering is deterministic: no time, randomness or system font leaks in."""
    s = series(list(range(0, 2400, 100)), list(range(2400, 0, -100)))
    assert render_chart(s) == render_chart(s)


def test_an_empty_day_still_draws_a_chart() -> None:
    """No sales either day: a valid image with an axis, not a division by zero."""
    assert decode(render_chart(series([0] * 24, [0] * 24))).size == (WIDTH, HEIGHT)


@pytest.mark.parametrize(("top", "currency", "step"), [(0, "USD", 100), (99_000, "USD", 20_000),
                                                        (12_345, "JPY", 5_000), (7, "JPY", 2), (3, "JPY", 1),
                                                        (4_200_000, "KWD", 1_000_000)])
def test_gridlines_fall_on_round_amounts(top: int, currency: str, step: int) -> None:
    """Steps are 1, 2 or 5 × 10ⁿ minor units and never below one major unit."""
    assert nice_step(top, currency=currency) == step


def test_axis_labels_use_the_iso_code_where_the_font_lacks_the_symbol() -> None:
    """$ is drawn as is; €, ¥ (missing from Pillow's bundled font) become the ISO code, amounts unchanged."""
    assert money_label(12_500, "USD", size=14) == "$125.00"
    assert money_label(12_500, "EUR", size=14) == "EUR 125.00"
    assert money_label(12_500, "JPY", size=14) == "JPY 12,500"
