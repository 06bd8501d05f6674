"""Numbers as clerks write them: "180.97万元", "1,663,900.00元", "99.32%", "１２３．４".

Everything is parsed to ``Decimal`` from the text the user typed, never through float,
so that "2023.10" stays 2023.10 and "0.1" is exactly one tenth.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

# Marks a form prints in a number cell that does not apply ("无", "不适用", "/", "—").
NOT_APPLICABLE_MARKS = ("无", "不适用", "/", "／", "—", "-", "——", "N/A", "n/a")

MONEY_UNITS = {"元": Decimal(1), "万元": Decimal(10000)}

_NUMBER = re.compile(r"^[+-]?(\d+(,\d{3})*|\d*)(\.\d+)?$")
_MAX_DIGITS = 18  # above a quadrillion 元 nobody means it; stops "1e999999" games


class ValueParseError(ValueError):
    """A value that is not the kind of number its field needs; the message is Chinese."""


def normalize_text(text: str) -> str:
    """Full-width digits, letters and punctuation to their ASCII forms; spaces trimmed."""
    return unicodedata.normalize("NFKC", text).strip()


_NOT_APPLICABLE = frozenset(normalize_text(m) for m in NOT_APPLICABLE_MARKS)  # built once: asked per number cell


def is_not_applicable(text: str) -> bool:
    return normalize_text(text) in _NOT_APPLICABLE


def parse_decimal(text: str, what: str = "数字") -> Decimal:
    """A plain number: "1,663,900.00", "１２３．４", "-3". Rejects NaN, infinity, exponents."""
    cleaned = normalize_text(text).replace(" ", "").replace("，", ",")
    if not cleaned or not _NUMBER.match(cleaned) or cleaned in {"+", "-", "."}:
        raise ValueParseError(f"「{text}」不是有效的{what}")
    try:
        value = Decimal(cleaned.replace(",", ""))
    except InvalidOperation as exc:  # pragma: no cover - the regex already guards this
        raise ValueParseError(f"「{text}」不是有效的{what}") from exc
    if value.adjusted() >= _MAX_DIGITS:
        raise ValueParseError(f"「{text}」数值过大，请检查")
    return value


@dataclass(frozen=True)
class Money:
    """An amount as written: its value and the unit the user gave (None: the form's unit)."""

    value: Decimal
    unit: str | None
    text: str

    def in_yuan(self, default_unit: str) -> Decimal:
        return self.value * MONEY_UNITS[self.unit or default_unit]

    def __str__(self) -> str:
        return self.text


def parse_money(raw: object) -> Money:
    text = str(raw)
    cleaned = normalize_text(text).replace(" ", "")
    unit = None
    for suffix in ("万元", "元"):  # 万元 first: "元" is its tail
        if cleaned.endswith(suffix):
            unit, cleaned = suffix, cleaned[: -len(suffix)]
            break
    try:
        value = parse_decimal(cleaned, "金额")
    except ValueParseError as exc:
        raise ValueParseError(str(exc).replace(f"「{cleaned}」", f"「{text.strip()}」")) from exc
    if value < 0:
        raise ValueParseError(f"金额不能为负数：「{text}」")
    return Money(value=value, unit=unit, text=text.strip())


@dataclass(frozen=True)
class Percent:
    """A rate as written ("100.0%" prints as the clerk wrote it) and its value in percent."""

    value: Decimal
    text: str

    def __str__(self) -> str:
        return self.text


def _non_negative(raw: object, unit: str, what: str) -> tuple[str, Decimal]:
    """The text as written and its value, with an optional unit ("%", "分") after the number."""
    text = str(raw)
    value = parse_decimal(normalize_text(text).replace(" ", "").removesuffix(unit), what)
    if value < 0:
        raise ValueParseError(f"{what}不能为负数：「{text}」")
    return text.strip(), value


def parse_rate(raw: object) -> Percent:
    """A percentage: "99.32%" or 99.32 (numbers are read as percent, not as fractions)."""
    text, value = _non_negative(raw, "%", "百分比")
    if value > 1000:
        raise ValueParseError(f"百分比「{text}」超过 1000%，请检查")
    return Percent(value=value, text=text)


def parse_points(raw: object) -> Decimal:
    """A weight or a score (分值, 得分): a non-negative number, "分" allowed."""
    return _non_negative(raw, "分", "分数")[1]


def round_half_up(value: Decimal, decimals: int) -> Decimal:
    return value.quantize(Decimal(1).scaleb(-decimals), rounding=ROUND_HALF_UP)


def format_decimal(value: Decimal, decimals: int | None, trim_zeros: bool = False) -> str:
    """"1663900.00" (decimals=2), "99.32"/"100" (trim_zeros), "207.6892" (decimals=None)."""
    if decimals is None:
        text = format(value.normalize(), "f")
    else:
        text = format(round_half_up(value, decimals), "f")
        if trim_zeros and "." in text:
            text = text.rstrip("0").rstrip(".")
    return "0" if text in {"-0", ""} else text
