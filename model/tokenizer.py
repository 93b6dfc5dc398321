"""Public entry point of the text front end (the implementation lives in :mod:`model.text`).

>>> from model.tokenizer import Tokenizer, TokenTable, split_dialogue
"""

from core.dialogue_script import (
    SPEAKER_A_TAG,
    SPEAKER_B_TAG,
    DialogueFormatError,
    join_dialogue,
    split_dialogue,
)
from model.text.token_table import PAD_TOKEN, TokenTable
from model.text.tokenizer import MODES, Tokenizer, build_vocabulary, map_punctuation, segment_text

__all__ = [
    "MODES",
    "PAD_TOKEN",
    "SPEAKER_A_TAG",
    "SPEAKER_B_TAG",
    "DialogueFormatError",
    "TokenTable",
    "Tokenizer",
    "build_vocabulary",
    "join_dialogue",
    "map_punctuation",
    "segment_text",
    "split_dialogue",
]
