"""Text normalisation before G2P: spell out numbers, expand abbreviations.

Two normalisers, one per language run of the tokenizer:

- :class:`EnglishNormalizer` expands common abbreviations (``Dr`` -> ``doctor``) and writes
  numbers as words (money, fractions, decimals, percentages, ordinals, years), the recipe of the
  tacotron/espnet English cleaners that ZipVoice uses. Number words follow the ``inflect``
  package's spelling (``one thousand, two hundred thirty-four``; years ``nineteen oh five``) so
  that the phoneme sequences match ZipVoice's exactly; the commas ``inflect`` writes between
  thousands groups are kept on purpose (they become pause tokens upstream too).
- :class:`ChineseNormalizer` rewrites Arabic numerals as Chinese numerals the way ``cn2an``'s
  ``transform(text, "an2cn")`` does (years digit by digit, ``90%`` -> ``百分之九十``, ``3/4``
  -> ``四分之三``, ``5-10个`` -> ``五到十个``, ``30℃`` -> ``三十摄氏度``).

Both are pure Python with no third-party dependency.

>>> EnglishNormalizer().normalize("Dr. Smith paid $5")
'doctor. Smith paid   five  dollars '
>>> ChineseNormalizer().normalize("2024年3月有90%的人")
'二零二四年三月有百分之九十的人'
"""

from __future__ import annotations

import re

# --------------------------------------------------------------------------- English

_ONES = [
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
]
_TENS = ("", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety")
_SCALES = (
    "",
    "thousand",
    "million",
    "billion",
    "trillion",
    "quadrillion",
    "quintillion",
    "sextillion",
    "septillion",
    "octillion",
    "nonillion",
    "decillion",
)
_IRREGULAR_ORDINALS = {
    "one": "first",
    "two": "second",
    "three": "third",
    "five": "fifth",
    "eight": "eighth",
    "nine": "ninth",
    "twelve": "twelfth",
}
_ABBREVIATIONS = (
    ("mrs", "misess"),
    ("mr", "mister"),
    ("dr", "doctor"),
    ("st", "saint"),
    ("co", "company"),
    ("jr", "junior"),
    ("maj", "major"),
    ("gen", "general"),
    ("drs", "doctors"),
    ("rev", "reverend"),
    ("lt", "lieutenant"),
    ("hon", "honorable"),
    ("sgt", "sergeant"),
    ("capt", "captain"),
    ("esq", "esquire"),
    ("ltd", "limited"),
    ("col", "colonel"),
    ("ft", "fort"),
    ("etc", "et cetera"),
    ("btw", "by the way"),
)


def _two_digit_words(n: int) -> str:
    """0 <= n < 100 as words (``forty-two``)."""
    if n < 20:
        return _ONES[n]
    tens, ones = divmod(n, 10)
    return _TENS[tens] + ("-" + _ONES[ones] if ones else "")


def _three_digit_words(n: int, andword: str) -> str:
    """0 < n < 1000 as words (``one hundred and one`` with ``andword="and"``)."""
    hundreds, rest = divmod(n, 100)
    if not hundreds:
        return _two_digit_words(rest)
    words = _ONES[hundreds] + " hundred"
    if rest:
        words += (" " + andword if andword else "") + " " + _two_digit_words(rest)
    return words


def cardinal_words(n: int, andword: str = "and") -> str:
    """A non-negative integer in English words, spelled like ``inflect.number_to_words``.

    Thousands groups are separated by ``", "``, except that a last group below one hundred is
    joined by ``andword`` (``one thousand and one``; with ``andword=""``: ``one thousand one``).

    Args:
        n: the number (0 <= n < 10**36).
        andword: the word joining hundreds and tens (``"and"`` or ``""``).

    Returns:
        The words.
    """
    if n < 0:
        raise ValueError(f"negative number: {n}")
    if n == 0:
        return "zero"
    groups = []
    scale = 0
    while n:
        n, group = divmod(n, 1000)
        if scale >= len(_SCALES):
            raise ValueError("number too large to spell")
        groups.append((group, scale))
        scale += 1
    groups = [(g, s) for g, s in reversed(groups) if g]
    words = ""
    for i, (group, scale) in enumerate(groups):
        chunk = _three_digit_words(group, andword) + (" " + _SCALES[scale] if scale else "")
        if i == 0:
            words = chunk
        elif scale == 0 and group < 100:
            words += (" " + andword if andword else "") + " " + chunk
        else:
            words += ", " + chunk
    return words


def ordinal_of_words(words: str) -> str:
    """Turn the last word of a cardinal into an ordinal (``twenty-four`` -> ``twenty-fourth``)."""
    match = re.search(r"([a-z]+)$", words)
    if match is None:
        return words
    last = match.group(1)
    if last in _IRREGULAR_ORDINALS:
        new = _IRREGULAR_ORDINALS[last]
    elif last.endswith("y"):
        new = last[:-1] + "ieth"
    else:
        new = last + "th"
    return words[: match.start(1)] + new


def year_words(n: int) -> str:
    """A year in 1001..2999 read in pairs of digits (``1905`` -> ``nineteen oh five``).

    Multiples of a hundred and 2000..2009 are handled by the caller (``nineteen hundred``,
    ``two thousand five``); this is the pair reading only.
    """
    high, low = divmod(n, 100)
    low_words = "oh " + _ONES[low] if low < 10 else _two_digit_words(low)
    return _two_digit_words(high) + " " + low_words


class EnglishNormalizer:
    """Expand abbreviations and spell out numbers in English text (ZipVoice's recipe)."""

    def __init__(self) -> None:
        self._abbreviations = [
            (re.compile(rf"\b{short}\b", re.IGNORECASE), long) for short, long in _ABBREVIATIONS
        ]
        self._comma_number = re.compile(r"([0-9][0-9,]+[0-9])")
        self._decimal_number = re.compile(r"([0-9]+\.[0-9]+)")
        self._percent = re.compile(r"([0-9.,]*[0-9]+%)")
        self._pounds = re.compile(r"£([0-9,]*[0-9]+)")
        self._dollars = re.compile(r"\$([0-9.,]*[0-9]+)")
        self._fraction = re.compile(r"([0-9]+)/([0-9]+)")
        self._ordinal = re.compile(r"([0-9]+)(st|nd|rd|th)")
        self._number = re.compile(r"[0-9]+")

    def normalize(self, text: str) -> str:
        """Return ``text`` with abbreviations expanded and numbers written as words."""
        for pattern, replacement in self._abbreviations:
            text = pattern.sub(replacement, text)
        return self.spell_numbers(text)

    def spell_numbers(self, text: str) -> str:
        """Write the numbers of ``text`` as words, in ZipVoice's order of rules."""
        text = self._comma_number.sub(lambda m: m.group(1).replace(",", ""), text)
        text = self._pounds.sub(r"\1 pounds", text)
        text = self._dollars.sub(self._dollars_words, text)
        text = self._fraction.sub(self._fraction_words, text)
        text = self._decimal_number.sub(lambda m: m.group(1).replace(".", " point "), text)
        text = self._percent.sub(lambda m: m.group(1).replace("%", " percent "), text)
        text = self._ordinal.sub(
            lambda m: " " + ordinal_of_words(cardinal_words(int(m.group(1)))) + " ", text
        )
        return self._number.sub(lambda m: self._number_words(int(m.group(0))), text)

    @staticmethod
    def _dollars_words(match: re.Match) -> str:
        amount = match.group(1)
        parts = amount.split(".")
        if len(parts) > 2:
            return f" {amount} dollars "
        dollars = int(parts[0]) if parts[0] else 0
        cents = int(parts[1]) if len(parts) > 1 and parts[1] else 0
        dollar_unit = "dollar" if dollars == 1 else "dollars"
        cent_unit = "cent" if cents == 1 else "cents"
        if dollars and cents:
            return f" {dollars} {dollar_unit}, {cents} {cent_unit} "
        if dollars:
            return f" {dollars} {dollar_unit} "
        if cents:
            return f" {cents} {cent_unit} "
        return " zero dollars "

    @staticmethod
    def _fraction_words(match: re.Match) -> str:
        numerator, denominator = int(match.group(1)), int(match.group(2))
        if numerator == 1 and denominator == 2:
            return " one half "
        if numerator == 1 and denominator == 4:
            return " one quarter "
        if denominator == 2:
            return f" {cardinal_words(numerator)} halves "
        if denominator == 4:
            return f" {cardinal_words(numerator)} quarters "
        return f" {cardinal_words(numerator)} {ordinal_of_words(cardinal_words(denominator))} "

    @staticmethod
    def _number_words(n: int) -> str:
        if 1000 < n < 3000:
            if n == 2000:
                return " two thousand "
            if 2000 < n < 2010:
                return " two thousand " + cardinal_words(n % 100, andword="") + " "
            if n % 100 == 0:
                return " " + cardinal_words(n // 100, andword="") + " hundred "
            return " " + year_words(n) + " "
        try:
            return " " + cardinal_words(n, andword="") + " "
        except ValueError:  # beyond decillions: read digit by digit
            return " " + " ".join(_ONES[int(d)] for d in str(n)) + " "


# --------------------------------------------------------------------------- Chinese

_CN_DIGITS = "零一二三四五六七八九"
_CN_SMALL_UNITS = ("", "十", "百", "千")
_CN_MEASURE_WORDS = (
    "斤|克|千克|公斤|吨|米|厘米|毫米|公里|升|毫升|元|角|分|个|只|条|张|块|瓶|杯|份|本|"
    "辆|台|匹|头|位|亩|小时|分钟|秒|天|半"
)


def chinese_digits(digits: str) -> str:
    """Read a digit string one digit at a time (``2024`` -> ``二零二四``)."""
    return "".join(_CN_DIGITS[int(d)] for d in digits)


def _four_digit_chinese(group: int) -> str:
    """0 < group < 10000 in Chinese numerals, inner zeros read once (``1005`` -> ``一千零五``)."""
    text = ""
    pending_zero = False
    for power in (3, 2, 1, 0):
        digit = group // 10**power % 10
        if digit == 0:
            pending_zero = bool(text)
            continue
        if pending_zero:
            text += "零"
            pending_zero = False
        text += _CN_DIGITS[digit] + _CN_SMALL_UNITS[power]
    return text


def _chinese_below_1e16(value: int) -> str:
    """0 < value < 10**16 in Chinese numerals, grouped by 万 (10**4) and 亿 (10**8).

    A low part with a leading zero is preceded by 零 (``一万零五十``), except a low part of the
    亿 level that is read from its thousands digit (``一亿一千``), as ``cn2an`` writes it.
    """
    if value < 10**4:
        return _four_digit_chinese(value)
    unit_power, unit = (4, "万") if value < 10**8 else (8, "亿")
    high, low = divmod(value, 10**unit_power)
    text = _chinese_below_1e16(high) + unit
    if low:
        if low < 10 ** (unit_power - 1) and not (unit_power == 8 and 1000 <= low < 10000):
            text += "零"
        text += _chinese_below_1e16(low)
    return text


def chinese_integer(digits: str) -> str:
    """An integer digit string in Chinese numerals (``cn2an`` "low" style).

    ``10`` -> ``十``, ``110`` -> ``一百一十``, ``10050`` -> ``一万零五十``, ``10**12`` -> ``一万亿``.
    Numbers of more than 16 digits are read digit by digit.
    """
    value = int(digits)
    if value == 0:
        return "零"
    if value >= 10**16:
        return chinese_digits(digits)
    text = _chinese_below_1e16(value)
    if text.startswith("一十"):
        text = text[1:]
    return text


def chinese_number(number: str) -> str:
    """A signed decimal number string in Chinese (``-3.14`` -> ``负三点一四``)."""
    sign = ""
    if number.startswith("-"):
        sign, number = "负", number[1:]
    integer, _, decimals = number.partition(".")
    text = chinese_integer(integer) if integer else "零"
    if decimals:
        text += "点" + chinese_digits(decimals[:16])
    return sign + text


class ChineseNormalizer:
    """Rewrite Arabic numerals in Chinese text as Chinese numerals."""

    def __init__(self) -> None:
        self._range = re.compile(rf"(\d+(?:\.\d+)?)-(\d+(?:\.\d+)?)(?=(?:{_CN_MEASURE_WORDS}))")
        self._date = re.compile(r"(\d{2,4}年)?(\d{1,2}月)?(\d{1,2}日)?")
        self._fraction = re.compile(r"(\d+)/(\d+)")
        self._percent = re.compile(r"(-?(?:\d+\.)?\d+)%")
        self._celsius = re.compile(r"(\d+)℃")
        self._number = re.compile(r"-?(?:\d+\.)?\d+")

    def normalize(self, text: str) -> str:
        """Return ``text`` with every Arabic number written in Chinese numerals."""
        text = self._range.sub(
            lambda m: chinese_number(m.group(1)) + "到" + chinese_number(m.group(2)), text
        )
        text = self._date.sub(self._date_words, text)
        text = self._fraction.sub(
            lambda m: chinese_integer(m.group(2)) + "分之" + chinese_integer(m.group(1)), text
        )
        text = self._percent.sub(lambda m: "百分之" + chinese_number(m.group(1)), text)
        text = self._celsius.sub(lambda m: chinese_integer(m.group(1)) + "摄氏度", text)
        return self._number.sub(lambda m: chinese_number(m.group(0)), text)

    @staticmethod
    def _date_words(match: re.Match) -> str:
        year, month, day = match.groups()
        text = ""
        if year:
            text += chinese_digits(year[:-1]) + "年"
        for part in (month, day):
            if part:
                text += chinese_integer(part[:-1]) + part[-1]
        return text
