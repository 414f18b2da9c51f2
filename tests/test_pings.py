"""The live pings: layout from the guide, masking, store time zone, burst summaries, escaping and limits."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.blocks.message import MAX_FALLBACK_TEXT, MAX_FIELD_TEXT, Message
from bot.blocks.pings import (
    BurstView,
    DisputeView,
    FailureView,
    RefundView,
    SaleView,
    burst_message,
    dispute_message,
    failure_message,
    mask_email,
    refund_message,
    sale_message,
)
from bot.blocks.text import escape_mrkdwn
from tests.blockkit import assert_valid_message

NEW_YORK = ZoneInfo("America/New_York")
AT = datetime(2026, 11, 28, 19, 5, tzinfo=UTC)  # Sat 28 Nov 14:05 EST
SALE = SaleView(
    order_id="cs_test_000",
    product="Pro Course",
    amount=3000,
    currency="usd",
    customer_email="stripe@example.com",
    affiliate=None,
    occurred_at=AT,
)


def mrkdwn_texts(msg: Message) -> Iterator[str]:
    """Every mrkdwn string in the message's blocks, however deeply nested."""

    def walk(node: Any) -> Iterator[str]:
        if isinstance(node, dict):
            if node.get("type") == "mrkdwn":
                yield node["text"]
            for value in node.values():
                yield from walk(value)
        elif isinstance(node, list):
            for item in node:
                yield from walk(item)

    return walk(msg.blocks)


def blocks_of(msg: Message, kind: str) -> list[dict[str, Any]]:
    """The message's blocks of one type, in order."""
    return [b for b in msg.blocks if b["type"] == kind]


def header(msg: Message) -> str:
    """The text of the message's header block."""
    return str(blocks_of(msg, "header")[0]["text"]["text"])


def field_texts(msg: Message) -> list[str]:
    """The texts of the first fields section."""
    return [f["text"] for f in next(b for b in msg.blocks if "fields" in b)["fields"]]


def context_text(msg: Message) -> str:
    """All context elements joined, to search in."""
    return " ".join(e["text"] for b in blocks_of(msg, "context") for e in b["elements"])


def burst(n: int, *, span: timedelta = timedelta(seconds=40)) -> BurstView:
    """A burst of `n` $30 sales spread over `span`."""
    sales = [replace(SALE, order_id=f"cs_{i}") for i in range(n)]
    return BurstView(count=n, totals={"USD": 3000 * n}, first_at=AT, last_at=AT + span, sales=sales)


@pytest.mark.parametrize(
    ("email", "masked"),
    [
        ("stripe@example.com", "str***"),
        ("ab@example.com", "ab***"),
        ("no-at-sign", "no-***"),
        (None, "unknown"),
        ("", "unknown"),
        ("  ", "unknown"),
    ],
)
def test_mask_email_keeps_three_characters_and_never_the_domain(email: str | None, masked: str) -> None:
    """Only the start of the local part shows; a missing address reads "unknown"."""
    assert mask_email(email) == masked


def test_escape_mrkdwn_neutralises_slack_control_characters() -> None:
    """&, < and > become entities, ampersand first so entities are not doubled."""
    assert escape_mrkdwn("<!channel> & <@U1>") == "&lt;!channel&gt; &amp; &lt;@U1&gt;"


def test_sale_ping_has_the_guide_layout() -> None:
    """Header, the four fields Product/Amount/Order ID/Customer, then the time context."""
    msg = sale_message(SALE, tz=NEW_YORK)
    assert_valid_message(msg)
    assert header(msg) == "💰 New Sale!"
    assert field_texts(msg) == [
        "*Product:*\nPro Course",
        "*Amount:*\n$30.00",
        "*Order ID:*\ncs_test_000",
        "*Customer:*\nstr***",
    ]
    assert [b["type"] for b in msg.blocks] == ["header", "section", "context"]
    assert msg.text == "💰 New Sale: $30.00 — Pro Course"


def test_sale_ping_shows_affiliate_line_only_when_given() -> None:
    """An affiliate adds one section; none (or blank) adds nothing."""
    with_affiliate = sale_message(replace(SALE, affiliate="partner42"), tz=NEW_YORK)
    assert_valid_message(with_affiliate)
    assert "🎯 *Affiliate:* partner42" in list(mrkdwn_texts(with_affiliate))
    for absent in (None, " "):
        msg = sale_message(replace(SALE, affiliate=absent), tz=NEW_YORK)
        assert not any("Affiliate" in t for t in mrkdwn_texts(msg))


def test_sale_time_is_shown_in_the_store_zone() -> None:
    """19:05 UTC in November reads as 14:05 EST in New York."""
    assert context_text(sale_message(SALE, tz=NEW_YORK)) == "⏰ Sat 28 Nov 14:05 EST"


def test_sale_time_follows_dst_change_in_the_store_zone() -> None:
    """Either side of the March 2026 DST jump, New York shows EST then EDT."""
    before = replace(SALE, occurred_at=datetime(2026, 3, 8, 6, 30, tzinfo=UTC))
    after = replace(SALE, occurred_at=datetime(2026, 3, 8, 7, 30, tzinfo=UTC))
    assert context_text(sale_message(before, tz=NEW_YORK)) == "⏰ Sun 8 Mar 01:30 EST"
    assert context_text(sale_message(after, tz=NEW_YORK)) == "⏰ Sun 8 Mar 03:30 EDT"


def test_late_sale_says_it_was_delivered_late() -> None:
    """A sale delivered after a delay carries a marker in the context line."""
    msg = sale_message(replace(SALE, late=True), tz=NEW_YORK)
    assert context_text(msg) == "⏰ Sat 28 Nov 14:05 EST · delivered late"


def test_sale_without_product_or_email_still_renders() -> None:
    """Missing product reads "Unknown" and a missing customer "unknown"; the text drops the product."""
    msg = sale_message(replace(SALE, product=None, customer_email=None), tz=NEW_YORK)
    assert_valid_message(msg)
    assert field_texts(msg)[0] == "*Product:*\nUnknown"
    assert field_texts(msg)[3] == "*Customer:*\nunknown"
    assert msg.text == "💰 New Sale: $30.00"


def test_naive_datetime_is_refused() -> None:
    """A time without a zone is a bug upstream, so rendering fails loudly instead of guessing."""
    with pytest.raises(ValueError, match="naive"):
        sale_message(replace(SALE, occurred_at=datetime(2026, 11, 28, 19, 5)), tz=NEW_YORK)


def test_sale_amount_uses_the_currency_exponent() -> None:
    """A JPY sale shows whole yen and a KWD sale three decimals."""
    assert (
        field_texts(sale_message(replace(SALE, amount=3000, currency="jpy"), tz=NEW_YORK))[1]
        == "*Amount:*\n¥3,000"
    )
    assert sale_message(replace(SALE, amount=12345, currency="kwd"), tz=NEW_YORK).text.startswith(
        "💰 New Sale: KWD12.345"
    )


def test_failure_ping_has_the_guide_layout() -> None:
    """Header, Product/Amount/Reason/Customer fields and the check-Stripe context."""
    f = FailureView("Pro Course", 3000, "usd", "stripe@example.com", "Your card was declined.", AT)
    msg = failure_message(f, tz=NEW_YORK)
    assert_valid_message(msg)
    assert header(msg) == "❌ Payment Failed"
    assert field_texts(msg) == [
        "*Product:*\nPro Course",
        "*Amount:*\n$30.00",
        "*Reason:*\nYour card was declined.",
        "*Customer:*\nstr***",
    ]
    assert "⚠️ Action may be needed - check Stripe dashboard" in context_text(msg)
    assert msg.text == "❌ Payment Failed: $30.00 — Your card was declined."


def test_failure_without_reason_or_amount_says_unknown() -> None:
    """Stripe may omit the reason and the amount; both read "Unknown"."""
    msg = failure_message(FailureView(None, None, None, None, None, AT), tz=NEW_YORK)
    assert_valid_message(msg)
    assert field_texts(msg)[1:3] == ["*Amount:*\nUnknown", "*Reason:*\nUnknown"]
    assert msg.text == "❌ Payment Failed: Unknown — Unknown"


def test_full_refund_ping() -> None:
    """A full refund is headed "Refund" and names the amount, product, order and masked customer."""
    r = RefundView("cs_test_000", 3000, 3000, "usd", "stripe@example.com", True, AT, product="Ebook")
    msg = refund_message(r, tz=NEW_YORK)
    assert_valid_message(msg)
    assert header(msg) == "↩️ Refund"
    assert field_texts(msg) == [
        "*Refunded:*\n$30.00",
        "*Of total:*\n$30.00",
        "*Product:*\nEbook",
        "*Order ID:*\ncs_test_000",
        "*Customer:*\nstr***",
    ]
    assert msg.text == "↩️ Refund: $30.00 — order cs_test_000"


def test_partial_refund_ping_shows_part_of_total() -> None:
    """A partial refund is headed "Partial refund" and shows what part of the total went back."""
    r = RefundView("cs_test_000", 1000, 3000, "usd", None, False, AT)
    msg = refund_message(r, tz=NEW_YORK)
    assert_valid_message(msg)
    assert header(msg) == "↩️ Partial refund"
    assert msg.text == "↩️ Partial refund: $10.00 of $30.00 — order cs_test_000"


def test_dispute_ping_tells_the_owner_to_respond_in_stripe() -> None:
    """Amount, readable reason, product, masked customer and both ids, with a reminder of the deadline."""
    d = DisputeView("dp_000", "ch_000", 3000, "usd", "product_not_received", AT, product="Ebook",
                    customer_email="ada@example.com")
    msg = dispute_message(d, tz=NEW_YORK)
    assert_valid_message(msg)
    assert header(msg) == "⚠️ Dispute opened"
    assert field_texts(msg) == [
        "*Amount:*\n$30.00",
        "*Reason:*\nproduct not received",
        "*Product:*\nEbook",
        "*Customer:*\nada***",
        "*Dispute ID:*\ndp_000",
        "*Charge:*\nch_000",
    ]
    assert "Stripe dashboard" in context_text(msg) and "deadline" in context_text(msg)
    assert msg.text == "⚠️ Dispute opened: $30.00 — product not received"


def test_burst_text_counts_sales_and_shows_total() -> None:
    """25 sales within a minute: the notification says how many and how much."""
    msg = burst_message(burst(25), tz=NEW_YORK)
    assert_valid_message(msg)
    assert "25 new sales" in msg.text
    assert msg.text == "🔥 25 new sales in the last minute — $750.00"
    assert header(msg) == "🔥 25 new sales"


def test_burst_longer_than_a_minute_says_since_when() -> None:
    """A burst spanning more than a minute names its start time in the store zone."""
    msg = burst_message(burst(25, span=timedelta(minutes=7)), tz=NEW_YORK)
    assert msg.text == "🔥 25 new sales since 14:05 — $750.00"
    assert context_text(msg) == "⏰ Sat 28 Nov 14:05 EST – Sat 28 Nov 14:12 EST"


def test_burst_totals_stay_per_currency() -> None:
    """Dollars and euros are listed side by side, never added."""
    b = replace(burst(3), totals={"USD": 6000, "EUR": 5000})
    msg = burst_message(b, tz=NEW_YORK)
    assert_valid_message(msg)
    assert msg.text.endswith("— €50.00 + $60.00")
    assert "*Total:* €50.00 + $60.00" in list(mrkdwn_texts(msg))


def test_burst_of_200_lists_ten_and_counts_the_rest() -> None:
    """200 sales stay within the block limit: ten lines, then "…and 190 more"."""
    msg = burst_message(burst(200), tz=NEW_YORK)
    assert_valid_message(msg)
    assert len(msg.blocks) <= 50
    listing = next(t for t in mrkdwn_texts(msg) if t.startswith("• "))
    lines = listing.split("\n")
    assert lines[:10] == ["• $30.00 · Pro Course · str***"] * 10
    assert lines[10:] == ["…and 190 more"]


def test_a_burst_line_names_the_affiliate_as_the_sale_ping_does() -> None:
    """An affiliate's sale in a burst keeps its 🎯 (commissions are paid on them), from the record the intake kept
    through to the line; sales without one show none."""
    from bot.blocks.pings import sale_record
    from bot.delivery.posts import burst_post
    from queries.bursts import BurstSummary, ListedSale

    sales = [replace(SALE, order_id="cs_1", affiliate="partner_42"), replace(SALE, order_id="cs_2")]
    listed = tuple(ListedSale(i, s.amount, s.currency, s.occurred_at, sale_record(s)) for i, s in enumerate(sales))
    summary = BurstSummary(ref=0, count=2, totals={"USD": 6000}, first_at=AT, last_at=AT, listed=listed)
    blocks: Any = burst_post(summary, tz=NEW_YORK).payload["blocks"]
    listing = next(b["text"]["text"] for b in blocks if b.get("text", {}).get("text", "").startswith("• "))
    assert listing.split("\n") == ["• $30.00 · Pro Course · str*** · 🎯 partner_42", "• $30.00 · Pro Course · str***"]


def test_burst_of_few_sales_lists_all_without_more_line() -> None:
    """Ten or fewer sales are all listed and nothing says "more"."""
    msg = burst_message(burst(3), tz=NEW_YORK)
    assert not any("more" in t for t in mrkdwn_texts(msg))


def test_product_named_channel_mention_cannot_ping_everyone() -> None:
    """`<!channel>` in a product or email is escaped everywhere mrkdwn is parsed, text included."""
    hostile = replace(
        SALE, product="<!channel> & co", customer_email="<!here>@x.com", affiliate="<!everyone>"
    )
    builds = [
        sale_message(hostile, tz=NEW_YORK),
        burst_message(replace(burst(1), sales=[hostile]), tz=NEW_YORK),
    ]
    for msg in builds:
        assert_valid_message(msg)
        for text in [msg.text, *mrkdwn_texts(msg)]:
            assert "<!" not in text
    assert "*Product:*\n&lt;!channel&gt; &amp; co" in field_texts(builds[0])


def test_huge_product_name_is_truncated_within_limits() -> None:
    """A 10,000-character product name is cut with an ellipsis and every limit still holds."""
    msg = sale_message(replace(SALE, product="x" * 10_000), tz=NEW_YORK)
    assert_valid_message(msg)
    product = field_texts(msg)[0]
    assert len(product) <= MAX_FIELD_TEXT and product.endswith("…")
    assert len(msg.text) <= MAX_FALLBACK_TEXT and msg.text.endswith("…")


def test_burst_of_huge_escaped_names_stays_within_section_limit() -> None:
    """Ten 10,000-ampersand product names (5× longer once escaped) still fit the listing section."""
    sales = [replace(SALE, product="&" * 10_000)] * 200
    msg = burst_message(replace(burst(200), sales=sales), tz=NEW_YORK)
    assert_valid_message(msg)
    assert any(t.endswith("\n…and 190 more") for t in mrkdwn_texts(msg))


@given(st.text(max_size=400), st.text(max_size=40), st.text(max_size=40))
def test_any_user_text_yields_a_valid_sale_ping_without_raw_angle_brackets(
    product: str, email: str, affiliate: str
) -> None:
    """Whatever a buyer or product owner types, the ping validates and carries no raw < or >."""
    msg = sale_message(replace(SALE, product=product, customer_email=email, affiliate=affiliate), tz=NEW_YORK)
    assert_valid_message(msg)
    for text in [msg.text, *mrkdwn_texts(msg)]:
        assert "<" not in text and ">" not in text


def test_validator_rejects_header_with_mrkdwn_text() -> None:
    """A header must be plain_text; the helper catches the mistake, so it can fail at all."""
    bad = {"text": "x", "blocks": [{"type": "header", "text": {"type": "mrkdwn", "text": "*hi*"}}]}
    with pytest.raises(AssertionError, match="invalid Block Kit"):
        assert_valid_message(bad)


def test_validator_rejects_too_many_blocks_and_missing_text() -> None:
    """More than 50 blocks, or a blank fallback text, fail the helper."""
    divider = {"type": "divider"}
    with pytest.raises(AssertionError, match="51 blocks"):
        assert_valid_message({"text": "x", "blocks": [divider] * 51})
    with pytest.raises(AssertionError, match="text fallback"):
        assert_valid_message(Message(text=" ", blocks=[divider]))
