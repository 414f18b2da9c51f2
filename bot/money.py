"""Money at the edge: integer minor units plus an ISO 4217 code, formatted once with Babel's CLDR data."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Final

from babel import Locale
from babel.numbers import format_currency, format_decimal

# The integers come from Stripe, so Stripe's minor unit decides the scale, not CLDR's display digits.
# They disagree for currencies such as ISK, HUF, IDR and COP: CLDR shows no decimals, yet Stripe counts
# them in hundredths ("ISK will remain a two-decimal currency in the Stripe API, an ISK amount of 100
# represents 1 króna"). Scaling by Babel's precision alone would show an IDR sale 100 times too large.
# https://docs.stripe.com/currencies#zero-decimal, #three-decimal and #special-cases
STRIPE_ZERO_DECIMAL: Final = frozenset(
    "BIF CLP DJF GNF JPY KMF KRW MGA PYG RWF UGX VND VUV XAF XOF XPF".split()
)
STRIPE_THREE_DECIMAL: Final = frozenset("BHD JOD KWD OMR TND".split())
NO_TOTAL: Final = "—"
# Parsed once: given a locale's name, Babel parses it again several times per amount (a quarter of the cost).
EN_US: Final = Locale.parse("en_US")


def minor_unit_exponent(currency: str) -> int:
    """How many decimal places one Stripe minor unit of `currency` sits below the major unit."""
    code = currency.strip().upper()
    if code in STRIPE_ZERO_DECIMAL:
        return 0
    if code in STRIPE_THREE_DECIMAL:
        return 3
    # Every other Stripe currency is two-decimal; unknown codes get 2 as well (Babel's own default).
    return 2


def format_money(amount_minor: int, currency: str, *, locale: str | Locale = EN_US) -> str:
    """Format an amount in minor units, e.g. (3000, "USD") → "$30.00" and (3000, "JPY") → "¥3,000"."""
    code = currency.strip().upper()
    value = Decimal(amount_minor).scaleb(-minor_unit_exponent(code))
    if len(code) != 3 or not code.isascii() or not code.isalpha():
        # Not an ISO code at all: Babel would glue it to the digits ("12" + "1.00" → "121.00").
        number = format_decimal(value, format="#,##0.00", locale=locale)
        return f"{number} {code or '???'}"
    # Babel shows at least CLDR's digits for the code (JPY 0, KWD 3, unknown codes 2). With
    # decimal_quantization off it never rounds away a real fraction either: Stripe can charge HUF 10.45
    # although CLDR displays forints whole, and the owner should see the money that moved.
    return format_currency(value, code, locale=locale, decimal_quantization=False)


def format_totals(totals: Mapping[str, int], *, locale: str | Locale = EN_US) -> str:
    """Join per-currency totals sorted by code, e.g. "€50.00 + $1,234.00"; never summed across currencies."""
    if not totals:
        return NO_TOTAL
    codes = sorted(totals, key=str.upper)
    return " + ".join(format_money(totals[code], code, locale=locale) for code in codes)
