"""English grapheme-to-phoneme conversion: espeak-ng en-us IPA through ``piper_phonemize``.

``piper_phonemize`` bundles its own libespeak-ng and espeak-ng data, so no system espeak is
needed and nothing is downloaded. Each output token is one IPA character (stress marks and
length marks are tokens of their own); spaces and punctuation that espeak keeps are tokens too.
espeak splits its input into sentences and returns one phoneme list per sentence; the lists are
joined without a separator, as ZipVoice does (``Dr. Smith`` -> ``...ɚ . s m ...``).
"""

from __future__ import annotations

import logging

from model.text.normalizer import EnglishNormalizer

logger = logging.getLogger(__name__)

ESPEAK_VOICE = "en-us"


class EnglishG2P:
    """Normalise English text and convert it to espeak IPA phoneme tokens.

    Args:
        voice: the espeak-ng voice (``en-us`` for ZipVoice compatibility).
    """

    def __init__(self, voice: str = ESPEAK_VOICE):
        self.voice = voice
        self._normalizer = EnglishNormalizer()

    def __call__(self, text: str) -> list[str]:
        """Return the phoneme tokens of ``text`` (an empty list if espeak fails)."""
        from piper_phonemize import phonemize_espeak

        normalized = self._normalizer.normalize(text)
        try:
            sentences = phonemize_espeak(normalized, self.voice)
        except Exception as error:  # noqa: BLE001 -- espeak errors are rare: keep the rest
            logger.warning("espeak failed on %r: %s", normalized, error)
            return []
        return [phoneme for sentence in sentences for phoneme in sentence]
