"""Tests for course_lib.ngram: interpolated Kneser-Ney against probabilities worked out by hand from the
formulas, distributions that sum to 1 for every context, order 1 as the smoothed unigram, the
unknown-token policy, scoring the course world's documents, and bad input."""

from __future__ import annotations

import itertools
import math
import random

import numpy as np
import pytest
import torch

from course_lib.datasets import load_corpus, load_generator
from course_lib.ngram import BOS, EOS, UNITS, NGramLM, document_nats, document_tokens

# Three sentences; with D = 1/2 every probability below is a small fraction, worked out in the comments.
# Bigrams (with <s> and </s>): (<s> a) 2, (a b) 1, (b </s>) 2, (<s> b) 1, (b b) 1, (a </s>) 1.
# Unigram continuation counts N1+(. w): a 1 ({<s>}), b 3 ({a, <s>, b}), </s> 2 ({b, a}); sum 6, 3 types.
CORPUS = [["a", "b"], ["b", "b"], ["a"]]


def fitted(order: int, **kwargs) -> NGramLM:
    vocabulary = kwargs.pop("vocabulary", ())
    return NGramLM(order, 0.5, **kwargs).fit(CORPUS, vocabulary=vocabulary)


def test_bigram_probabilities_match_the_formulas_worked_by_hand():
    model = fitted(2)
    assert model.vocabulary == ("a", "b", EOS)
    # P1(w) = (N1+(. w) - D) / 6 + D * 3 / 6 * 1/3
    unigram = {"a": 0.5 / 6 + 1 / 12, "b": 2.5 / 6 + 1 / 12, EOS: 1.5 / 6 + 1 / 12}
    assert unigram == pytest.approx({"a": 1 / 6, "b": 1 / 2, EOS: 1 / 3}, abs=1e-15)
    # after a: c(a b) = c(a </s>) = 1, total 2, 2 types: (c - D) / 2 + D * 2 / 2 * P1(w)
    assert model.prob("b", ["a"]) == pytest.approx(0.25 + 0.5 * 1 / 2, abs=1e-15)
    assert model.prob(EOS, ["a"]) == pytest.approx(0.25 + 0.5 * 1 / 3, abs=1e-15)
    assert model.prob("a", ["a"]) == pytest.approx(0.5 * 1 / 6, abs=1e-15)
    # at the start (context <s>): c(<s> a) = 2, c(<s> b) = 1, total 3, 2 types
    assert model.prob("a") == pytest.approx(1.5 / 3 + 1 / 3 * 1 / 6, abs=1e-15)  # 5/9
    assert model.prob(EOS, []) == pytest.approx(1 / 3 * 1 / 3, abs=1e-15)  # 1/9
    # after b: c(b </s>) = 2, c(b b) = 1
    assert model.prob("a", ["b"]) == pytest.approx(1 / 18, abs=1e-15)
    assert model.prob(EOS, ["a", "b"]) == pytest.approx(1.5 / 3 + 1 / 9, abs=1e-15)  # 11/18
    assert model.log_prob(["a", "b"]) == pytest.approx(math.log(5 / 9 * 1 / 2 * 11 / 18), abs=1e-14)


def test_trigram_lower_orders_use_continuation_counts():
    model = fitted(3)
    # Trigrams: (<s> <s> a) 2, (<s> <s> b) 1, (<s> a b), (<s> a </s>), (a b </s>), (<s> b b), (b b </s>) 1 each.
    # Order 2 after <s> counts the distinct tokens before (<s> a) and (<s> b): 1 each (raw counts: 2, 1).
    p2_start = {"a": 0.5 / 2 + 0.5 * 1 / 6, "b": 0.5 / 2 + 0.5 * 1 / 2, EOS: 0.5 * 1 / 3}  # 1/3, 1/2, 1/6
    assert model.prob("a") == pytest.approx(1.5 / 3 + 1 / 3 * p2_start["a"], abs=1e-15)  # 11/18
    assert model.prob("b") == pytest.approx(0.5 / 3 + 1 / 3 * p2_start["b"], abs=1e-15)  # 1/3
    assert model.prob(EOS) == pytest.approx(1 / 3 * p2_start[EOS], abs=1e-15)  # 1/18
    # after (<s> a): b and </s> once each; order 2 after a: the same counts, P2(b | a) = 1/2
    assert model.prob("b", ["a"]) == pytest.approx(0.5 / 2 + 0.5 * 1 / 2, abs=1e-15)
    # (a a) never occurred: the order-2 distribution after a passes through unchanged
    assert model.prob("b", ["b", "a", "a"]) == pytest.approx(0.5, abs=1e-15)
    assert model.prob("b", ["a", "a"]) == fitted(2).prob("b", ["a"])


def test_the_uniform_base_gives_mass_to_a_vocabulary_token_never_seen():
    model = fitted(2, vocabulary=["z"])
    assert model.vocabulary == ("a", "b", "z", EOS)
    # P1(w) = (N1+(. w) - D) / 6 + D * 3 / 6 * 1/4
    assert model.prob("z", ["z"]) == pytest.approx(0.25 / 4, abs=1e-15)  # context z unseen: P1
    assert model.prob("b", ["z"]) == pytest.approx(2.5 / 6 + 0.25 / 4, abs=1e-15)
    assert model.prob("z", ["a"]) == pytest.approx(0.5 * 0.25 / 4, abs=1e-15)


def test_an_unknown_token_is_an_error_naming_it_unless_the_model_has_an_unknown_token():
    with pytest.raises(ValueError, match="token 'q' is not in the vocabulary"):
        fitted(2).prob("q", ["a"])
    with pytest.raises(ValueError, match="context 'q' is not in the vocabulary"):
        fitted(2).prob("a", ["q"])
    with pytest.raises(ValueError, match="tokens 'q' is not in the vocabulary"):
        fitted(2).log_prob(["a", "q"])
    model = fitted(2, unk="<unk>")
    assert model.vocabulary == ("a", "b", EOS, "<unk>")
    assert model.prob("q", ["a"]) == model.prob("<unk>", ["a"]) == pytest.approx(0.5 * 0.25 / 4, abs=1e-15)
    assert model.prob("a", ["q"]) == model.prob("a", ["<unk>"])
    assert model.log_prob(["q", "r"]) == model.log_prob(["<unk>", "<unk>"])


@pytest.mark.parametrize("order", [1, 2, 3, 4])
@pytest.mark.parametrize("unk", [None, "<unk>"])
def test_every_context_gives_a_distribution_that_sums_to_1_and_matches_prob(order, unk):
    rng = random.Random(order)
    corpus = [[rng.choice("abcd") for _ in range(rng.randrange(0, 6))] for _ in range(12)]
    model = NGramLM(order, 0.75, unk=unk).fit(corpus, vocabulary=["e"])
    tokens = [t for t in model.vocabulary if t != EOS]
    contexts = [c for n in range(order) for c in itertools.product(tokens, repeat=n)]  # seen and unseen
    for context in contexts:
        distribution = model.distribution(context)
        assert list(distribution) == list(model.vocabulary)
        assert math.fsum(distribution.values()) == pytest.approx(1.0, abs=1e-12)
        assert all(distribution[w] == model.prob(w, context) for w in model.vocabulary)


@pytest.mark.parametrize("order", [1, 2, 4, 6])
def test_log_prob_is_the_chain_rule_over_prob_with_the_sentence_so_far_as_context(order):
    rng = random.Random(order)
    corpus = [[rng.choice("abc") for _ in range(rng.randrange(0, 8))] for _ in range(20)]
    model = NGramLM(order).fit(corpus)
    sentence = ["a", "b", "c", "a", "a", "b", "c"]
    steps = [model.prob(w, sentence[:i]) for i, w in enumerate(sentence + [EOS])]
    assert model.log_prob(sentence) == pytest.approx(sum(math.log(p) for p in steps), abs=1e-12)


def test_order_1_is_the_smoothed_unigram_and_ignores_the_context():
    corpus = [list("abracadabra"), list("cab"), []]
    model = NGramLM(1, 0.3).fit(corpus, vocabulary=["z"])
    counts = {t: sum(s.count(t) for s in corpus) for t in "abcdrz"} | {EOS: len(corpus)}
    total, types, V = sum(counts.values()), sum(c > 0 for c in counts.values()), len(counts)
    for token, c in counts.items():
        expected = (max(c - 0.3, 0) + 0.3 * types / V) / total
        assert model.prob(token) == pytest.approx(expected, abs=1e-15)
        assert model.prob(token, ["r", "a"]) == model.prob(token)


def test_perplexity_of_the_training_data_falls_with_the_order():
    sequences = [document_tokens(d) for d in load_corpus("train")[:300]]
    perplexities = [NGramLM(n).fit(sequences).perplexity(sequences) for n in range(1, 6)]
    assert all(a > b for a, b in itertools.pairwise(perplexities)), perplexities
    model = NGramLM(2).fit(sequences)
    nats = -sum(model.log_prob(s) for s in sequences)
    assert model.perplexity(sequences) == pytest.approx(math.exp(nats / sum(len(s) + 1 for s in sequences)))


@pytest.mark.parametrize("unit", UNITS)
def test_document_tokens_give_the_document_back(unit):
    document = load_corpus("val")[0]
    tokens = document_tokens(document, unit)
    assert ("" if unit == "characters" else " ").join(tokens) == document
    assert document_tokens("On day 1,  X", "words") == ["On", "day", "1,", "", "X"]


def test_document_nats_are_minus_log_prob_and_above_the_generator_s_exact_nats():
    train, val = load_corpus("train"), load_corpus("val")[:100]
    model = NGramLM(3).fit([document_tokens(d) for d in train])
    nats = document_nats(model, val)
    assert nats.shape == (100,) and nats.dtype == torch.float64
    assert float(nats[3]) == -model.log_prob(val[3].split(" "))
    generator = load_generator()
    exact = -sum(generator.log_prob(d) for d in val)
    assert float(nats.sum()) > 1.2 * exact  # cross-entropy >= entropy; a trigram is far from the optimum
    chars = NGramLM(3).fit([document_tokens(d, "characters") for d in train])
    assert float(document_nats(chars, val, "characters").sum()) > float(nats.sum())


def test_sample_draws_from_the_model_s_distribution():
    model = fitted(2)
    runs = [model.sample(1, torch.Generator().manual_seed(s)) for s in range(3000)]
    first = [r[0] if r else EOS for r in runs]
    for token, p in model.distribution([]).items():
        share = first.count(token) / len(first)
        assert abs(share - p) < 5 * math.sqrt(p * (1 - p) / len(first)), (token, share, p)
    long = model.sample(50, torch.Generator().manual_seed(0))
    assert long == model.sample(50, torch.Generator().manual_seed(0))
    assert len(long) <= 50 and set(long) <= {"a", "b"}


def test_numpy_integers_are_accepted_and_fitting_again_starts_afresh():
    model = NGramLM(np.int64(2), np.float64(0.5)).fit(CORPUS)
    assert model.order == 2 and type(model.order) is int
    model.fit([["x"]])
    assert model.vocabulary == ("x", EOS)


@pytest.mark.parametrize("order, error, match", [
    (0, ValueError, "order must be a positive integer, got 0"),
    (-2, ValueError, "order must be a positive integer, got -2"),
    (2.0, TypeError, "order must be an integer, got float 2.0"),
    (True, TypeError, "order must be an integer, got True"),
])
def test_bad_order(order, error, match):
    with pytest.raises(error, match=match):
        NGramLM(order)


@pytest.mark.parametrize("discount, match", [
    (0, r"discount must be in \(0, 1\), got 0"),
    (1, r"discount must be in \(0, 1\), got 1"),
    (1.5, r"discount must be in \(0, 1\), got 1.5"),
    (-0.25, r"discount must be in \(0, 1\), got -0.25"),
    (float("nan"), "discount must be a finite number, got nan"),
])
def test_discount_outside_0_1_is_rejected(discount, match):
    with pytest.raises(ValueError, match=match):
        NGramLM(2, discount)


def test_bad_sequences_and_tokens():
    model = NGramLM(2)
    with pytest.raises(TypeError, match="sequences must be a list of token lists, got str"):
        model.fit("a b")
    with pytest.raises(TypeError, match=r"sequences\[1\] must be a list of str tokens .* got str 'b c'"):
        model.fit([["a"], "b c"])
    with pytest.raises(TypeError, match="each token of sequences must be a str, got int"):
        model.fit([["a", 3]])
    with pytest.raises(ValueError, match="sequences must not contain '<s>' or '</s>'"):
        model.fit([["a", EOS, "b"]])
    with pytest.raises(ValueError, match="sequences must hold at least one sequence, got none"):
        model.fit([])
    with pytest.raises(TypeError, match="vocabulary must be a list of str tokens"):
        model.fit(CORPUS, vocabulary="xyz")
    with pytest.raises(ValueError, match="the model is not fitted yet"):
        model.prob("a")
    model.fit(CORPUS)
    with pytest.raises(TypeError, match="token must be a str, got int"):
        model.prob(3, ["a"])
    with pytest.raises(ValueError, match="token must not contain '<s>'"):
        model.prob(BOS, ["a"])
    with pytest.raises(TypeError, match="context must be a list of str tokens"):
        model.distribution("a")
    with pytest.raises(ValueError, match="context must not contain"):
        model.distribution(["a", EOS])
    with pytest.raises(ValueError, match="max_tokens must be a positive integer, got 0"):
        model.sample(0)


def test_bad_unknown_token_unit_and_documents():
    with pytest.raises(ValueError, match="unk must differ from '<s>' and '</s>', got '</s>'"):
        NGramLM(2, unk=EOS)
    with pytest.raises(ValueError, match="unk must be a non-empty str"):
        NGramLM(2, unk="")
    with pytest.raises(ValueError, match="unit must be one of 'words', 'characters'; got 'bytes'"):
        document_tokens("a b", "bytes")
    with pytest.raises(TypeError, match="document must be a str, got list"):
        document_tokens(["a"])
    with pytest.raises(TypeError, match="model must be an NGramLM, got dict"):
        document_nats({}, ["a b"])
    with pytest.raises(ValueError, match="documents must be a non-empty sequence of str"):
        document_nats(fitted(2), "a b")
