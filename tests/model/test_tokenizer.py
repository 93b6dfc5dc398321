"""Tokenizer: parity with upstream ZipVoice's emilia/dialog tokenizers, table, vocabulary, dialogue."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from model.text.chinese import split_syllable
from model.text.normalizer import (
    ChineseNormalizer,
    EnglishNormalizer,
    cardinal_words,
    chinese_integer,
)
from model.tokenizer import (
    DialogueFormatError,
    Tokenizer,
    TokenTable,
    build_vocabulary,
    join_dialogue,
    segment_text,
    split_dialogue,
)
from tests.upstream import upstream_fixture_dir

FIXTURES = upstream_fixture_dir()
PARITY = json.loads((FIXTURES / "tokenizer_parity.json").read_text(encoding="utf-8"))
EMILIA_TABLE = FIXTURES / "tokens_emilia_generated.txt"


@pytest.fixture(scope="module")
def emilia() -> Tokenizer:
    return Tokenizer(EMILIA_TABLE, mode="emilia")


@pytest.fixture(scope="module")
def dialog() -> Tokenizer:
    return Tokenizer(EMILIA_TABLE, mode="dialog")


def test_parity_with_upstream_all_15(emilia: Tokenizer, dialog: Tokenizer):
    assert len(PARITY) == 15
    mismatches = []
    for entry in PARITY:
        text = entry["text"]
        checks = {
            "emilia": emilia.texts_to_token_strings([text])[0] == entry["emilia"],
            "dialog": dialog.texts_to_token_strings([text])[0] == entry["dialog"],
            "emilia_ids": emilia.texts_to_token_ids([text])[0] == entry["emilia_ids"],
        }
        if not all(checks.values()):
            mismatches.append((text, checks))
    assert not mismatches, f"{15 - len(mismatches)}/15 match; mismatches: {mismatches}"


def test_batch_equals_single_and_input_untouched(emilia: Tokenizer):
    texts = [entry["text"] for entry in PARITY[:4]]
    original = list(texts)
    batch = emilia.texts_to_token_strings(texts)
    assert texts == original
    assert batch == [emilia.texts_to_token_strings([text])[0] for text in texts]
    assert len(emilia.texts_to_token_ids(texts)) == 4


def test_upstream_table_loads_and_round_trips(tmp_path: Path):
    table = TokenTable.load(EMILIA_TABLE)
    assert len(table) == 358
    assert table.pad_id == 0 and table.id_of(" ") == 3
    out = tmp_path / "tokens.txt"
    table.save(out)
    assert out.read_bytes() == EMILIA_TABLE.read_bytes()
    assert TokenTable.load(out) == table


def test_table_rejects_duplicates():
    with pytest.raises(ValueError):
        TokenTable((("a", 0), ("a", 1)))
    with pytest.raises(ValueError):
        TokenTable((("a", 0), ("b", 0)))


def test_missing_tokens_are_dropped_counted_and_logged(caplog):
    tokenizer = Tokenizer(EMILIA_TABLE, mode="dialog")  # emilia table: no [S1]/[S2]
    with caplog.at_level(logging.WARNING, logger="model.text.tokenizer"):
        ids = tokenizer.texts_to_token_ids(["[S1] Hi. [S2] Hi. [S1] Hi."])[0]
    strings = tokenizer.texts_to_token_strings(["[S1] Hi. [S2] Hi. [S1] Hi."])[0]
    assert len(ids) == len(strings) - 3
    assert tokenizer.oov_counts == {"[S1]": 2, "[S2]": 1}
    assert tokenizer.num_dropped == 3
    assert "[S1]" in caplog.text and "[S2]" in caplog.text
    with pytest.raises(KeyError):
        _ = tokenizer.spk_a_id


def test_build_vocabulary_from_corpus(tmp_path: Path, dialog: Tokenizer):
    corpus = ["[S1] Hello there. [S2] 你好！[LAUGHS]", "[S1] 今天天气很好。[S2] Yes, it is."]
    table = build_vocabulary(corpus, extra_tokens=["[COUGHS]"], tokenizer=dialog)
    assert table.tokens[:4] == ("_", "[S1]", "[S2]", "[COUGHS]")
    assert table.pad_id == 0 and table.vocab_size == len(table)
    assert build_vocabulary(corpus, extra_tokens=["[COUGHS]"], tokenizer=dialog) == table

    tokenizer = dialog.with_table(table)
    assert (tokenizer.spk_a_id, tokenizer.spk_b_id, tokenizer.pad_id) == (1, 2, 0)
    ids = tokenizer.texts_to_token_ids(corpus)
    assert tokenizer.num_dropped == 0
    for text, text_ids in zip(corpus, ids):
        assert (
            tokenizer.ids_to_token_strings(text_ids) == tokenizer.texts_to_token_strings([text])[0]
        )
    assert ids[0][0] == tokenizer.spk_a_id and tokenizer.spk_b_id in ids[0]

    # extending a base table keeps its ids and appends new tokens after them
    base = TokenTable.load(EMILIA_TABLE)
    extended = build_vocabulary(corpus, base=base, tokenizer=dialog)
    assert all(extended.id_of(token) == index for token, index in base.entries)
    assert extended.id_of("[S1]") == base.vocab_size
    assert extended.id_of("[S2]") == base.vocab_size + 1

    # frequent tokens come first; min_count drops the rare ones
    tags = ["[C] [A] [B]", "[A] [A]"]
    assert build_vocabulary(tags, mode="emilia").tokens[3:] == ("[A]", "[B]", "[C]")
    assert build_vocabulary(tags, mode="emilia", min_count=2).tokens[3:] == ("[A]",)
    path = tmp_path / "tokens.txt"
    table.save(path)
    assert dialog.with_table(path).texts_to_token_ids(corpus) == ids
    assert build_vocabulary(corpus[:1], mode="dialog").id_of("[LAUGHS]") is not None


def test_dialog_mode_drops_spaces_around_speaker_tags_only(dialog: Tokenizer, emilia: Tokenizer):
    tokens = dialog.texts_to_token_strings(["[S1] 你好 [LAUGHS] 啊。  [S2] 好。"])[0]
    assert tokens[0] == "[S1]" and tokens[1] == "n0"
    assert tokens[tokens.index("[S2]") - 1] == "."
    assert "[LAUGHS]" in tokens and " " in tokens  # spaces around other tags are kept
    assert emilia.texts_to_token_strings(["[S1] 你好"])[0][:2] == ["[S1]", " "]


def test_pinyin_override_and_bad_override(caplog, emilia: Tokenizer):
    tokenizer = emilia
    assert tokenizer.texts_to_token_strings(["<zhuang4>"])[0] == ["zh0", "uang4"]
    with caplog.at_level(logging.WARNING):
        assert tokenizer.texts_to_token_strings(["好<hao>"])[0] == ["h0", "ao3"]
    assert "hao" in caplog.text
    assert split_syllable("er2") == ["er2"]


def test_segment_text_runs():
    assert segment_text("我们用Python写了<le5>.") == [
        ("我们用", "zh"),
        ("Python", "en"),
        ("写了", "zh"),
        ("<le5>", "pinyin"),
        (".", "zh"),
    ]
    assert segment_text("[S1] Hi [S2]") == [("[S1]", "tag"), (" Hi ", "en"), ("[S2]", "tag")]
    assert segment_text("123!") == [("123!", "other")]


def test_line_breaks_do_not_glue_words():
    tokenizer = Tokenizer()
    assert tokenizer.texts_to_token_strings(["good\nmorning"]) == tokenizer.texts_to_token_strings(
        ["good morning"]
    )


def test_tokenizer_without_table_gives_strings_only():
    tokenizer = Tokenizer()
    assert tokenizer.texts_to_token_strings(["Hi"])[0]
    with pytest.raises(ValueError):
        tokenizer.texts_to_token_ids(["Hi"])
    with pytest.raises(ValueError):
        Tokenizer(mode="libritts")


@pytest.mark.parametrize(
    "text, expected",
    [
        ("In 1905 and 1900", "In  nineteen oh five  and  nineteen hundred "),
        ("2007", " two thousand seven "),
        ("$1.01", "  one  dollar,  one  cent "),
        ("3/8", " three eighth "),
        ("21st", " twenty-first "),
        ("45%", " forty-five  percent "),
        ("Mr. Lee", "mister. Lee"),
        ("1,234,567", " one million, two hundred thirty-four thousand, five hundred sixty-seven "),
    ],
)
def test_english_normalizer(text: str, expected: str):
    assert EnglishNormalizer().normalize(text) == expected


def test_number_words():
    assert cardinal_words(1002003) == "one million, two thousand and three"
    assert cardinal_words(101, andword="") == "one hundred one"
    assert cardinal_words(0) == "zero"


@pytest.mark.parametrize(
    "text, expected",
    [
        ("2019年3月5日", "二零一九年三月五日"),
        ("超过90%的人", "超过百分之九十的人"),
        ("2-3个", "二到三个"),
        ("1/3", "三分之一"),
        ("30℃", "三十摄氏度"),
        ("-3.14", "负三点一四"),
        ("10050", "一万零五十"),
    ],
)
def test_chinese_normalizer(text: str, expected: str):
    assert ChineseNormalizer().normalize(text) == expected


def test_chinese_integer_zeros():
    assert chinese_integer("10") == "十"
    assert chinese_integer("110") == "一百一十"
    assert chinese_integer("100001000") == "一亿一千"
    assert chinese_integer("1000000000000") == "一万亿"
    assert chinese_integer("100000000000000000") == "一零零零零零零零零零零零零零零零零零"


def test_split_dialogue_valid():
    text = "[S1] Hello there. [S2] [LAUGHS] Hi!\n[S2] Again. [S1]你好。"
    turns = split_dialogue(text)
    assert turns == [
        ("[S1]", "Hello there."),
        ("[S2]", "[LAUGHS] Hi!"),
        ("[S2]", "Again."),
        ("[S1]", "你好。"),
    ]
    assert split_dialogue(join_dialogue(turns)) == turns


@pytest.mark.parametrize(
    "text, message",
    [
        ("Hello there.", "no speaker tags"),
        ("[S2] Hi [S1] Hello", "must start with [S1]"),
        ("Well, [S1] Hi [S2] Hello", "before the first speaker tag"),
        ("[S1] Hi [S2] Hello [S3] Hey", "[S3]"),
        ("[S1] Hi [s2] Hello", "[s2]"),
        ("[S1] Hi [S2] [S1] Hello", "no text"),
    ],
)
def test_split_dialogue_errors(text: str, message: str):
    with pytest.raises(DialogueFormatError, match=message.replace("[", r"\[").replace("]", r"\]")):
        split_dialogue(text)
