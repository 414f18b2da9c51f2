"""The reports' chart: revenue by local hour, a day against the same weekday a week earlier, as a PNG.

Pillow only (one wheel, a few MB, no system libraries) and its bundled default font, so the image is the
same on every machine; matplotlib would bring numpy and ~50 MB for two rows of bars.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from functools import cache
from typing import Final

from babel.numbers import get_currency_symbol
from PIL import Image, ImageDraw, ImageFont

from bot.blocks.currency import SETTLED_ELSEWHERE
from bot.money import format_money, minor_unit_exponent
from bot.reports.figures import HourlyRevenue
from queries.sales import CurrencyTotal

WIDTH: Final = 1200
HEIGHT: Final = 600
LEFT, RIGHT, TOP, BOTTOM = 130, 30, 90, 70  # margins around the plot area
BACKGROUND: Final = "#ffffff"
CURRENT: Final = "#1d4e3a"  # the app's colour (manifest.yml background_color)
PREVIOUS: Final = "#b9c7c0"
GRID: Final = "#e3e7e5"
INK: Final = "#1f2522"
MUTED: Final = "#6b7570"
MARKER: Final = "#c0392b"
TICKS: Final = 5
NOTE_LINE: Final = 17  # pixels between the lines of the note under the hour labels


def nice_step(top: int, *, currency: str) -> int:
    """A round gridline step (1, 2 or 5 × 10ⁿ minor units, at least one major unit) for values up to `top`."""
    unit = 10 ** minor_unit_exponent(currency)
    raw = max(top / TICKS, unit)
    magnitude = 10 ** math.floor(math.log10(raw))
    for factor in (1, 2, 5, 10):
        if factor * magnitude >= raw:
            return int(factor * magnitude)
    return int(10 * magnitude)  # pragma: no cover  # the loop always returns at factor 10


Font = ImageFont.FreeTypeFont | ImageFont.ImageFont


@cache
def _font(size: int) -> Font:
    # Pillow ≥ 10.1 ships a scalable default font (used when FreeType is available, as in its wheels).
    return ImageFont.load_default(size=size)


@cache
def _has_glyphs(text: str, size: int) -> bool:
    """Whether the default font draws every character (it has no €, £ or ¥: those come out as boxes)."""
    font = _font(size)
    missing = bytes(font.getmask("\uffff"))  # a non-character: whatever the font draws for "no glyph"
    return all(ch.isspace() or bytes(font.getmask(ch)) != missing for ch in text)


def money_label(amount: int, currency: str, *, size: int) -> str:
    """The amount as formatted everywhere else, with the ISO code instead of a symbol the font lacks."""
    label = format_money(amount, currency)
    if _has_glyphs(label, size):
        return label
    symbol = get_currency_symbol(currency.upper(), locale="en_US")
    return label.replace(symbol, f"{currency.upper()} ", 1).strip()


def _grid(draw: ImageDraw.ImageDraw, *, top: int, step: int, bottom_y: int, plot_h: int, currency: str,
          font: Font) -> None:
    """Horizontal grid lines with their money labels, every `step` minor units up to `top`."""
    for value in range(0, top + 1, step):
        y = bottom_y - round(value * plot_h / top)
        draw.line([(LEFT, y), (WIDTH - RIGHT, y)], fill=GRID, width=1)
        label = money_label(value, currency, size=14)
        width = draw.textlength(label, font=font)
        draw.text((LEFT - 10 - width, y - 8), label, font=font, fill=MUTED)


def chart_title(series: HourlyRevenue) -> str:
    """"Revenue by hour · EUR", or "… · all in USD" when every currency is charted in the store currency."""
    return f"Revenue by hour · {'all in ' if series.store else ''}{series.currency}"


def _orders_of(totals: Sequence[CurrencyTotal]) -> tuple[str, str]:
    """"GBP 78.00 + EUR 45.00" and "2 orders"."""
    orders = sum(t.orders for t in totals)
    return (" + ".join(money_label(t.revenue, t.currency, size=14) for t in totals),
            f"{orders} order{'s' * (orders != 1)}")


def chart_note(series: HourlyRevenue) -> str | None:
    """The lines under the plot naming what the bars leave out: other currencies, orders not converted yet, and
    those settled in another currency than the store's (worded as /sales and the dashboard word them)."""
    notes = []
    if series.store and series.pending:
        left, orders = _orders_of(series.pending)
        notes.append(f"Not charted, not converted to {series.currency} yet (Stripe's figures still to come): {left}"
                     f" ({orders})")
    if series.store and series.aside:
        left, orders = _orders_of(series.aside)
        notes.append(f"Also {left} {SETTLED_ELSEWHERE} ({orders})")
    if series.others:
        notes.append(f"Also sold, not charted (never added to {series.currency}): " + ", ".join(series.others))
    return "\n".join(notes) or None


def render_chart(series: HourlyRevenue) -> bytes:
    """The chart as PNG bytes, WIDTH × HEIGHT pixels."""
    image = Image.new("RGB", (WIDTH, HEIGHT), BACKGROUND)
    draw = ImageDraw.Draw(image)
    title, small, tiny = _font(24), _font(16), _font(14)
    draw.text((LEFT, 24), chart_title(series), font=title, fill=INK)
    _legend(draw, series, small)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    step = nice_step(max((*series.current, *series.previous, 0)), currency=series.currency)
    top = step * max(1, math.ceil(max((*series.current, *series.previous, 1)) / step))
    bottom_y = TOP + plot_h
    _grid(draw, top=top, step=step, bottom_y=bottom_y, plot_h=plot_h, currency=series.currency, font=tiny)
    slot = plot_w / len(series.current)
    bar = slot * 0.38
    for hour, (now, then) in enumerate(zip(series.current, series.previous, strict=True)):
        x = LEFT + hour * slot + slot * 0.1
        for offset, value, colour in ((0.0, then, PREVIOUS), (bar, now, CURRENT)):
            if value > 0:
                height = max(1, round(value * plot_h / top))
                draw.rectangle([x + offset, bottom_y - height, x + offset + bar, bottom_y], fill=colour)
        if hour % 3 == 0:
            draw.text((LEFT + hour * slot + 2, bottom_y + 8), f"{hour:02d}:00", font=tiny, fill=MUTED)
    draw.line([(LEFT, bottom_y), (WIDTH - RIGHT, bottom_y)], fill=MUTED, width=1)
    if series.until is not None:
        x = LEFT + (series.until.hour + series.until.minute / 60) * slot
        for y in range(TOP, bottom_y, 12):
            draw.line([(x, y), (x, min(y + 6, bottom_y))], fill=MARKER, width=2)
        draw.text((x + 4, TOP - 2), f"report {series.until:%H:%M}", font=tiny, fill=MARKER)
    if not any(series.current) and not any(series.previous):
        draw.text((LEFT + plot_w / 2 - 40, TOP + plot_h / 2 - 10), "No sales", font=small, fill=MUTED)
    if (note := chart_note(series)) is not None:  # the last line where one line goes, the others above it
        lines = note.split("\n")
        for n, line in enumerate(lines):
            draw.text((LEFT, HEIGHT - 28 - NOTE_LINE * (len(lines) - 1 - n)), line, font=tiny, fill=MUTED)
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=True)
    return out.getvalue()


def _legend(draw: ImageDraw.ImageDraw, series: HourlyRevenue, font: Font) -> None:
    """Two swatches under the title: the day and the same weekday a week earlier."""
    x = LEFT
    for colour, day in ((CURRENT, series.day), (PREVIOUS, series.previous_day)):
        label = f"{day:%a} {day.day} {day:%b %Y}"
        draw.rectangle([x, 62, x + 14, 76], fill=colour)
        draw.text((x + 22, 60), label, font=font, fill=INK)
        x += 22 + int(draw.textlength(label, font=font)) + 30
