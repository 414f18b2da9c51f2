"""Formatting integer minor units with Babel: zero-, two- and three-decimal currencies and mixed totals."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.money import NO_TOTAL, format_money, format_totals, minor_unit_exponent


@pytest.mark.parametrize(
    ("amount", "currency", "expected"),
    [
        (3000, "USD", "$30.00"),
        (3000, "JPY", "¥3,000"),
        (12345, "KWD", "KWD12.345"),
        (150, "EUR", "€1.50"),
        (0, "USD", "$0.00"),
        (-500, "USD", "-$5.00"),
        (123456789, "USD", "$1,234,567.89"),
    ],
)
def test_formats_each_currency_with_its_own_decimals(amount: int, currency: str, expected: str) -> None:
    """USD and EUR show cents, JPY none and KWD three decimals, with grouping and sign."""
    assert format_money(amount, currency) == expected


def test_accepts_stripe_lower_case_codes() -> None:
    """Stripe sends "usd"; it formats the same as "USD"."""
    assert format_money(3000, "usd") == "$30.00"


def test_follows_the_requested_locale() -> None:
    """The locale decides symbol placement and separators, not the amount."""
    assert format_money(123456, "EUR", locale="de_DE") == "1.234,56\xa0€"


@pytest.mark.parametrize(
    ("amount", "currency", "expected"),
    [(500000, "ISK", "ISK5,000"), (1500000, "IDR", "IDR15,000"), (1045, "HUF", "HUF10.45")],
)
def test_scales_by_stripe_minor_units_where_cldr_shows_fewer_decimals(
    amount: int, currency: str, expected: str
) -> None:
    """ISK, IDR and HUF count hundredths in Stripe although CLDR shows them whole; no 100× error."""
    assert format_money(amount, currency) == expected


def test_exponents_match_stripe_currency_classes() -> None:
    """JPY is zero-decimal, KWD three-decimal, USD and unknown codes two-decimal."""
    assert [minor_unit_exponent(c) for c in ("JPY", "kwd", "USD", "XYZ")] == [0, 3, 2, 2]


def test_unknown_currency_falls_back_to_two_decimals_and_the_code() -> None:
    """An unrecognised ISO-shaped code still renders, with cents and the code."""
    assert format_money(1234, "XYZ") == "XYZ12.34"


@pytest.mark.parametrize(
    ("currency", "expected"), [("", "12.34 ???"), ("12", "12.34 12"), ("US D", "12.34 US D")]
)
def test_malformed_currency_code_never_glues_to_the_digits(currency: str, expected: str) -> None:
    """A code that is not three letters is shown apart from the number instead of crashing or merging."""
    assert format_money(1234, currency) == expected


def test_totals_are_listed_per_currency_sorted_by_code() -> None:
    """Different currencies are joined with "+", never added together."""
    assert format_totals({"USD": 123400, "EUR": 5000, "JPY": 700}) == "€50.00 + ¥700 + $1,234.00"


def test_single_currency_total_is_just_the_amount() -> None:
    """One currency renders as a plain amount."""
    assert format_totals({"USD": 123400}) == "$1,234.00"


def test_empty_totals_render_as_a_dash() -> None:
    """No sales means no currency to show zero in, so the total is a dash."""
    assert format_totals({}) == NO_TOTAL == "—"


@given(st.integers(min_value=-(10**15), max_value=10**15))
def test_usd_formatting_keeps_every_cent(amount: int) -> None:
    """The digits shown for any USD amount are exactly its cents: no float rounding anywhere."""
    shown = format_money(amount, "USD")
    assert int(re.sub(r"[^0-9]", "", shown)) == abs(amount)
    assert shown.startswith("-") == (amount < 0)


@given(st.integers(min_value=-(10**12), max_value=10**12), st.text(max_size=6))
def test_any_currency_string_formats_without_raising(amount: int, currency: str) -> None:
    """Whatever Stripe or a test sends as a currency, formatting returns text instead of crashing."""
    assert format_money(amount, currency)
