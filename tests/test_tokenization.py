"""Tests for course_lib.tokenization: byte-level BPE, word-level and WordPiece tokenizers."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import regex
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from course_lib.tokenization import (
    GPT2_PATTERN,
    GPT4_PATTERN,
    SPECIAL_TOKENS,
    UNK_TOKEN,
    BPETokenizer,
    EncoderTokenizer,
    Tokenizer,
    WordLevelTokenizer,
    WordPieceTokenizer,
    byte_fallback_text,
    is_byte_token,
    naive_bpe_merges,
    nested_unk_rates,
    split_words,
    unk_rate,
    wordpiece_spells,
)

TRAIN_TEXT = (
    "The cat sat on the mat. The dog sat on the log! Where is the cat? It's on the mat, isn't it?\n"
    "In 2024 the cats and dogs ate 13 apples and 7 pears.    Tabs\tand  spaces\n\n"
    "Les chats dorment. Die Katze schläft. 猫が寝ています。 Кошка спит. القطة نائمة. 🐱🐶👍🏽\n"
) * 4

SPECIAL_CHARS = [
    "😀", "👍🏽", "👨‍👩‍👧", "🇫🇷",  # emoji: skin tone modifier, ZWJ family, regional-indicator flag
    "e\u0301", "\u0301", "\u0308",  # combining marks, also with no base character
    "中", "文", "ひ", "カ", "한",  # CJK
    "ש", "ל", "ם", "ع", "ر", "\u200f", "\u200e",  # Hebrew, Arabic, RTL and LTR marks
    " ", "  ", "\t", "\n", "\r\n", "\u00a0", "\u3000",  # runs of whitespace, no-break and ideographic
    "'s", "'ll", "\x00", "\U0010ffff",
]
UNICODE_TEXT = st.lists(
    st.one_of(st.text(st.characters(exclude_categories=("Cs",)), max_size=8), st.sampled_from(SPECIAL_CHARS)),
    max_size=8,
).map("".join)


@pytest.fixture(scope="module")
def gpt2_bpe() -> BPETokenizer:
    tokenizer = BPETokenizer()
    tokenizer.train(TRAIN_TEXT, 400)
    return tokenizer


@pytest.fixture(scope="module")
def whole_text_bpe() -> BPETokenizer:
    tokenizer = BPETokenizer(pattern=None)
    tokenizer.train(TRAIN_TEXT, 400)
    return tokenizer


def apply_merges_in_order(tokenizer: BPETokenizer, text: str) -> list[int]:
    """Reference encoder: every merge, in training order, over each pre-token's bytes."""
    chunks = [text] if tokenizer.pattern is None else regex.findall(tokenizer.pattern, text)
    ids: list[int] = []
    for chunk in chunks:
        symbols = list(chunk.encode("utf-8"))
        for new_id, (a, b) in enumerate(tokenizer.merges, start=256):
            merged, i = [], 0
            while i < len(symbols):
                if i + 1 < len(symbols) and symbols[i] == a and symbols[i + 1] == b:
                    merged.append(new_id)
                    i += 2
                else:
                    merged.append(symbols[i])
                    i += 1
            symbols = merged
        ids += symbols
    return ids


# ----------------------------------------------------------------------------------------------
# BPE: round trip


@settings(max_examples=150, deadline=None)
@given(UNICODE_TEXT)
def test_round_trip_gpt2_pattern(gpt2_bpe: BPETokenizer, text: str) -> None:
    assert gpt2_bpe.decode(gpt2_bpe.encode(text)) == text


@settings(max_examples=150, deadline=None)
@given(UNICODE_TEXT)
def test_round_trip_without_pre_tokenization(whole_text_bpe: BPETokenizer, text: str) -> None:
    assert whole_text_bpe.decode(whole_text_bpe.encode(text)) == text


@pytest.mark.parametrize("pattern", [GPT2_PATTERN, GPT4_PATTERN, None])
def test_round_trip_of_training_text_and_special_strings(pattern: str | None) -> None:
    tokenizer = BPETokenizer(pattern)
    tokenizer.train(TRAIN_TEXT, 300)
    for text in [TRAIN_TEXT, "", *SPECIAL_CHARS, "".join(SPECIAL_CHARS)]:
        assert tokenizer.decode(tokenizer.encode(text)) == text


# ----------------------------------------------------------------------------------------------
# Pre-tokenization: golden splits of GPT-2's and GPT-4's patterns

# (text, GPT-2 pieces, GPT-4 pieces), written out by reading the two patterns. Cross-checked with
# published pattern tests ("Hello how are         you?", "Hello HOW'RE you") and with tiktoken's cl100k_base
# test strings, whose token counts fit these pieces ("'rer" -> 2 tokens, "How about numbers? 123
# 45.6 -78.9" -> 14 tokens, one per GPT-4 piece). Devanagari is escaped: नमस्ते is
# न म स, virama, त, vowel sign e.
GOLDEN_SPLITS = {
    "contractions": (
        "He's, they'll we've I'm you'd can't they're",
        ["He", "'s", ",", " they", "'ll", " we", "'ve", " I", "'m", " you", "'d", " can", "'t", " they", "'re"],
        ["He", "'s", ",", " they", "'ll", " we", "'ve", " I", "'m", " you", "'d", " can", "'t", " they", "'re"],
    ),
    "uppercase contractions": (  # GPT-4 takes them case-insensitively, GPT-2 cuts them apart
        "HE'S DON'T I'M WE'LL YOU'VE THEY'RE SHE'D",
        ["HE", "'", "S", " DON", "'", "T", " I", "'", "M", " WE", "'", "LL", " YOU", "'", "VE", " THEY", "'",
         "RE", " SHE", "'", "D"],
        ["HE", "'S", " DON", "'T", " I", "'M", " WE", "'LL", " YOU", "'VE", " THEY", "'RE", " SHE", "'D"],
    ),
    "contraction prefixes": (  # an apostrophe and s/t/re/... is cut off wherever it occurs
        "'rer 'sup",
        ["'re", "r", " '", "sup"],
        ["'re", "r", " '", "sup"],
    ),
    "numbers": (  # GPT-2 keeps a run of digits with its space; GPT-4 cuts groups of at most 3, no space
        "In 2024, 1234567 cats ate 12,345.67 or ٣٤٥٦ fish",
        ["In", " 2024", ",", " 1234567", " cats", " ate", " 12", ",", "345", ".", "67", " or",
         " ٣٤٥٦", " fish"],
        ["In", " ", "202", "4", ",", " ", "123", "456", "7", " cats", " ate", " ", "12", ",", "345", ".", "67",
         " or", " ", "٣٤٥", "٦", " fish"],
    ),
    "tiktoken numbers": (
        "How about numbers? 123 45.6 -78.9",
        ["How", " about", " numbers", "?", " 123", " 45", ".", "6", " -", "78", ".", "9"],
        ["How", " about", " numbers", "?", " ", "123", " ", "45", ".", "6", " -", "78", ".", "9"],
    ),
    "letters and digits": (
        "abc123def x2",
        ["abc", "123", "def", " x", "2"],
        ["abc", "123", "def", " x", "2"],
    ),
    "punctuation runs": (  # GPT-4 lets one punctuation character lead a word when no space does
        "Wait...!? (yes) x(y) 'hi' I love 🍕!!",
        ["Wait", "...!?", " (", "yes", ")", " x", "(", "y", ")", " '", "hi", "'", " I", " love", " 🍕!!"],
        ["Wait", "...!?", " (", "yes", ")", " x", "(y", ")", " '", "hi", "'", " I", " love", " 🍕!!"],
    ),
    "code and newlines": (  # GPT-4 keeps newlines after punctuation; a space run leaves its last space
        "def f():\n    return 1\n\n",
        ["def", " f", "():", "\n   ", " return", " 1", "\n\n"],
        ["def", " f", "():\n", "   ", " return", " ", "1", "\n\n"],
    ),
    "blank line": (
        "Hi!\n\nBye",
        ["Hi", "!", "\n", "\n", "Bye"],
        ["Hi", "!\n\n", "Bye"],
    ),
    "whitespace runs": (  # GPT-4 ends a run at a newline, keeps \r\n whole, lets a tab lead a word
        "a  \n  b\r\nc\td   ",
        ["a", "  \n ", " b", "\r", "\n", "c", "\t", "d", "   "],
        ["a", "  \n", " ", " b", "\r\n", "c", "\td", "   "],
    ),
    "space runs": (
        "Hello how are         you?",
        ["Hello", " how", " are", "        ", " you", "?"],
        ["Hello", " how", " are", "        ", " you", "?"],
    ),
    "non-Latin letters": (  # Devanagari vowel signs and virama are marks (\p{M}), not letters
        "Кошка спит. 猫が寝ています。 القطة \u0928\u092e\u0938\u094d\u0924\u0947",
        ["Кошка", " спит", ".", " 猫が寝ています", "。", " القطة", " \u0928\u092e\u0938", "\u094d", "\u0924", "\u0947"],
        ["Кошка", " спит", ".", " 猫が寝ています", "。", " القطة", " \u0928\u092e\u0938", "\u094d\u0924", "\u0947"],
    ),
}


@pytest.mark.parametrize("text, gpt2, gpt4", GOLDEN_SPLITS.values(), ids=GOLDEN_SPLITS.keys())
def test_gpt2_and_gpt4_patterns_split_like_the_golden_pieces(text: str, gpt2: list[str], gpt4: list[str]) -> None:
    assert "".join(gpt2) == "".join(gpt4) == text  # the expected pieces cover the text
    assert regex.findall(GPT2_PATTERN, text) == gpt2
    assert regex.findall(GPT4_PATTERN, text) == gpt4


# ----------------------------------------------------------------------------------------------
# BPE: training


@pytest.mark.parametrize("vocab_size", [256, 257, 300, 400])
def test_number_of_merges_is_vocab_size_minus_256(vocab_size: int) -> None:
    tokenizer = BPETokenizer()
    tokenizer.train(TRAIN_TEXT, vocab_size)
    assert len(tokenizer.merges) == vocab_size - 256
    assert tokenizer.vocab_size == len(tokenizer.vocab) == vocab_size


def test_vocab_holds_bytes_and_merged_bytes(gpt2_bpe: BPETokenizer) -> None:
    assert all(gpt2_bpe.vocab[i] == bytes([i]) for i in range(256))
    for new_id, (a, b) in enumerate(gpt2_bpe.merges, start=256):
        assert a < new_id and b < new_id
        assert gpt2_bpe.vocab[new_id] == gpt2_bpe.vocab[a] + gpt2_bpe.vocab[b]


def test_wikipedia_example_aaabdaaabac() -> None:
    # Wikipedia, "Byte pair encoding": aa -> Z, then ab -> Y, then ZY -> X, giving "XdXac".
    tokenizer = BPETokenizer(pattern=None)
    tokenizer.train("aaabdaaabac", 259)
    a, b = ord("a"), ord("b")
    assert tokenizer.merges == [(a, a), (a, b), (256, 257)]
    assert tokenizer.encode("aaabdaaabac") == [258, ord("d"), 258, a, ord("c")]
    assert tokenizer.vocab[258] == b"aaab"


def test_tie_break_is_smallest_id_pair() -> None:
    # All three pairs of "cdab" occur once; (a, b) = (97, 98) is the smallest, though seen last.
    tokenizer = BPETokenizer(pattern=None)
    tokenizer.train("cdab", 257)
    assert tokenizer.merges == [(ord("a"), ord("b"))]
    # Second merge: after "ab" -> 256, the tied pairs are (c, d), (d, 256): (99, 100) is smallest.
    tokenizer.train("cdab", 258)
    assert tokenizer.merges == [(97, 98), (99, 100)]


def test_sennrich_dictionary_merges_and_ties_follow_the_documented_rule() -> None:
    # The dictionary of Sennrich et al. (2016), Algorithm 1: low x5, lower x2, newest x6, widest x3,
    # one word per line (GPT-2's pattern makes each word and each newline a pre-token). Counts by
    # hand (no end-of-word symbol): e-s and s-t tie at 9, so (e, s) wins as the smaller id pair; then
    # es-t (9), l-o and o-w tie at 7, lo-w (7); then n-e, e-w and w-est tie at 6 and (e, w) wins, though
    # n-e is seen first in the text (a first-seen or dict-order tie-break picks n-e here).
    text = "\n".join(["low"] * 5 + ["lower"] * 2 + ["newest"] * 6 + ["widest"] * 3)
    tokenizer = BPETokenizer()
    tokenizer.train(text, 256 + 12)
    e, s, t, o, w, n, d, i, r = map(ord, "estowndir")
    assert tokenizer.merges == [
        (e, s),  # 256 es (9)
        (256, t),  # 257 est (9)
        (ord("l"), o),  # 258 lo (7; ties with o-w)
        (258, w),  # 259 low (7)
        (e, w),  # 260 ew (6; ties with n-e and w-est)
        (n, 260),  # 261 new (6; ties with new-est)
        (261, 257),  # 262 newest (6)
        (d, 257),  # 263 dest (3; ties with w-i and i-d)
        (i, 263),  # 264 idest (3; ties with w-i)
        (w, 264),  # 265 widest (3)
        (e, r),  # 266 er (2; ties with low-e)
        (259, 266),  # 267 lower (2)
    ]
    assert tokenizer.merges == naive_bpe_merges(text, 12)
    assert tokenizer.encode("lowest newer") == [259, 257, 32, 261, 266]  # low|est| |new|er
    assert [tokenizer.vocab[i] for i in (259, 257, 261, 266)] == [b"low", b"est", b"new", b"er"]


@pytest.mark.parametrize("pattern", [GPT2_PATTERN, None])
def test_incremental_training_matches_naive_recount(pattern: str | None) -> None:
    text = TRAIN_TEXT[: len(TRAIN_TEXT) // 2]
    tokenizer = BPETokenizer(pattern)
    tokenizer.train(text, 256 + 120)
    assert tokenizer.merges == naive_bpe_merges(text, 120, pattern)


def test_encode_by_rank_matches_merges_in_training_order(gpt2_bpe: BPETokenizer,
                                                          whole_text_bpe: BPETokenizer) -> None:
    samples = [TRAIN_TEXT, "The cats sat on 2025 mats; the dogs didn't.", "Кошки спят 🐱🐱"]
    for tokenizer in (gpt2_bpe, whole_text_bpe):
        for text in samples:
            assert tokenizer.encode(text) == apply_merges_in_order(tokenizer, text)


def test_merges_stay_inside_pre_tokens(gpt2_bpe: BPETokenizer) -> None:
    # GPT-2's pattern keeps letters, digits and punctuation in separate pre-tokens, so no token mixes them.
    for token in gpt2_bpe.vocab.values():
        text = token.decode("utf-8", errors="ignore").strip()
        assert not (any(c.isalpha() for c in text) and any(c.isdigit() for c in text)), token


def test_training_compresses_and_untrained_is_one_byte_per_token(gpt2_bpe: BPETokenizer) -> None:
    assert BPETokenizer().compression_ratio("The cat sat on the mat.") == 1.0
    assert BPETokenizer().compression_ratio("猫") == pytest.approx(1 / 3)  # three UTF-8 bytes
    assert gpt2_bpe.compression_ratio(TRAIN_TEXT) > 2.0
    assert gpt2_bpe.compression_ratio("The cat sat on the mat.") > BPETokenizer().compression_ratio(
        "The cat sat on the mat.")


def test_training_stops_early_with_a_warning_when_no_pair_is_left() -> None:
    tokenizer = BPETokenizer()
    with pytest.warns(UserWarning, match=r"stopped at vocab_size 258 instead of 1000: no adjacent pair"):
        tokenizer.train("ab ab ab ab", 1000)  # pre-tokens "ab" and " ab": two merges, then nothing
    assert tokenizer.vocab_size == 258 and len(tokenizer.merges) == 2
    assert tokenizer.encode("ab ab") == [256, 257]
    with pytest.warns(UserWarning, match="stopped at vocab_size 256"):
        BPETokenizer().train("a", 300)  # a single byte: no pair at all


def test_retraining_replaces_merges(gpt2_bpe: BPETokenizer) -> None:
    tokenizer = BPETokenizer()
    tokenizer.train("zzzz zzzz", 258)
    tokenizer.train(TRAIN_TEXT, 400)
    assert tokenizer.merges == gpt2_bpe.merges
    assert tokenizer.encode(TRAIN_TEXT) == gpt2_bpe.encode(TRAIN_TEXT)


def test_verbose_prints_each_merge(capsys: pytest.CaptureFixture[str]) -> None:
    BPETokenizer(pattern=None).train("aaabdaaabac", 258, verbose=True)
    lines = capsys.readouterr().out.splitlines()
    assert lines == ["merge 1/2: (97, 97) -> 256 b'aa' (4 occurrences)",
                     "merge 2/2: (97, 98) -> 257 b'ab' (2 occurrences)"]


# ----------------------------------------------------------------------------------------------
# BPE: decode and save/load


def test_decode_replaces_invalid_utf8(gpt2_bpe: BPETokenizer) -> None:
    emoji = "😀".encode()  # four bytes
    assert gpt2_bpe.decode([emoji[0]]) == "\ufffd"
    assert gpt2_bpe.decode(list(emoji)) == "😀"
    assert gpt2_bpe.decode([]) == ""


def test_decode_accepts_numpy_and_torch_ids(gpt2_bpe: BPETokenizer) -> None:
    ids = gpt2_bpe.encode("The cat sat.")
    assert gpt2_bpe.decode(np.array(ids)) == gpt2_bpe.decode(torch.tensor(ids)) == "The cat sat."


@pytest.mark.parametrize("pattern", [GPT2_PATTERN, GPT4_PATTERN, None])
def test_save_load_round_trip(tmp_path: Path, pattern: str | None) -> None:
    tokenizer = BPETokenizer(pattern)
    tokenizer.train(TRAIN_TEXT, 300)
    path = tmp_path / "bpe.json"
    tokenizer.save(path)
    data = json.loads(path.read_text(encoding="utf-8"))
    assert data["pattern"] == pattern and len(data["merges"]) == 44
    loaded = BPETokenizer.load(path)
    assert loaded.pattern == pattern and loaded.merges == tokenizer.merges and loaded.vocab == tokenizer.vocab
    for text in [TRAIN_TEXT, "unseen words 🦜 ÿ"]:
        assert loaded.encode(text) == tokenizer.encode(text)


def test_save_load_without_merges(tmp_path: Path) -> None:
    path = tmp_path / "bytes.json"
    BPETokenizer().save(path)
    assert BPETokenizer.load(path).vocab_size == 256


@pytest.mark.parametrize("content, match", [
    ("not json", "not a JSON file"),
    ('{"merges": []}', "not a saved BPETokenizer"),
    ('{"type": "byte-level BPE", "pattern": null, "merges": [[97, 256]]}', r"merge 0 .* below 256"),
    ('{"type": "byte-level BPE", "pattern": null, "merges": [[97]]}', "merge 0"),
    ('{"type": "byte-level BPE", "merges": []}', "path must name its pre-tokenization pattern"),
    ('{"type": "byte-level BPE", "pattern": null, "merges": 5}', "merges in .* must be a list of"),
    ('{"type": "byte-level BPE", "pattern": null, "merges": [[97, 98], [99, 100], [97, 98]]}',
     r"merge 2 in .* repeats merge 0, got \[97, 98\]"),
])
def test_load_rejects_bad_files(tmp_path: Path, content: str, match: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ValueError, match=match):
        BPETokenizer.load(path)


# ----------------------------------------------------------------------------------------------
# BPE: bad inputs


def test_bpe_bad_inputs(gpt2_bpe: BPETokenizer) -> None:
    with pytest.raises(ValueError, match="text must be a non-empty str, got ''"):
        BPETokenizer().train("", 300)
    with pytest.raises(ValueError, match="vocab_size must be an integer >= 256, got 255"):
        BPETokenizer().train("abc", 255)
    with pytest.raises(TypeError, match="vocab_size must be an integer, got float 300.0"):
        BPETokenizer().train("abc", 300.0)
    with pytest.raises(TypeError, match="text must be a str, got bytes"):
        gpt2_bpe.encode(b"abc")
    with pytest.raises(ValueError, match="lone surrogate U\\+D800 at index 2"):
        gpt2_bpe.encode("ab\ud800c")
    with pytest.raises(ValueError, match="lone surrogate U\\+DFFF"):
        BPETokenizer().train("x\udfff", 300)
    with pytest.raises(ValueError, match=r"ids\[1\] = 400 is outside the vocabulary \(valid ids: 0..399\)"):
        gpt2_bpe.decode([1, 400])
    with pytest.raises(ValueError, match=r"ids\[0\] = -1"):
        gpt2_bpe.decode([-1])
    with pytest.raises(TypeError, match=r"ids\[1\] must be an integer, got str 'a'"):
        gpt2_bpe.decode([1, "a"])
    with pytest.raises(TypeError, match=r"ids\[0\] must be an integer, got float 1.0"):
        gpt2_bpe.decode([1.0])
    with pytest.raises(TypeError, match=r"ids\[0\] must be an integer, got True"):
        gpt2_bpe.decode([True])
    with pytest.raises(TypeError, match="ids must be an iterable of ints, got str"):
        gpt2_bpe.decode("abc")
    with pytest.raises(ValueError, match="text must be a non-empty str"):
        gpt2_bpe.compression_ratio("")


def test_bad_patterns() -> None:
    with pytest.raises(ValueError, match="pattern is not a valid regex"):
        BPETokenizer("(unclosed")
    with pytest.raises(ValueError, match="capturing groups"):
        BPETokenizer(r"(\w+)|\s+")
    with pytest.raises(TypeError, match="pattern must be a str or None, got int"):
        BPETokenizer(3)
    with pytest.raises(TypeError, match="n_merges must be an integer, got str '3'"):
        naive_bpe_merges("abc", "3")
    with pytest.raises(ValueError, match="n_merges must be a non-negative integer, got -1"):
        naive_bpe_merges("abc", -1)


def test_numpy_integers_as_sizes_and_ids(gpt2_bpe: BPETokenizer) -> None:
    text = "the cat sat on the mat, the cat ate"
    trained, expected = BPETokenizer(), BPETokenizer()
    trained.train(text, np.int64(262))
    expected.train(text, 262)
    assert trained.merges == expected.merges
    assert naive_bpe_merges(text, np.int64(3)) == naive_bpe_merges(text, 3)
    ids = gpt2_bpe.encode("a cat")
    assert gpt2_bpe.decode(np.array(ids)) == gpt2_bpe.decode(ids) == "a cat"
    assert gpt2_bpe.decode(torch.tensor(ids)) == "a cat"  # 0-d integer tensors, one per id
    words = WordLevelTokenizer()
    words.train("a b a c", np.int64(3))
    assert words.vocab_size == 3
    assert WordPieceTokenizer(max_input_chars_per_word=np.int64(5)).max_input_chars_per_word == 5


# ----------------------------------------------------------------------------------------------
# Word splitting and word-level tokenizer


def test_split_words() -> None:
    assert split_words("Don't panic: 42 ways!") == ["Don", "'", "t", "panic", ":", "42", "ways", "!"]
    assert split_words("  hindi हिन्दी\tok ") == ["hindi", "हिन्दी", "ok"]  # marks stay inside words
    assert split_words("我爱北京abc") == ["我", "爱", "北", "京", "abc"]  # one CJK ideograph per word
    assert split_words("") == []


def test_word_level_unknown_words_become_unk() -> None:
    tokenizer = WordLevelTokenizer()
    tokenizer.train("the cat sat on the mat. the cat. The", vocab_size=4)
    assert tokenizer.vocab == [UNK_TOKEN, "the", ".", "cat"]  # counts 3, 2, 2: ties in alphabetical order
    assert tokenizer.unk_id == 0
    assert tokenizer.tokenize("The dog sat.") == [UNK_TOKEN, UNK_TOKEN, UNK_TOKEN, "."]  # case-sensitive
    assert tokenizer.tokenize("the dog sat.") == ["the", UNK_TOKEN, UNK_TOKEN, "."]
    assert tokenizer.encode("the dog sat.") == [1, 0, 0, 2]
    assert tokenizer.decode([1, 3, 0, 2]) == "the cat [UNK] ."
    assert tokenizer.compression_ratio("the cat") == pytest.approx(7 / 2)


def test_word_level_given_vocab_and_small_text_warning() -> None:
    tokenizer = WordLevelTokenizer(["hello", UNK_TOKEN, "world"])
    assert tokenizer.unk_id == 1 and tokenizer.encode("hello, world") == [0, 1, 2]
    with pytest.warns(UserWarning, match="stopped at vocab_size 3 instead of 10: the text has only 2"):
        tokenizer.train("a b a", 10)
    assert tokenizer.vocab == [UNK_TOKEN, "a", "b"]


def test_word_level_bad_inputs() -> None:
    tokenizer = WordLevelTokenizer()
    with pytest.raises(ValueError, match="text must be a non-empty str"):
        tokenizer.train("", 10)
    with pytest.raises(ValueError, match="vocab_size must be a positive integer, got 0"):
        tokenizer.train("a b", 0)
    with pytest.raises(ValueError, match=r"vocab must contain '\[UNK\]'"):
        WordLevelTokenizer(["a", "b"])
    with pytest.raises(ValueError, match="must not repeat tokens"):
        WordLevelTokenizer([UNK_TOKEN, "a", "a"])
    with pytest.raises(TypeError, match="vocab must contain strs, got 3 at position 1"):
        WordLevelTokenizer([UNK_TOKEN, 3])
    with pytest.raises(ValueError, match="non-empty strs, got '' at position 1"):
        WordLevelTokenizer([UNK_TOKEN, ""])
    with pytest.raises(TypeError, match="vocab must be a sequence of str, got str"):
        WordLevelTokenizer("[UNK]")
    with pytest.raises(ValueError, match=r"ids\[0\] = 1 is outside"):
        tokenizer.decode([1])
    with pytest.raises(ValueError, match="lone surrogate"):
        tokenizer.encode("\ud800")
    with pytest.raises(ValueError, match="text produced no tokens"):
        tokenizer.compression_ratio("   ")


# ----------------------------------------------------------------------------------------------
# WordPiece


def test_wordpiece_textbook_example() -> None:
    # The example of BERT's WordpieceTokenizer docstring (google-research/bert, tokenization.py).
    tokenizer = WordPieceTokenizer([UNK_TOKEN, "un", "##aff", "##able"])
    assert tokenizer.tokenize("unaffable") == ["un", "##aff", "##able"]
    assert tokenizer.decode(tokenizer.encode("unaffable")) == "unaffable"


def test_wordpiece_is_greedy_longest_match_first() -> None:
    tokenizer = WordPieceTokenizer([UNK_TOKEN, "a", "ab", "abc", "##c", "##cd", "##d", "##bcd"])
    assert tokenizer.tokenize("abcd") == ["abc", "##d"]  # longest first piece wins, not "a ##bcd"
    assert tokenizer.tokenize("abd") == ["ab", "##d"]
    # Greedy does not backtrack: after "ab" nothing covers "e", although "a" + "##be" would (not here).
    tokenizer = WordPieceTokenizer([UNK_TOKEN, "a", "ab", "##be"])
    assert tokenizer.tokenize("abe") == [UNK_TOKEN]


def test_wordpiece_unseen_character_gives_unk_for_the_whole_word() -> None:
    tokenizer = WordPieceTokenizer([UNK_TOKEN, "cat", "##s", "d", "##og"])
    assert tokenizer.tokenize("cats dogs") == ["cat", "##s", "d", "##og", "##s"]
    assert tokenizer.tokenize("cats dogé cat") == ["cat", "##s", UNK_TOKEN, "cat"]  # é is unseen
    assert tokenizer.tokenize("dog🐶") == ["d", "##og", UNK_TOKEN]  # a symbol is a word of its own
    assert tokenizer.encode("cat ç") == [1, tokenizer.unk_id]


def test_wordpiece_long_words_become_unk() -> None:
    tokenizer = WordPieceTokenizer([UNK_TOKEN, "a", "##a"], max_input_chars_per_word=5)
    assert tokenizer.tokenize("aaaaa aaaaaa") == ["a", "##a", "##a", "##a", "##a", UNK_TOKEN]
    assert WordPieceTokenizer().max_input_chars_per_word == 100


def test_wordpiece_training_uses_the_likelihood_score() -> None:
    # Words "xy" x 1, "ac" x 10, "ad" x 10, "ca" x 3. Symbol counts: x 1, ##y 1, a 20, ##c 10, ##d 10,
    # c 3, ##a 3. Scores freq(ab) / (freq(a) * freq(b)): (x, ##y) 1/(1*1) = 1, (c, ##a) 3/(3*3) = 0.33,
    # (a, ##c) = (a, ##d) = 10/(20*10) = 0.05. Counting pairs, as BPE does, would merge (a, ##c) first.
    text = "xy " + "ac " * 10 + "ad " * 10 + "ca " * 3
    tokenizer = WordPieceTokenizer()
    tokenizer.train(text, vocab_size=10)
    assert tokenizer.vocab == [UNK_TOKEN, "##a", "##c", "##d", "##y", "a", "c", "x", "xy", "ca"]
    tokenizer.train(text, vocab_size=11)  # the tie between (a, ##c) and (a, ##d) goes to the smaller pair
    assert tokenizer.vocab[10] == "ac"


def test_wordpiece_training_round_trip_and_growth() -> None:
    tokenizer = WordPieceTokenizer()
    tokenizer.train(TRAIN_TEXT, vocab_size=150)
    assert tokenizer.vocab_size == 150 and len(set(tokenizer.vocab)) == 150
    words = split_words(TRAIN_TEXT)
    assert tokenizer.decode(tokenizer.encode(" ".join(words))) == " ".join(words)
    assert UNK_TOKEN not in tokenizer.tokenize(TRAIN_TEXT)
    assert tokenizer.tokenize("cat🦜") == ["cat", UNK_TOKEN]  # unseen character
    # Merged pieces shorten the sequence compared with the characters alone ([UNK] + the alphabet).
    n_chars = sum(len(token.removeprefix("##")) == 1 for token in tokenizer.vocab)
    characters_only = WordPieceTokenizer(tokenizer.vocab[: 1 + n_chars])
    assert characters_only.tokenize("The cat") == ["T", "##h", "##e", "c", "##a", "##t"]
    assert tokenizer.compression_ratio(TRAIN_TEXT) > 1.5 * characters_only.compression_ratio(TRAIN_TEXT)


def test_wordpiece_training_stops_early_and_bad_inputs() -> None:
    tokenizer = WordPieceTokenizer()
    with pytest.warns(UserWarning, match="WordPiece training stopped at vocab_size 4 instead of 50"):
        tokenizer.train("ab ab", 50)  # [UNK] ##b a, then "ab": no pair left
    assert tokenizer.vocab == [UNK_TOKEN, "##b", "a", "ab"]
    with pytest.raises(ValueError, match="vocab_size must be an integer >= 3, got 2"):
        tokenizer.train("ab ab", 2)
    with pytest.raises(ValueError, match="text must contain at least one word"):
        tokenizer.train("   ", 10)
    with pytest.raises(ValueError, match="text must be a non-empty str"):
        tokenizer.train("", 10)
    with pytest.raises(TypeError, match="max_input_chars_per_word must be an integer, got float 1.5"):
        WordPieceTokenizer(max_input_chars_per_word=1.5)
    with pytest.raises(ValueError, match="max_input_chars_per_word must be a positive integer, got 0"):
        WordPieceTokenizer(max_input_chars_per_word=0)
    with pytest.raises(TypeError, match=r"ids\[0\] must be an integer, got str 'ab'"):
        tokenizer.decode(["ab"])


# ----------------------------------------------------------------------------------------------
# EncoderTokenizer: BERT's special tokens after a byte-level BPE


@pytest.fixture(scope="module")
def encoder_tokenizer() -> EncoderTokenizer:
    bpe = BPETokenizer()
    bpe.train("Rozi lives in Pominport. She has a pet cat. Rozi likes the colour red.\n" * 3, 280)
    return EncoderTokenizer(bpe)


def test_special_tokens_follow_the_bpe_ids(encoder_tokenizer):
    t, n = encoder_tokenizer, encoder_tokenizer.bpe.vocab_size
    assert t.special_ids == (t.cls_id, t.sep_id, t.mask_id, t.pad_id) == (n, n + 1, n + 2, n + 3)
    assert t.vocab_size == n + 4
    assert t.token_strings(t.special_ids) == list(SPECIAL_TOKENS)


def test_pack_builds_bert_pairs_with_segment_ids(encoder_tokenizer):
    t = encoder_tokenizer
    a, b = t.encode("Rozi lives in Pominport."), t.encode("She has a pet cat.")
    ids, segments = t.pack(a, b)
    assert ids == [t.cls_id, *a, t.sep_id, *b, t.sep_id]
    assert segments == [0] * (len(a) + 2) + [1] * (len(b) + 1)
    assert t.decode(ids) == "[CLS] Rozi lives in Pominport. [SEP] She has a pet cat. [SEP]"
    assert t.pack(a) == ([t.cls_id, *a, t.sep_id], [0] * (len(a) + 2))
    assert t.pack([t.mask_id])[0] == [t.cls_id, t.mask_id, t.sep_id]
    with pytest.raises(ValueError, match=r"second must hold BPE ids and \[MASK\] only, got \[SEP\]"):
        t.pack(a, [t.sep_id])
    with pytest.raises(ValueError, match=r"first must hold ids in \[0, "):
        t.pack([t.vocab_size])


def test_a_word_is_the_same_token_wherever_it_stands(encoder_tokenizer):
    t = encoder_tokenizer
    first, inside = t.encode("Rozi lives in Pominport."), t.encode("She has a pet cat. Rozi likes the colour red.")
    assert first[0] in inside and t.decode(first) == "Rozi lives in Pominport."
    joined = t.encode("Rozi lives in Pominport. She has a pet cat.")
    assert joined == first + t.encode("She has a pet cat.")  # sentence by sentence == the whole text
    with pytest.raises(ValueError, match="bpe must be a BPETokenizer"):
        EncoderTokenizer("not a tokenizer")


def test_encoder_tokenizer_is_a_tokenizer(encoder_tokenizer):
    t = encoder_tokenizer
    assert isinstance(t, Tokenizer)
    text = "Rozi likes the colour red."
    assert t.decode(t.encode(text)) == text
    assert t.encode(text) == t.bpe.encode(" " + text)  # the ids the zoo's encoder was trained on
    assert t.compression_ratio(text) == len(text) / len(t.encode(text))  # inherited from Tokenizer


# ----------------------------------------------------------------------------------------------
# Measuring out-of-vocabulary words


def test_unk_rate_counts_occurrences_of_words_outside_the_vocabulary():
    tokenizer = WordLevelTokenizer([UNK_TOKEN, "the", "cat", "sat"])
    words = {"the": 5, "cat": 2, "dog": 2, "Qorvath": 1}
    assert unk_rate(tokenizer, words) == pytest.approx(3 / 10)  # dog twice and Qorvath once, of 10
    pieces = WordPieceTokenizer([UNK_TOKEN, "d", "##o", "##g", "c", "##a", "##t"])
    assert unk_rate(pieces, {"dog": 3, "cat": 1, "cow": 4}) == pytest.approx(4 / 8)  # only "cow" cannot be spelled


def test_nested_unk_rates_equal_tokenizers_built_on_each_prefix():
    text = "a a a a b b b c c d e " * 3
    tokenizer = WordLevelTokenizer()
    tokenizer.train(text, vocab_size=6)
    held_out = {"a": 4, "b": 3, "c": 2, "e": 1, "z": 2}
    rates = nested_unk_rates(tokenizer, held_out, [1, 2, 3, 6])
    by_hand = []
    for k in [1, 2, 3, 6]:  # the reference: the known words of each prefix, counted directly
        known = set(tokenizer.vocab[:k]) - {UNK_TOKEN}
        by_hand.append(sum(n for w, n in held_out.items() if w not in known) / 12)
    assert rates == pytest.approx(by_hand)
    assert rates == sorted(rates, reverse=True) and rates[0] == 1.0


def test_wordpiece_spells_accepts_every_valid_segmentation_and_nothing_else():
    vocab = {UNK_TOKEN, "un", "##aff", "##able", "una", "##ff", "u", "##n"}
    assert wordpiece_spells("unaffable", ["un", "##aff", "##able"], vocab)
    assert wordpiece_spells("unaffable", ["una", "##ff", "##able"], vocab)  # not greedy's, still valid
    assert wordpiece_spells("unaffable", ["u", "##n", "##aff", "##able"], vocab)
    assert not wordpiece_spells("unaffable", ["un", "aff", "##able"], vocab)  # a later piece without ##
    assert not wordpiece_spells("unaffable", ["##un", "##aff", "##able"], vocab)  # first piece marked
    assert not wordpiece_spells("unaffable", ["un", "##able"], vocab)  # spells another word
    assert not wordpiece_spells("unaffable", ["un", "##affa", "##ble"], vocab)  # not vocabulary pieces
    assert not wordpiece_spells("unaffable", [], vocab) and not wordpiece_spells("unaffable", [UNK_TOKEN], vocab)
    tokenizer = WordPieceTokenizer(sorted(vocab))
    assert wordpiece_spells("unaffable", tokenizer.tokenize("unaffable"), vocab)  # greedy's answer qualifies


@pytest.mark.parametrize("text", ["naïve", "🦜 ሰላም", "Tusos felt", "x"])
def test_byte_fallback_text_decodes_runs_of_byte_tokens(text):
    tokens = ["Tu", "##sos"] + [f"<0x{b:02X}>" for b in text.encode("utf-8")] + ["end"]
    assert all(map(is_byte_token, tokens[2:-1])) and not any(map(is_byte_token, ["Tu", "##sos", "end"]))
    assert byte_fallback_text(tokens) == "Tusos" + text + "end"
    assert byte_fallback_text([f"<0x{b:02X}>" for b in text.encode("utf-8")]) == text  # a run at the very end
    assert byte_fallback_text(["<0xC3>", "a"]) == "\ufffda"  # a cut UTF-8 sequence is replaced, not dropped
    assert not is_byte_token("<0xe1>") and not is_byte_token("<0xE1") and not is_byte_token("0xE1")


@pytest.mark.parametrize("call, error, message", [
    (lambda: unk_rate(WordLevelTokenizer([UNK_TOKEN]), {"a": 0}), ValueError, "words must count at least one"),
    (lambda: unk_rate(WordLevelTokenizer([UNK_TOKEN]), ["a"]), TypeError, "words must map words"),
    (lambda: unk_rate(WordLevelTokenizer([UNK_TOKEN]), {"a": -1}), ValueError, "words\\['a'\\] must be"),
    (lambda: unk_rate("tokenizer", {"a": 1}), TypeError, "tokenizer must be a word-level or WordPiece"),
    (lambda: nested_unk_rates(BPETokenizer(), {"a": 1}, [1]), TypeError, "tokenizer must be a WordLevelTokenizer"),
    (lambda: nested_unk_rates(WordLevelTokenizer([UNK_TOKEN, "a"]), {"a": 1}, [3]), ValueError, "sizes must be"),
    (lambda: nested_unk_rates(WordLevelTokenizer(["a", UNK_TOKEN]), {"a": 1}, [1]), ValueError,
     "sizes must keep '\\[UNK\\]'"),
    (lambda: wordpiece_spells("a", "a", {"a"}), TypeError, "pieces must be a sequence of str"),
    (lambda: wordpiece_spells("a", ["a"], ["a"]), TypeError, "vocab must be a set of str"),
    (lambda: wordpiece_spells("", ["a"], {"a"}), ValueError, "word must be a non-empty str"),
    (lambda: byte_fallback_text("<0x41>"), TypeError, "tokens must be a sequence of str"),
    (lambda: is_byte_token(65), TypeError, "token must be a str, got int"),
])
def test_oov_measures_reject_bad_input(call, error, message):
    with pytest.raises(error, match=message):
        call()
