"""Tests for course_lib.tokenization: special tokens of the byte-level BPE (register, encode, decode, save).

The reference semantics are minbpe's RegexTokenizer and tiktoken: special tokens are cut out of the
text before pre-tokenization, only when ``allowed_special`` allows them, and never merged.
"""

from __future__ import annotations

import functools
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from course_lib.checkpoints import checkpoint_dir
from course_lib.datasets import load_corpus
from course_lib.tokenization import GPT2_PATTERN, GPT4_PATTERN, BPETokenizer

TRAIN_TEXT = ("The cat sat on the mat. The dog sat on the log! Where is the cat? It's on the mat.\n"
              "Hello world. Hello there, world!\n") * 4
EOT = "<|endoftext|>"


@pytest.fixture()
def bpe() -> BPETokenizer:
    tokenizer = BPETokenizer()
    tokenizer.train(TRAIN_TEXT, 280)
    return tokenizer


@pytest.fixture()
def bpe_eot(bpe: BPETokenizer) -> BPETokenizer:
    bpe.register_special_tokens({EOT: 280, "<|pad|>": 281})
    return bpe


# ----------------------------------------------------------------------------------------------
# Encoding: the four allowed_special modes


def test_special_token_next_to_text_in_every_mode(bpe_eot: BPETokenizer) -> None:
    text = EOT + "Hello"
    hello, as_text = bpe_eot.encode("Hello"), bpe_eot.encode(EOT, allowed_special="none")
    assert bpe_eot.encode(text, allowed_special="all") == [280, *hello]
    assert bpe_eot.encode(text, allowed_special={EOT}) == [280, *hello]
    assert bpe_eot.encode(text, allowed_special="none") == as_text + hello
    assert bpe_eot.encode(text, allowed_special={"<|pad|>"}) == as_text + hello  # not allowed: plain text
    assert bpe_eot.encode(text, allowed_special=frozenset()) == as_text + hello
    assert 280 not in as_text and len(as_text) > 1
    with pytest.raises(ValueError, match=r"text contains the special token '<\|endoftext\|>' at index 0; "
                                         r"pass allowed_special='all'"):
        bpe_eot.encode(text)  # "none_raise" is the default
    with pytest.raises(ValueError, match=r"'<\|pad\|>' at index 3"):
        bpe_eot.encode("ab <|pad|> c <|endoftext|>", allowed_special="none_raise")


def test_special_tokens_are_cut_out_before_pre_tokenization(bpe_eot: BPETokenizer) -> None:
    text = "Hello world<|endoftext|> The cat<|pad|><|endoftext|>sat"
    ids = bpe_eot.encode(text, allowed_special="all")
    pieces = ["Hello world", " The cat", "sat"]
    assert ids == [*bpe_eot.encode(pieces[0]), 280, *bpe_eot.encode(pieces[1]), 281, 280, *bpe_eot.encode(pieces[2])]
    assert bpe_eot.decode(ids) == text


def test_the_longest_special_token_wins_where_two_overlap(bpe: BPETokenizer) -> None:
    bpe.register_special_tokens({"<|a|>": 280, "<|a|>b": 281})
    assert bpe.encode("<|a|>b<|a|>", allowed_special="all") == [281, 280]
    assert bpe.encode("<|a|>b", allowed_special={"<|a|>"}) == [280, *bpe.encode("b")]


@functools.cache
def gpt4_bpe_with_specials() -> BPETokenizer:
    tokenizer = BPETokenizer(GPT4_PATTERN)
    tokenizer.train(TRAIN_TEXT, 270)
    tokenizer.register_special_tokens({EOT: 270, "<|pad|>": 271})
    return tokenizer


@settings(max_examples=100, deadline=None)
@given(st.lists(st.one_of(st.text(st.characters(exclude_categories=("Cs",)), max_size=6),
                          st.sampled_from([EOT, "<|pad|>", "<|", "|>", "Hello"])), max_size=8))
def test_round_trip_with_special_tokens(pieces: list[str]) -> None:
    tokenizer = gpt4_bpe_with_specials()
    text = "".join(pieces)
    for mode in ("all", "none", {EOT}):
        ids = tokenizer.encode(text, allowed_special=mode)
        assert tokenizer.decode(ids) == text
    assert tokenizer.encode(text, allowed_special="all").count(270) == text.count(EOT)


def test_text_without_special_tokens_encodes_as_before(bpe: BPETokenizer) -> None:
    before = {text: bpe.encode(text) for text in [TRAIN_TEXT, "", "unseen 🦜 words", "<|endof"]}
    bpe.register_special_tokens({EOT: 280})
    for text, ids in before.items():
        for mode in ("none_raise", "none", "all", {EOT}, set()):
            assert bpe.encode(text, allowed_special=mode) == ids


def test_corpus_ids_are_those_of_the_implementation_without_special_tokens() -> None:
    # Recorded with the shipped tokenizer before special tokens existed: the first validation
    # document's ids, and the number and SHA-256 of the ids of the first 200 documents.
    tokenizer = BPETokenizer.load(checkpoint_dir() / "tiny_gpt_tokenizer.json")
    documents = load_corpus("val")[:200]
    first = [90, 448, 339, 285, 367, 46, 320, 333, 332, 284, 32, 403, 100, 46, 320, 257, 300, 348, 349, 438, 46]
    digest = "22ca04a389ec291b8b34c65edf4c6dac32bc11769960407973c637684534810b"
    for special in ({}, {EOT: 512}):
        tokenizer.register_special_tokens(special)
        ids = [tokenizer.encode(d) for d in documents]
        assert ids[0] == first
        assert sum(map(len, ids)) == 5843
        assert hashlib.sha256(json.dumps(ids).encode()).hexdigest() == digest


# ----------------------------------------------------------------------------------------------
# Registering: ids, collisions, vocab_size, decode


def test_vocab_size_counts_special_tokens_and_decode_renders_them(bpe: BPETokenizer) -> None:
    assert bpe.vocab_size == 280
    bpe.register_special_tokens({EOT: 280})
    assert bpe.vocab_size == 281 and bpe.special_tokens == {EOT: 280}
    assert bpe.decode([280]) == EOT and bpe.decode(np.array([72, 280])) == "H" + EOT
    bpe.register_special_tokens({EOT: 290, "<|pad|>": 285})  # replaces; a gap after the merges, as in cl100k
    assert bpe.vocab_size == 291 and bpe.special_tokens == {EOT: 290, "<|pad|>": 285}
    assert bpe.decode([285, 290]) == "<|pad|>" + EOT
    with pytest.raises(ValueError, match=r"ids\[1\] = 280 is in the gap between the merges and the special"):
        bpe.decode([285, 280])
    with pytest.raises(ValueError, match=r"ids\[0\] = 291 is outside the vocabulary \(valid ids: 0..290\)"):
        bpe.decode([291])
    bpe.register_special_tokens({})
    assert bpe.vocab_size == 280 and bpe.special_tokens == {} and 290 not in bpe.vocab


def test_special_tokens_property_is_a_copy(bpe_eot: BPETokenizer) -> None:
    bpe_eot.special_tokens["<|x|>"] = 5
    assert bpe_eot.special_tokens == {EOT: 280, "<|pad|>": 281}


@pytest.mark.parametrize("tokens, error, match", [
    ({EOT: 279}, ValueError, r"the id of special token '<\|endoftext\|>' must not collide with the vocabulary "
                             r"\(ids 0..279 are bytes and merges\), got 279"),
    ({EOT: 65}, ValueError, "must not collide with the vocabulary"),
    ({EOT: 280, "<|pad|>": 280}, ValueError, r"distinct ids, got 280 for both '<\|endoftext\|>' and '<\|pad\|>'"),
    ({EOT: -1}, ValueError, "must not collide"),
    ({EOT: 280.0}, TypeError, r"the id of special token '<\|endoftext\|>' must be an integer, got float 280.0"),
    ({EOT: True}, TypeError, "must be an integer, got True"),
    ({"": 280}, ValueError, "a special token must be a non-empty str, got ''"),
    ({5: 280}, TypeError, "a special token must be a str, got int"),
    ([(EOT, 280)], TypeError, "tokens must be a dict of str -> int, got list"),
])
def test_register_rejects_collisions_and_bad_values(bpe_eot: BPETokenizer, tokens: object, error: type,
                                                    match: str) -> None:
    with pytest.raises(error, match=match):
        bpe_eot.register_special_tokens(tokens)
    assert bpe_eot.special_tokens == {EOT: 280, "<|pad|>": 281}  # a failed call changes nothing


def test_register_accepts_numpy_ids(bpe: BPETokenizer) -> None:
    bpe.register_special_tokens({EOT: np.int64(280)})
    assert bpe.special_tokens == {EOT: 280} and type(bpe.special_tokens[EOT]) is int


def test_bad_allowed_special(bpe_eot: BPETokenizer) -> None:
    with pytest.raises(ValueError, match="allowed_special must be one of 'all', 'none', 'none_raise'; got 'some'"):
        bpe_eot.encode("Hello", allowed_special="some")
    with pytest.raises(TypeError, match="allowed_special must be 'all', 'none', 'none_raise' or a set of "
                                        "special tokens, got list"):
        bpe_eot.encode("Hello", allowed_special=[EOT])
    with pytest.raises(ValueError,
                       match=r"allowed_special must hold registered special tokens .*, got \['<\|eot\|>'\]"):
        bpe_eot.encode("Hello", allowed_special={"<|eot|>"})


def test_training_keeps_special_tokens_and_leaves_their_ids_free(bpe_eot: BPETokenizer) -> None:
    with pytest.raises(ValueError, match=r"vocab_size must leave the special token ids free \(the merges would "
                                         r"take ids up to 280, and '<\|endoftext\|>' has id 280\), got 281"):
        bpe_eot.train(TRAIN_TEXT, 281)
    bpe_eot.train(TRAIN_TEXT, 280)
    assert bpe_eot.vocab_size == 282 and bpe_eot.decode([280]) == EOT
    assert bpe_eot.encode(EOT + "Hello", allowed_special="all")[0] == 280
    with pytest.raises(ValueError, match="must not collide"):
        bpe_eot.register_special_tokens({EOT: 279})


# ----------------------------------------------------------------------------------------------
# Save and load


@pytest.mark.parametrize("pattern", [GPT2_PATTERN, None])
def test_save_load_keeps_special_tokens(tmp_path: Path, bpe_eot: BPETokenizer, pattern: str | None) -> None:
    tokenizer = BPETokenizer(pattern)
    tokenizer.train(TRAIN_TEXT, 280)
    tokenizer.register_special_tokens({EOT: 282, "<|pad|>": 280})
    path = tmp_path / "bpe.json"
    tokenizer.save(path)
    assert json.loads(path.read_text(encoding="utf-8"))["special_tokens"] == {EOT: 282, "<|pad|>": 280}
    loaded = BPETokenizer.load(path)
    assert loaded.special_tokens == tokenizer.special_tokens and loaded.vocab == tokenizer.vocab
    text = "Hello<|pad|> world" + EOT
    assert loaded.encode(text, allowed_special="all") == tokenizer.encode(text, allowed_special="all")
    assert loaded.vocab_size == 283


def test_a_file_without_special_tokens_is_unchanged(tmp_path: Path, bpe: BPETokenizer) -> None:
    path = tmp_path / "bpe.json"
    bpe.save(path)
    assert "special_tokens" not in json.loads(path.read_text(encoding="utf-8"))
    assert BPETokenizer.load(path).special_tokens == {}


@pytest.mark.parametrize("name", ["tiny_gpt_tokenizer.json", "tiny_encoder_tokenizer.json"])
def test_shipped_tokenizers_load_and_save_byte_identical(tmp_path: Path, name: str) -> None:
    tokenizer = BPETokenizer.load(checkpoint_dir() / name)
    assert tokenizer.special_tokens == {}
    tokenizer.save(tmp_path / name)
    assert (tmp_path / name).read_bytes() == (checkpoint_dir() / name).read_bytes()


@pytest.mark.parametrize("special, match", [
    ('{"<|endoftext|>": 97}', r"special_tokens in .*: the id of special token '<\|endoftext\|>' must not collide"),
    ('{"a": 256, "b": 256}', r"special_tokens in .*: special tokens must have distinct ids"),
    ('[["<|endoftext|>", 256]]', r"special_tokens in .* must map strings to int ids"),
    ('{"<|endoftext|>": true}', r"special_tokens in .* must map strings to int ids"),
    ('{"<|endoftext|>": 256.0}', r"special_tokens in .* must map strings to int ids"),
    ('{"": 256}', r"special_tokens in .*: a special token must be a non-empty str"),
])
def test_load_rejects_bad_special_tokens(tmp_path: Path, special: str, match: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(f'{{"type": "byte-level BPE", "pattern": null, "merges": [], "special_tokens": {special}}}',
                    encoding="utf-8")
    with pytest.raises(ValueError, match=match):
        BPETokenizer.load(path)
