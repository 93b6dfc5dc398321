"""The one fixed text normalisation used before every WER/CER figure the project reports.

Both sides (reference and hypothesis) go through :func:`normalize_text`, then
:func:`tokenize` splits them into scoring units. The rules are deliberately few and never tuned
to a model's output, so figures stay comparable across runs:

1. Unicode NFKC (full-width letters and digits become ASCII, ligatures split);
2. lower case (``str.casefold``);
3. hyphens and dashes become spaces (``twenty-one`` -> ``twenty one``);
4. every other punctuation character (Unicode category ``P*``) and symbol (``S*``) is removed,
   apostrophes included (``didn't`` -> ``didnt`` on both sides);
5. runs of whitespace collapse to one space.

Scoring units are whitespace-separated words, except that every CJK character (Han, kana,
Hangul) is a unit of its own: Chinese has no spaces, so its "WER" is a character error rate and
mixed Chinese-English text is scored as a mixed error rate (MER).
"""

from __future__ import annotations

import re
import unicodedata

__all__ = ["is_cjk_char", "normalize_text", "tokenize"]

# hyphen-minus, hyphen, non-breaking hyphen, figure dash, en dash, em dash, minus sign, ...
_DASHES = "-\u2010\u2011\u2012\u2013\u2014\u2015\u2212\ufe58\ufe63\uff0d"
_DASH_RE = re.compile(f"[{re.escape(_DASHES)}]")
_SPACE_RE = re.compile(r"\s+")


def is_cjk_char(char: str) -> bool:
    """Whether ``char`` is a Han, kana or Hangul character (one scoring unit each)."""
    code = ord(char)
    return (
        0x3400 <= code <= 0x4DBF  # CJK extension A
        or 0x4E00 <= code <= 0x9FFF  # CJK unified ideographs
        or 0xF900 <= code <= 0xFAFF  # compatibility ideographs
        or 0x20000 <= code <= 0x3134F  # extensions B-G
        or 0x3040 <= code <= 0x30FF  # hiragana, katakana
        or 0xAC00 <= code <= 0xD7AF  # hangul syllables
    )


def normalize_text(text: str) -> str:
    """Apply the fixed normalisation (see the module docstring).

    Args:
        text: any transcript.

    Returns:
        The normalised text: lower case, no punctuation, single spaces, stripped.

    >>> normalize_text("Oh, I'm originally from Chicago -- also!")
    'oh im originally from chicago also'
    """
    text = unicodedata.normalize("NFKC", text).casefold()
    text = _DASH_RE.sub(" ", text)
    kept = []
    for char in text:
        category = unicodedata.category(char)
        if category[0] in ("P", "S"):
            continue
        kept.append(" " if category[0] in ("Z", "C") else char)
    return _SPACE_RE.sub(" ", "".join(kept)).strip()


def tokenize(text: str) -> list[str]:
    """Normalise ``text`` and split it into scoring units (words; CJK characters one by one).

    >>> tokenize("Hello 你好, world")
    ['hello', '你', '好', 'world']
    """
    units: list[str] = []
    for word in normalize_text(text).split(" "):
        if not word:
            continue
        if not any(is_cjk_char(c) for c in word):
            units.append(word)
            continue
        run = ""
        for char in word:
            if is_cjk_char(char):
                if run:
                    units.append(run)
                    run = ""
                units.append(char)
            else:
                run += char
        if run:
            units.append(run)
    return units
