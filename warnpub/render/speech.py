"""Text for the ear: numbers, times and units written out so a speech engine reads them right.

Chinese (:func:`speakable_zh`): ``20:00`` → 二十点整, ``7月1日`` → 七月一日, ``2026年`` → 二零二六年,
``50mm``/``50毫米`` → 五十毫米, ``12.5`` → 十二点五, ``-5℃`` → 零下五摄氏度, ``80%`` → 百分之八十,
``20-30毫米`` → 二十到三十毫米, ``2小时`` → 两小时, level numerals Ⅲ级 → 三级, and hotlines and
other long digit strings one digit at a time (``12379`` → 幺二三七九). English
(:func:`speakable_en`) only spells out units and symbols; speech engines read English numbers.
"""

from __future__ import annotations

import re

_DIGITS = "零一二三四五六七八九"
_PHONE_DIGITS = "零幺二三四五六七八九"
_SMALL_UNITS = ("", "十", "百", "千")
_ROMAN = {"Ⅰ": "一", "Ⅱ": "二", "Ⅲ": "三", "Ⅳ": "四"}
_HOTLINES = frozenset({"110", "119", "120", "122"})
# A number directly followed by one of these is a quantity, never a phone number.
_MEASURE = "毫厘米公千里度级小时分秒天日月年周个人户家元万亿座间处条名辆次只头亩方吨倍%％℃°"
_TWO_AS_LIANG = ("小时", "个", "天", "名", "次", "周", "倍")
_ZH_UNITS = {
    "km/h": "公里每小时",
    "m/s": "米每秒",
    "mm": "毫米",
    "cm": "厘米",
    "km": "公里",
    "m": "米",
    "hPa": "百帕",
    "℃": "摄氏度",
    "°C": "摄氏度",
}

_RANGE = re.compile(r"(?<!\d)((?!0\d)\d+(?:\.\d+)?)\s*[-~～—–]\s*(?=\d)")
_TOKEN = re.compile(
    r"(?P<year>(?<!\d)\d{4})(?=年)"
    r"|(?<!\d)(?P<hh>\d{1,2})[:：](?P<mm>[0-5]\d)(?!\d)"
    r"|(?P<neg>(?<![0-9A-Za-z.])[-−])?(?P<num>\d+(?:\.\d+)?)\s*"
    r"(?P<unit>km/h|m/s|mm|cm|km|hPa|℃|°C|m(?![A-Za-z])|%|％)?"
)
_EN_UNITS = (
    (re.compile(r"(?<=\d)\s*km/h\b"), " kilometres per hour"),
    (re.compile(r"(?<=\d)\s*m/s\b"), " metres per second"),
    (re.compile(r"(?<=\d)\s*mm\b"), " millimetres"),
    (re.compile(r"(?<=\d)\s*cm\b"), " centimetres"),
    (re.compile(r"(?<=\d)\s*km\b"), " kilometres"),
    (re.compile(r"(?<=\d)\s*(?:℃|°C)"), " degrees Celsius"),
    (re.compile(r"(?<=\d)\s*[%％]"), " percent"),
)


def _under_10k(n: int) -> str:
    out, zero = "", False
    for power in (3, 2, 1, 0):
        digit = n // 10**power % 10
        if digit == 0:
            zero = bool(out)
            continue
        if zero:
            out += "零"
            zero = False
        out += _DIGITS[digit] + _SMALL_UNITS[power]
    return out


def integer_zh(n: int) -> str:
    """A whole number in Chinese numerals: 10 → 十, 105 → 一百零五, 100005 → 十万零五."""
    if n < 0:
        return "负" + integer_zh(-n)
    if n == 0:
        return "零"
    if n >= 10**12:
        return digits_zh(str(n))
    out, gap = "", False
    for group, name in ((n // 10**8, "亿"), (n // 10**4 % 10**4, "万"), (n % 10**4, "")):
        if group == 0:
            gap = gap or bool(out)
            continue
        if out and (gap or group < 1000):
            out += "零"
        out += _under_10k(group) + name
        gap = False
    return out[1:] if out.startswith("一十") else out


def digits_zh(text: str, *, phone: bool = False) -> str:
    """Digits one by one (二零二六); phone numbers say 幺 for 1, as Chinese speakers do."""
    table = _PHONE_DIGITS if phone else _DIGITS
    return "".join(table[int(ch)] if ch.isdigit() else "" for ch in text)


def number_zh(text: str) -> str:
    """A decimal number as said aloud: 12.5 → 十二点五, 0.25 → 零点二五."""
    whole, _, fraction = text.partition(".")
    out = integer_zh(int(whole))
    return out + ("点" + digits_zh(fraction) if fraction else "")


def _spoken_zh(match: re.Match[str]) -> str:
    if match.group("year"):
        return digits_zh(match.group("year"))
    if match.group("hh"):
        hour, minute = int(match.group("hh")), int(match.group("mm"))
        said_hour = "两" if hour == 2 else integer_zh(hour)
        if minute == 0:
            return f"{said_hour}点整"
        return f"{said_hour}点{'零' if minute < 10 else ''}{integer_zh(minute)}分"
    number, unit, negative = match.group("num"), match.group("unit"), bool(match.group("neg"))
    after = match.string[match.end() :]
    quantity = bool(unit) or (after != "" and after[0] in _MEASURE)
    phone_like = len(number) >= 5 or number in _HOTLINES or number.startswith("0")
    if not quantity and "." not in number and len(number) > 1 and phone_like:
        return ("负" if negative else "") + digits_zh(number, phone=True)
    if number == "2" and not unit and not negative and after.startswith(_TWO_AS_LIANG):
        return "两"
    said = number_zh(number)
    if unit in ("%", "％"):
        return ("负" if negative else "") + "百分之" + said
    if negative:
        said = ("零下" if unit in ("℃", "°C") or after.startswith(("℃", "度")) else "负") + said
    return said + (_ZH_UNITS[unit] if unit else "")


def speakable_zh(text: str) -> str:
    """``text`` with every number, time and unit written as Chinese words."""
    text = _RANGE.sub(r"\1到", text)
    text = "".join(_ROMAN.get(ch, ch) for ch in text)
    return _TOKEN.sub(_spoken_zh, text)


def speakable_en(text: str) -> str:
    """``text`` with units and symbols spelt out for an English speech engine."""
    for pattern, words in _EN_UNITS:
        text = pattern.sub(words, text)
    return text


def speakable(text: str, language: str) -> str:
    """Text for the ear in ``language`` (Chinese fully; others get units spelt out)."""
    return speakable_zh(text) if language.lower().startswith("zh") else speakable_en(text)
