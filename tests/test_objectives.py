"""Tests for course_lib.objectives: BERT masking rates, NSP and SOP pair construction, and BERT's
pretraining data for the zoo's encoder (sentences, packed pairs, masking of packed ids, the two losses)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from course_lib.datasets import load_corpus
from course_lib.losses import IGNORE_INDEX, cross_entropy
from course_lib.objectives import (
    IN_ORDER,
    IS_NEXT,
    NOT_NEXT,
    SWAPPED,
    SegmentPair,
    make_nsp_pairs,
    make_pair_batch,
    make_sop_pairs,
    mask_for_mlm,
    mlm_mask,
    pack_pairs,
    pretraining_losses,
    sentence_ids,
    split_sentences,
)

PAD, CLS, SEP, MASK = 0, 1, 2, 3
SPECIAL = (PAD, CLS, SEP)
V = 500


def batch(rows: int, length: int, seed: int = 0) -> torch.Tensor:
    """Token ids framed like BERT inputs: [CLS] ... [SEP] followed by some padding."""
    ids = torch.randint(4, V, (rows, length), generator=torch.Generator().manual_seed(seed))
    ids[:, 0] = CLS
    ids[:, -4] = SEP
    ids[:, -3:] = PAD
    return ids


def within_binomial(count: int, n: int, p: float, sds: float = 5.0) -> bool:
    """count is within `sds` standard deviations of Binomial(n, p)'s mean."""
    return abs(count - n * p) <= sds * math.sqrt(n * p * (1 - p))


def test_masking_fractions_follow_bert():
    ids = batch(400, 250)  # 100,000 positions
    inputs, labels = mlm_mask(ids, V, MASK, SPECIAL, p=0.15, generator=torch.Generator().manual_seed(1))
    candidates = ~torch.isin(ids, torch.tensor(SPECIAL))
    selected = labels != IGNORE_INDEX
    n_candidates, n_selected = int(candidates.sum()), int(selected.sum())
    assert within_binomial(n_selected, n_candidates, 0.15)
    masked = int((selected & (inputs == MASK)).sum())
    changed = int((selected & (inputs != MASK) & (inputs != ids)).sum())
    kept = int((selected & (inputs == ids)).sum())
    n_ordinary = V - 4  # a random draw returns the original token with probability 1/n_ordinary
    assert within_binomial(masked, n_selected, 0.8)
    assert within_binomial(changed, n_selected, 0.1 * (1 - 1 / n_ordinary))
    assert within_binomial(kept, n_selected, 0.1 + 0.1 / n_ordinary)


@pytest.mark.parametrize("p", [0.05, 0.5])
def test_other_selection_rates(p):
    ids = batch(100, 100, seed=2)
    _, labels = mlm_mask(ids, V, MASK, SPECIAL, p=p, generator=torch.Generator().manual_seed(3))
    n_candidates = int((~torch.isin(ids, torch.tensor(SPECIAL))).sum())
    assert within_binomial(int((labels != IGNORE_INDEX).sum()), n_candidates, p)


def test_labels_inputs_and_special_positions():
    ids = batch(50, 40, seed=4)
    original = ids.clone()
    inputs, labels = mlm_mask(ids, V, MASK, SPECIAL, generator=torch.Generator().manual_seed(5))
    assert torch.equal(ids, original)  # the input is not modified
    assert inputs.shape == labels.shape == ids.shape and inputs.dtype == ids.dtype
    selected = labels != IGNORE_INDEX
    assert torch.equal(labels[selected], ids[selected])  # the label is the original token
    assert torch.all(labels[~selected] == IGNORE_INDEX)
    assert torch.equal(inputs[~selected], ids[~selected])  # unselected positions are untouched
    special_positions = torch.isin(ids, torch.tensor(SPECIAL))
    assert not selected[special_positions].any()
    replaced = selected & (inputs != MASK)
    assert not torch.isin(inputs[replaced], torch.tensor((*SPECIAL, MASK))).any()  # random draws are ordinary


def test_random_replacements_are_never_special_even_in_a_tiny_vocabulary():
    # V=6 with 4 special ids: a draw from the whole vocabulary would be special 2 times in 3.
    ids = torch.full((10_000,), 4)
    ids[1::2] = 5
    inputs, labels = mlm_mask(ids, 6, 3, (0, 1, 2), p=0.5, generator=torch.Generator().manual_seed(13))
    replaced = (labels != IGNORE_INDEX) & (inputs != 3)
    assert int(replaced.sum()) > 500
    assert torch.isin(inputs[replaced], torch.tensor([4, 5])).all()


@pytest.mark.parametrize("dtype", [torch.int32, torch.int16, torch.uint8])
def test_mlm_mask_needs_long_ids(dtype):
    with pytest.raises(TypeError, match=f"ids must be a LongTensor .* got {dtype}"):
        mlm_mask(torch.tensor([4, 5, 6], dtype=dtype), V, MASK, SPECIAL)


def test_mask_id_counts_as_special_even_if_unlisted():
    ids = torch.full((2000,), MASK)
    ids[::2] = 10
    inputs, labels = mlm_mask(ids, V, MASK, special_ids=(), generator=torch.Generator().manual_seed(6))
    assert not (labels[1::2] != IGNORE_INDEX).any()


def test_mlm_mask_reproducible_with_generator():
    ids = batch(10, 30, seed=7)
    a = mlm_mask(ids, V, MASK, SPECIAL, generator=torch.Generator().manual_seed(8))
    b = mlm_mask(ids, V, MASK, SPECIAL, generator=torch.Generator().manual_seed(8))
    c = mlm_mask(ids, V, MASK, SPECIAL, generator=torch.Generator().manual_seed(9))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[1], c[1])


def test_mlm_loss_counts_only_selected_positions():
    ids = batch(4, 20, seed=10)
    _, labels = mlm_mask(ids, V, MASK, SPECIAL, p=0.3, generator=torch.Generator().manual_seed(11))
    logits = torch.randn(4, 20, V, generator=torch.Generator().manual_seed(12), dtype=torch.float64)
    selected = labels != IGNORE_INDEX
    expected = -torch.log_softmax(logits, -1)[selected, labels[selected]].mean()
    torch.testing.assert_close(cross_entropy(logits, labels), expected)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"p": 0.0}, r"p must be in \(0, 1\), got 0"),
        ({"p": 1.0}, r"p must be in \(0, 1\), got 1"),
        ({"p": 1.5}, r"got 1.5"),
        ({"ids": torch.tensor([5, V])}, r"ids must lie in \[0, vocab_size\) = \[0, 500\), got values in \[5, 500\]"),
        ({"mask_id": V}, r"mask_id must be an integer in \[0, 499\], got 500"),
        ({"special_ids": (0, -1)}, r"special_ids\[1\] must be an integer in \[0, 499\], got -1"),
        ({"vocab_size": 0}, "vocab_size must be a positive integer, got 0"),
        ({"vocab_size": 4, "ids": torch.tensor([0, 1])}, "every id is special"),
    ],
)
def test_mlm_mask_bad_input(kwargs, message):
    args = {"ids": torch.tensor([4, 5, 6]), "vocab_size": V, "mask_id": MASK, "special_ids": SPECIAL} | kwargs
    with pytest.raises(ValueError, match=message):
        mlm_mask(**args)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"ids": torch.zeros(3)}, r"ids must be a LongTensor \(torch.long\) of token ids, got torch.float32"),
        ({"ids": [4, 5, 6]}, r"ids must be a LongTensor \(torch.long\) of token ids, got list"),
        ({"p": "0.15"}, "p must be a real number, got str"),
        ({"mask_id": 3.0}, "mask_id must be an integer, got float 3.0"),
        ({"special_ids": (0, True)}, r"special_ids\[1\] must be an integer, got True"),
        ({"vocab_size": 500.0}, "vocab_size must be an integer, got float 500.0"),
    ],
)
def test_mlm_mask_wrong_types(kwargs, message):
    args = {"ids": torch.tensor([4, 5, 6]), "vocab_size": V, "mask_id": MASK, "special_ids": SPECIAL} | kwargs
    with pytest.raises(TypeError, match=message):
        mlm_mask(**args)


def test_mlm_mask_takes_numpy_integers():
    ids = batch(4, 30, seed=21)
    special = [np.int64(s) for s in SPECIAL]
    a = mlm_mask(ids, np.int64(V), np.int64(MASK), special, generator=torch.Generator().manual_seed(22))
    b = mlm_mask(ids, V, MASK, SPECIAL, generator=torch.Generator().manual_seed(22))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def corpus(n_docs: int = 300, seed: int = 0) -> list[list[str]]:
    """Documents of 2..9 sentences named 'd<doc>s<sentence>', so every sentence can be traced back."""
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(2, 10, (n_docs,), generator=g).tolist()
    return [[f"d{d}s{i}" for i in range(n)] for d, n in enumerate(lengths)]


def is_contiguous_span(sentences: list[str], doc: list[str]) -> bool:
    start = doc.index(sentences[0])
    return doc[start:start + len(sentences)] == sentences


def test_nsp_pairs_balanced_and_built_as_documented():
    docs = corpus()
    pairs = make_nsp_pairs(docs, generator=torch.Generator().manual_seed(1))
    assert all(isinstance(pair, SegmentPair) for pair in pairs)
    assert within_binomial(sum(pair.label == NOT_NEXT for pair in pairs), len(pairs), 0.5)
    for pair in pairs:
        a_doc, b_doc = pair.documents
        assert is_contiguous_span(pair.first, docs[a_doc]) and is_contiguous_span(pair.second, docs[b_doc])
        assert 2 <= len(pair.first) + len(pair.second) <= 4
        if pair.label == IS_NEXT:
            assert a_doc == b_doc and is_contiguous_span(pair.first + pair.second, docs[a_doc])
        else:
            assert a_doc != b_doc
    assert any(len(pair.first) > 1 for pair in pairs) and any(len(pair.second) > 1 for pair in pairs)


def test_nsp_negatives_drawn_uniformly_from_the_other_documents():
    docs = [[f"d{d}s{i}" for i in range(800)] for d in range(3)]
    pairs = make_nsp_pairs(docs, generator=torch.Generator().manual_seed(5))
    negatives = [pair.documents for pair in pairs if pair.label == NOT_NEXT]
    for d in range(3):
        sources = [other for first, other in negatives if first == d]
        assert d not in sources
        assert within_binomial(sources.count((d + 1) % 3), len(sources), 0.5)


def test_nsp_negatives_start_at_a_uniform_position():
    docs = [[f"d{d}s{i}" for i in range(800)] for d in range(3)]
    pairs = make_nsp_pairs(docs, generator=torch.Generator().manual_seed(6))
    negatives = [pair for pair in pairs if pair.label == NOT_NEXT]
    # Where B starts among its len(doc) - len(B) + 1 possible positions, as a fraction in [0, 1].
    starts = [docs[pair.documents[1]].index(pair.second[0]) / (800 - len(pair.second)) for pair in negatives]
    assert within_binomial(sum(u < 0.5 for u in starts), len(starts), 0.5)
    assert min(starts) < 0.05 and max(starts) > 0.95


def test_sop_pairs_balanced_same_document_in_order_or_swapped():
    docs = corpus(seed=1)
    pairs = make_sop_pairs(docs, generator=torch.Generator().manual_seed(2))
    assert within_binomial(sum(pair.label == SWAPPED for pair in pairs), len(pairs), 0.5)
    for pair in pairs:
        d, other = pair.documents
        assert d == other
        in_order = pair.first + pair.second if pair.label == IN_ORDER else pair.second + pair.first
        assert is_contiguous_span(in_order, docs[d])
    # Every chunk of at least two sentences gives exactly one pair.
    expected = sum(len(range(0, len(doc), 4)) - (len(doc) % 4 == 1) for doc in docs)
    assert len(pairs) == expected


def test_chunks_cover_documents_in_order():
    docs = [[f"s{i}" for i in range(10)], ["t0", "t1", "t2"]]
    pairs = make_sop_pairs(docs, generator=torch.Generator().manual_seed(3), max_sentences=4)
    restored = [p.first + p.second if p.label == IN_ORDER else p.second + p.first for p in pairs]
    assert restored == [["s0", "s1", "s2", "s3"], ["s4", "s5", "s6", "s7"], ["s8", "s9"], ["t0", "t1", "t2"]]


def test_pairs_work_on_token_lists_and_are_reproducible():
    docs = [[[1, 2], [3], [4, 5, 6]], [[7], [8, 9]], [[10], [11], [12]]]
    a = make_nsp_pairs(docs, generator=torch.Generator().manual_seed(4))
    b = make_nsp_pairs(docs, generator=torch.Generator().manual_seed(4))
    assert a == b
    assert all(isinstance(sentence, list) for pair in a for sentence in pair.first + pair.second)


@pytest.mark.parametrize("make", [make_nsp_pairs, make_sop_pairs])
@pytest.mark.parametrize(
    ("documents", "kwargs", "message"),
    [
        ([["a", "b"], ["c"]], {}, r"documents\[1\] has 1 sentence\(s\); NSP and SOP pairs need at least 2"),
        ([["a", "b"], []], {}, r"documents\[1\] has 0 sentence"),
        ([], {}, "documents must be a non-empty sequence"),
        ([["a", "b"], ["c", "d"]], {"max_sentences": 1}, "max_sentences must be an integer >= 2, got 1"),
    ],
)
def test_pairs_bad_input(make, documents, kwargs, message):
    with pytest.raises(ValueError, match=message):
        make(documents, **kwargs)


@pytest.mark.parametrize("make", [make_nsp_pairs, make_sop_pairs])
@pytest.mark.parametrize(
    ("documents", "kwargs", "message"),
    [
        ([["a", "b"], "cd"], {}, r"documents\[1\] must be a sequence of sentences, got str"),
        ("ab", {}, "documents must be a sequence of documents .* got str"),
        ([["a", "b"], ["c", "d"]], {"max_sentences": 2.0}, "max_sentences must be an integer, got float 2.0"),
    ],
)
def test_pairs_wrong_types(make, documents, kwargs, message):
    with pytest.raises(TypeError, match=message):
        make(documents, **kwargs)


@pytest.mark.parametrize("make", [make_nsp_pairs, make_sop_pairs])
def test_pairs_take_a_numpy_integer_max_sentences(make):
    documents = [list("abcdefg"), list("hijkl"), list("mnop")]
    assert make(documents, torch.Generator().manual_seed(3), max_sentences=np.int64(3)) == make(
        documents, torch.Generator().manual_seed(3), max_sentences=3)


def test_nsp_needs_two_documents():
    with pytest.raises(ValueError, match="documents must hold at least 2, got 1"):
        make_nsp_pairs([["a", "b", "c"]])
    assert len(make_sop_pairs([["a", "b", "c"]])) == 1


# --- BERT's pretraining data, with the shipped encoder and its tokenizer ---------------------------


def test_pairs_pack_alike_from_strings_and_ids_with_balanced_nsp_labels(shipped_encoder):
    _, tokenizer, _ = shipped_encoder
    documents = load_corpus("val")[:300]
    as_text = [split_sentences(d) for d in documents]
    pairs = make_nsp_pairs(as_text, torch.Generator().manual_seed(0), max_sentences=5)
    from_text = pack_pairs(tokenizer, pairs, 64)
    from_ids = make_pair_batch(tokenizer, sentence_ids(tokenizer, documents), "nsp", torch.Generator().manual_seed(0), 5, 64)
    assert all(torch.equal(a, b) for a, b in zip(from_text, from_ids))
    row = from_text.ids[0][from_text.ids[0] != tokenizer.pad_id].tolist()
    assert tokenizer.decode(row) == f"[CLS] {' '.join(pairs[0].first)} [SEP] {' '.join(pairs[0].second)} [SEP]"
    n = len(pairs)
    assert abs(from_text.labels.float().mean().item() - 0.5) < 3 * (0.25 / n) ** 0.5  # a fair coin per pair


def test_mlm_masking_skips_special_tokens_and_the_loss_reads_only_selected_positions(shipped_encoder):
    model, tokenizer, _ = shipped_encoder
    batch = make_pair_batch(tokenizer, sentence_ids(tokenizer, load_corpus("val")[:64]), "nsp",
                            torch.Generator().manual_seed(0), 5, 64)
    inputs, labels = mask_for_mlm(tokenizer, batch.ids, 0.15, torch.Generator().manual_seed(1))
    special = (batch.ids >= tokenizer.cls_id) & (batch.ids != tokenizer.mask_id)
    assert bool((labels[special] == -100).all()) and torch.equal(inputs[special], batch.ids[special])
    mlm_loss, pair_loss = pretraining_losses(model, inputs, batch.segment_ids, labels, batch.labels)
    out = model(inputs, batch.segment_ids)
    torch.testing.assert_close(mlm_loss, torch.nn.functional.cross_entropy(out.mlm_logits.flatten(0, 1), labels.flatten()))
    torch.testing.assert_close(pair_loss, torch.nn.functional.cross_entropy(out.pair_logits, batch.labels))


def test_split_sentences_undoes_the_generators_joining():
    document = "Rozi lives in Pominport. By trade, she is a teacher. On day 3, she visited Repewick."
    assert split_sentences(document) == ["Rozi lives in Pominport.", "By trade, she is a teacher.",
                                         "On day 3, she visited Repewick."]
    with pytest.raises(ValueError, match="document must be a str that ends with '.'"):
        split_sentences("no full stop")


def test_bad_pair_data_inputs_raise_a_clear_value_error(shipped_encoder):
    _, tokenizer, _ = shipped_encoder
    documents = sentence_ids(tokenizer, load_corpus("val")[:4])
    with pytest.raises(ValueError, match=r"objective must be one of \('nsp', 'sop'\), got 'xyz'"):
        make_pair_batch(tokenizer, documents, "xyz", torch.Generator(), 5, 64)
    with pytest.raises(ValueError, match="a pair has .* tokens, more than context_length 8"):
        make_pair_batch(tokenizer, documents, "sop", torch.Generator(), 5, 8)
    with pytest.raises(ValueError, match="pairs must not be empty"):
        pack_pairs(tokenizer, [], 64)
