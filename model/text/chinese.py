"""Mandarin grapheme-to-phoneme conversion: jieba words -> pypinyin TONE3 -> initial + final.

Each syllable becomes its initial suffixed with ``0`` (so that ``b0`` can never collide with
the IPA ``b`` of English runs) and its final carrying the tone digit (neutral tone written 5):
``重庆`` -> ``ch0 ong2 q0 ing4``. Words are segmented by jieba first so that pypinyin can pick
the right reading of polyphones and apply tone sandhi (``你好`` -> ``n0 i2 h0 ao3``).
Anything pypinyin leaves as it is (punctuation, spaces, Latin letters) stays one token.
"""

from __future__ import annotations

import logging

from model.text.normalizer import ChineseNormalizer

logger = logging.getLogger(__name__)

_TONES = "12345"


def is_tone3_syllable(text: str) -> bool:
    """True for a pinyin syllable in TONE3 style: letters then one tone digit 1-5 (``hao3``)."""
    return len(text) >= 2 and text[:-1].isalpha() and text[-1] in _TONES


def split_syllable(syllable: str) -> list[str]:
    """Split a TONE3 syllable into ``[initial + "0", final + tone]`` (no initial: final only).

    >>> split_syllable("zhuang4"), split_syllable("an1")
    (['zh0', 'uang4'], ['an1'])
    """
    from pypinyin.contrib.tone_convert import to_finals_tone3, to_initials

    initial = to_initials(syllable, strict=False)
    final = to_finals_tone3(syllable, strict=False, neutral_tone_with_five=True)
    tokens = []
    if initial:
        tokens.append(initial + "0")
    if final:
        tokens.append(final)
    return tokens


class ChineseG2P:
    """Normalise Mandarin text and convert it to initial/final pinyin tokens.

    The jieba dictionary is loaded on first use (about 0.5 s) by a tokenizer owned by this
    object, not by jieba's module-level default.
    """

    def __init__(self) -> None:
        self._normalizer = ChineseNormalizer()
        self._segmenter = None

    def _words(self, text: str) -> list[str]:
        if self._segmenter is None:
            import jieba

            logging.getLogger("jieba").setLevel(logging.WARNING)
            self._segmenter = jieba.Tokenizer()
        return list(self._segmenter.cut(text))

    def __call__(self, text: str) -> list[str]:
        """Return the pinyin tokens of ``text`` (an empty list if the conversion fails)."""
        from pypinyin import Style, lazy_pinyin

        try:
            words = self._words(self._normalizer.normalize(text))
            syllables = lazy_pinyin(
                words, style=Style.TONE3, tone_sandhi=True, neutral_tone_with_five=True
            )
        except Exception as error:  # noqa: BLE001 -- one bad run must not stop the text
            logger.warning("pinyin conversion failed on %r: %s", text, error)
            return []
        tokens: list[str] = []
        for syllable in syllables:
            if is_tone3_syllable(syllable):
                tokens.extend(split_syllable(syllable))
            else:
                tokens.append(syllable)
        return tokens

    @staticmethod
    def override(pinyin: str) -> list[str]:
        """Tokens of a manual ``<pin1yin>`` override (``<hang2>`` -> ``h0 ang2``).

        Returns an empty list (and logs a warning) if the text between ``<>`` is not one TONE3
        syllable.
        """
        syllable = pinyin[1:-1] if pinyin.startswith("<") and pinyin.endswith(">") else pinyin
        if not is_tone3_syllable(syllable):
            logger.warning("<%s> is not a pinyin syllable with a tone digit 1-5: skipped", syllable)
            return []
        return split_syllable(syllable)
