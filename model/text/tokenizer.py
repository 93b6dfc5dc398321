"""Mixed Mandarin/English text -> phoneme tokens -> ids, compatible with ZipVoice's tokenizers.

Pipeline of one text (``emilia`` mode, ZipVoice's default for its released models):

1. full-width punctuation is mapped to ASCII (``，`` -> ``,``; ``...`` -> ``…``) and line
   breaks/tabs become spaces (upstream drops them, which glues the words around them);
2. the text is cut into runs by character class: Chinese characters, Latin letters, and
   "other" characters (digits, spaces, punctuation), which join the run they precede or follow;
   ``<pin1yin>`` overrides count as Chinese and any ``[...]`` is a tag;
3. English runs are normalised and phonemised by espeak-ng (en-us IPA), Chinese runs are
   normalised, segmented by jieba and written as pinyin initials (``zh0``) and toned finals
   (``ong1``); a ``<pin1yin>`` becomes its initial/final, a ``[...]`` tag stays ONE token
   (``[S1]``, ``[S2]``, ``[LAUGHS]``); a run of "other" characters alone is skipped (logged);
4. ``dialog`` mode also removes the whitespace around ``[S1]``/``[S2]`` first.

Tokens that the table lacks are dropped when mapping to ids; unlike upstream (silent), each
drop is counted in :attr:`Tokenizer.oov_counts` and every new missing token is logged.

>>> tokenizer = Tokenizer(mode="dialog")
>>> tokenizer.texts_to_token_strings(["[S1] 你好。[S2] Hi!"])[0]
['[S1]', 'n0', 'i2', 'h0', 'ao3', '.', '[S2]', 'h', 'ˈ', 'a', 'ɪ', '!']
"""

from __future__ import annotations

import collections
import copy
import logging
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

from core.dialogue_script import SPEAKER_A_TAG, SPEAKER_B_TAG
from model.text.chinese import ChineseG2P
from model.text.english import EnglishG2P
from model.text.token_table import PAD_TOKEN, TokenTable

logger = logging.getLogger(__name__)

MODES = ("emilia", "dialog")

# full-width / typographic punctuation -> ASCII, applied in this order
_PUNCTUATION_MAP = (
    ("，", ","),
    ("。", "."),
    ("！", "!"),
    ("？", "?"),
    ("；", ";"),
    ("：", ":"),
    ("、", ","),
    ("‘", "'"),
    ("“", '"'),
    ("”", '"'),
    ("’", "'"),
    ("⋯", "…"),
    ("···", "…"),
    ("・・・", "…"),
    ("...", "…"),
)
# one unit of text: a bracketed span (<pinyin> or [tag]) or a single character
_UNIT = re.compile(r"[<\[].*?[>\]]|.")
_BRACKETED = re.compile(r"([<\[].*?[>\]])")
_LINE_BREAKS = re.compile(r"[\r\n\t\v\f]")
_SPEAKER_TAG_SPACE = re.compile(r"\s*(\[S[12]\])\s*")

ZH, EN, PINYIN, TAG, OTHER = "zh", "en", "pinyin", "tag", "other"


def map_punctuation(text: str) -> str:
    """Replace full-width and typographic punctuation by its ASCII form."""
    for source, target in _PUNCTUATION_MAP:
        text = text.replace(source, target)
    return text


def _unit_kind(unit: str) -> str:
    if unit.startswith("<") and unit.endswith(">"):
        return ZH
    if len(unit) == 1:
        if "\u4e00" <= unit <= "\u9fa5":
            return ZH
        if "A" <= unit <= "Z" or "a" <= unit <= "z":
            return EN
    return OTHER


def segment_text(text: str) -> list[tuple[str, str]]:
    """Cut ``text`` into ``(run, kind)`` pieces, kind in zh/en/pinyin/tag/other.

    "Other" characters (digits, spaces, punctuation, tags) join the run around them: a text
    that starts with them gives them to the first language run, later ones stay with the run
    they follow. ``<...>`` and ``[...]`` spans are then split out as ``pinyin`` and ``tag``.

    >>> segment_text("我们用Python写了<le5>.")
    [('我们用', 'zh'), ('Python', 'en'), ('写了', 'zh'), ('<le5>', 'pinyin'), ('.', 'zh')]
    """
    units = _UNIT.findall(text)
    runs: list[tuple[str, str]] = []
    current, kind = "", ""
    for index, unit in enumerate(units):
        unit_kind = _unit_kind(unit)
        if index == 0:
            current, kind = unit, unit_kind
        elif kind == OTHER:
            current, kind = current + unit, unit_kind
        elif unit_kind in (kind, OTHER):
            current += unit
        else:
            runs.append((current, kind))
            current, kind = unit, unit_kind
    if units:
        runs.append((current, kind))

    pieces = []
    for run, run_kind in runs:
        for part in _BRACKETED.split(run):
            if not part:
                continue
            if part.startswith("<") and part.endswith(">"):
                pieces.append((part, PINYIN))
            elif part.startswith("[") and part.endswith("]"):
                pieces.append((part, TAG))
            else:
                pieces.append((part, run_kind))
    return pieces


class Tokenizer:
    """ZipVoice-compatible tokenizer (``emilia`` or ``dialog`` mode).

    Args:
        token_table: a :class:`TokenTable`, the path of a ``tokens.txt``, or None to produce
            token strings only (ids then raise).
        mode: ``"emilia"`` or ``"dialog"`` (dialog also drops whitespace around [S1]/[S2]).
    """

    def __init__(
        self,
        token_table: TokenTable | str | Path | None = None,
        mode: str = "emilia",
    ):
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        if isinstance(token_table, (str, Path)):
            token_table = TokenTable.load(token_table)
        self.token_table: TokenTable | None = token_table
        self.mode = mode
        self._english = EnglishG2P()
        self._chinese = ChineseG2P()
        self._oov_counts: collections.Counter = collections.Counter()

    # ------------------------------------------------------------------ text -> strings
    def text_to_token_strings(self, text: str) -> list[str]:
        """The token strings of one text."""
        text = map_punctuation(_LINE_BREAKS.sub(" ", text))
        if self.mode == "dialog":
            text = _SPEAKER_TAG_SPACE.sub(r"\1", text)
        tokens: list[str] = []
        for piece, kind in segment_text(text):
            if kind == ZH:
                tokens.extend(self._chinese(piece))
            elif kind == EN:
                tokens.extend(self._english(piece))
            elif kind == PINYIN:
                tokens.extend(self._chinese.override(piece))
            elif kind == TAG:
                tokens.append(piece)
            else:
                logger.warning("no Chinese or English letters in %r: skipped", piece)
        return tokens

    def texts_to_token_strings(self, texts: Sequence[str]) -> list[list[str]]:
        """The token strings of each text."""
        return [self.text_to_token_strings(text) for text in texts]

    # ------------------------------------------------------------------ strings -> ids
    def token_strings_to_ids(self, token_strings: Sequence[Sequence[str]]) -> list[list[int]]:
        """Map token strings to ids; tokens missing from the table are dropped and counted."""
        table = self._table()
        all_ids = []
        for tokens in token_strings:
            ids = []
            for token in tokens:
                index = table.id_of(token)
                if index is None:
                    if token not in self._oov_counts:
                        logger.warning("token %r is not in the token table: dropped", token)
                    self._oov_counts[token] += 1
                    continue
                ids.append(index)
            all_ids.append(ids)
        return all_ids

    def texts_to_token_ids(self, texts: Sequence[str]) -> list[list[int]]:
        """The token ids of each text (missing tokens dropped and counted)."""
        return self.token_strings_to_ids(self.texts_to_token_strings(texts))

    def ids_to_token_strings(self, ids: Sequence[int]) -> list[str]:
        """The token strings of an id sequence (unknown ids raise KeyError)."""
        table = self._table()
        tokens = []
        for index in ids:
            token = table.token_of(int(index))
            if token is None:
                raise KeyError(f"id {index} is not in the token table")
            tokens.append(token)
        return tokens

    def with_table(self, token_table: TokenTable | str | Path | None) -> Tokenizer:
        """A tokenizer of the same mode with another table, sharing the loaded G2P resources."""
        if isinstance(token_table, (str, Path)):
            token_table = TokenTable.load(token_table)
        clone = copy.copy(self)
        clone.token_table = token_table
        clone._oov_counts = collections.Counter()
        return clone

    # ------------------------------------------------------------------ table facts
    @property
    def oov_counts(self) -> dict[str, int]:
        """How many times each missing token was dropped so far (a copy)."""
        return dict(self._oov_counts)

    @property
    def num_dropped(self) -> int:
        """How many tokens were dropped so far because the table lacks them."""
        return sum(self._oov_counts.values())

    @property
    def pad_id(self) -> int:
        """Id of the pad token ``_``."""
        return self._table().pad_id

    @property
    def vocab_size(self) -> int:
        """Embedding rows needed for this table (largest id + 1)."""
        return self._table().vocab_size

    @property
    def spk_a_id(self) -> int:
        """Id of ``[S1]`` (KeyError if the table has none)."""
        return self._table()._require(SPEAKER_A_TAG)

    @property
    def spk_b_id(self) -> int:
        """Id of ``[S2]`` (KeyError if the table has none)."""
        return self._table()._require(SPEAKER_B_TAG)

    def _table(self) -> TokenTable:
        if self.token_table is None:
            raise ValueError("this tokenizer has no token table: pass one to map tokens to ids")
        return self.token_table


def build_vocabulary(
    texts: Iterable[str],
    mode: str = "dialog",
    base: TokenTable | None = None,
    min_count: int = 1,
    extra_tokens: Iterable[str] = (),
    tokenizer: Tokenizer | None = None,
) -> TokenTable:
    """Build (or extend) a token table from a corpus of texts, for training from scratch.

    New ids go to ``_`` (pad), ``[S1]``, ``[S2]`` and ``extra_tokens`` first (when missing),
    then to the corpus tokens seen at least ``min_count`` times, most frequent first (ties by
    token string), so the result is deterministic.

    Args:
        texts: the corpus transcripts.
        mode: tokenizer mode used to read them.
        base: an existing table to extend (its ids are kept); None starts an empty table.
        min_count: minimum number of occurrences for a corpus token to get an id.
        extra_tokens: tokens to include even if unseen (e.g. non-verbal tags ``[LAUGHS]``).
        tokenizer: a tokenizer to read the texts with (its mode wins over ``mode``); reusing
            one saves reloading the jieba dictionary.

    Returns:
        The table.
    """
    if tokenizer is None:
        tokenizer = Tokenizer(None, mode=mode)
    counts: collections.Counter = collections.Counter()
    for text in texts:
        counts.update(tokenizer.text_to_token_strings(text))
    frequent = sorted(
        (token for token, count in counts.items() if count >= min_count),
        key=lambda token: (-counts[token], token),
    )
    table = base if base is not None else TokenTable(())
    required = [PAD_TOKEN, SPEAKER_A_TAG, SPEAKER_B_TAG, *extra_tokens]
    table = table.extended(required).extended(frequent)
    logger.info(
        "vocabulary: %d tokens (%d distinct in the corpus, %d below min_count=%d)",
        len(table),
        len(counts),
        sum(1 for count in counts.values() if count < min_count),
        min_count,
    )
    return table
