"""Tests for course_lib.decoding: greedy, beam and exact search, filters and sampling.

The models are bigram tables (the next token depends on the last one only), small enough that every
continuation can be enumerated with itertools: that brute force, and a plain reference beam search
written without any shortcut, are what the library is compared against.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from course_lib.decoding import (
    Hypothesis,
    RandomTableLM,
    beam_search,
    exact_search,
    greedy_decode,
    sample,
    sampling_distribution,
    top_k_filter,
    top_p_filter,
)
from course_lib.losses import entropy


class Bigram:
    """A toy LM: next-token probabilities from a table indexed by the last token; counts its calls.

    It advertises `context_length` and `vocab_size` only when given, like a model that has them.
    """

    def __init__(self, probs: torch.Tensor, context_length: int | None = None, vocab_size: int | None = None) -> None:
        self.log_probs = probs.double().log()  # (V, V), -inf where a probability is 0
        self.calls: list[int] = []  # batch size of every call
        if context_length is not None:
            self.context_length = context_length
        if vocab_size is not None:
            self.vocab_size = vocab_size

    def __call__(self, ids: torch.Tensor) -> torch.Tensor:
        self.calls.append(ids.shape[0])
        return self.log_probs[ids[:, -1]]  # (B, V)

    def sequence_log_prob(self, prompt: list[int], continuation: list[int]) -> float:
        tokens = prompt[-1:] + continuation
        return sum(float(self.log_probs[a, b]) for a, b in zip(tokens, tokens[1:]))


def random_bigram(vocab_size: int, seed: int, sharpness: float = 2.0) -> Bigram:
    g = torch.Generator().manual_seed(seed)
    return Bigram(torch.softmax(sharpness * torch.randn(vocab_size, vocab_size, generator=g, dtype=torch.float64), -1))


def table(vocab_size: int, rows: dict[int, dict[int, float]]) -> Bigram:
    """A bigram LM from sparse rows {token: {next: prob}}; unlisted rows are uniform."""
    probs = torch.full((vocab_size, vocab_size), 1.0 / vocab_size, dtype=torch.float64)
    for token, row in rows.items():
        probs[token] = 0.0
        for nxt, p in row.items():
            probs[token, nxt] = p
    assert torch.allclose(probs.sum(1), torch.ones(vocab_size, dtype=torch.float64))
    return Bigram(probs)


def brute_force_best(lm: Bigram, prompt: list[int], n: int, eos: int | None, alpha: float) -> float:
    """The best score over every continuation, enumerated with itertools."""
    vocab = range(lm.log_probs.shape[0])
    best = -math.inf
    for length in range(1, n + 1):
        for seq in itertools.product(vocab, repeat=length):
            if eos is not None and eos in seq[:-1]:
                continue  # a continuation stops at its first EOS
            if length < n and (eos is None or seq[-1] != eos):
                continue  # shorter than n only when it ends with EOS
            best = max(best, lm.sequence_log_prob(prompt, list(seq)) / length**alpha)
    return best


def has_a_tie(lm: Bigram, prompt: list[int], seq: list[int], eos: int | None) -> bool:
    """Whether another valid continuation of the same length has the same log-probability (to 1e-9).

    In a bigram model, two orderings of the same transitions score exactly the same in exact
    arithmetic; floating point then decides which one a search keeps, inside or outside the top k.
    """
    target = lm.sequence_log_prob(prompt, seq)
    for other in itertools.product(range(lm.log_probs.shape[0]), repeat=len(seq)):
        if list(other) == seq or (eos is not None and eos in other[:-1]):
            continue
        if abs(lm.sequence_log_prob(prompt, list(other)) - target) < 1e-9:
            return True
    return False


def reference_beam_search(lm: Bigram, prompt: list[int], k: int, n: int, eos: int | None,
                          alpha: float) -> list[tuple[list[int], float]]:
    """Beam search with no early stop: run every step, keep EOS endings that rank among the top k."""
    beams, finished = [([], 0.0)], []
    for _ in range(n):
        candidates = sorted(((-(lp + float(lm.log_probs[(prompt + seq)[-1], t])), b, t, seq)
                             for b, (seq, lp) in enumerate(beams) for t in range(lm.log_probs.shape[0])))
        beams = []
        for rank, (neg, _, token, seq) in enumerate(candidates):
            if len(beams) == k or neg == math.inf:
                break
            if token == eos:
                if rank < k:
                    finished.append((seq + [token], -neg))
            else:
                beams.append((seq + [token], -neg))
    ranked = sorted(((s, lp / len(s) ** alpha) for s, lp in finished + beams), key=lambda h: -h[1])
    return ranked[:k]


def tokens(h: Hypothesis) -> list[int]:
    return h.token_ids.tolist()


# ----------------------------------------------------------------------------------------------
# Greedy and beam search


def test_greedy_picks_the_argmax_and_the_lowest_id_among_ties():
    lm = table(4, {0: {2: 0.4, 3: 0.4, 1: 0.2}, 2: {1: 1.0}, 3: {0: 1.0}})
    out = greedy_decode(lm, torch.tensor([0]), 2)
    assert out.tolist() == [0, 2, 1]  # 2 and 3 tie at 0.4: the lower id wins


def test_greedy_stops_at_eos_and_pads_finished_rows():
    lm = table(4, {0: {3: 1.0}, 1: {2: 1.0}, 2: {2: 0.5, 3: 0.5}})
    single = greedy_decode(lm, torch.tensor([0]), 5, eos_id=3)
    assert single.tolist() == [0, 3]
    batch = greedy_decode(lm, torch.tensor([[0], [1]]), 3, eos_id=3)
    assert batch.tolist() == [[0, 3, 3, 3], [1, 2, 2, 2]]  # row 0 finished, padded with EOS


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), vocab=st.integers(2, 6), n=st.integers(1, 5), use_eos=st.booleans())
def test_beam_width_one_is_greedy(seed, vocab, n, use_eos):
    lm = random_bigram(vocab, seed)
    eos = 0 if use_eos else None
    prompt = torch.tensor([1 % vocab])
    greedy = greedy_decode(lm, prompt, n, eos_id=eos)
    [best] = beam_search(lm, prompt, beam_width=1, max_new_tokens=n, eos_id=eos)
    assert tokens(best) == greedy[1:].tolist()


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), vocab=st.integers(2, 5), n=st.integers(1, 4), k=st.integers(1, 4),
       use_eos=st.booleans(), alpha=st.sampled_from([0.0, 0.6, 1.0, -0.5]))
def test_beam_search_matches_the_reference_without_early_stop(seed, vocab, n, k, use_eos, alpha):
    lm = random_bigram(vocab, seed)
    eos = vocab - 1 if use_eos else None
    got = beam_search(lm, torch.tensor([0]), k, n, eos_id=eos, length_penalty=alpha)
    expected = reference_beam_search(lm, [0], k, n, eos, alpha)
    scores = [score for _, score in expected]
    assert [h.score for h in got] == pytest.approx(scores, abs=1e-12)
    for h, (seq, _) in zip(got, expected):
        if not has_a_tie(lm, [0], seq, eos):  # tied sequences (same bigrams, another order) may swap
            assert tokens(h) == seq


@pytest.mark.parametrize("vocab, seed, n, k, alpha", [
    (5, 185, 5, 2, 0.6),  # the early stop must bound the score at every reachable length, not only the next
    (4, 676, 4, 2, 0.0),  # an EOS candidate outside the top k of its step must not be kept as finished
])
def test_beam_search_matches_the_reference_on_known_hard_cases(vocab, seed, n, k, alpha):
    lm = random_bigram(vocab, seed)
    got = beam_search(lm, torch.tensor([0]), k, n, eos_id=vocab - 1, length_penalty=alpha)
    expected = reference_beam_search(lm, [0], k, n, vocab - 1, alpha)
    assert [tokens(h) for h in got] == [seq for seq, _ in expected]
    assert [h.score for h in got] == pytest.approx([score for _, score in expected], abs=1e-12)


def test_beam_search_breaks_ties_by_beam_then_token_id_and_prefers_the_shorter():
    uniform = table(40, {})  # every continuation of a given length has the same score
    got = beam_search(uniform, torch.tensor([0]), beam_width=4, max_new_tokens=2)
    assert [tokens(h) for h in got] == [[0, 0], [0, 1], [0, 2], [0, 3]]
    # With length_penalty=1 the finished [EOS] and the 2-token beams all score log(1/4).
    small = table(4, {})
    got = beam_search(small, torch.tensor([0]), beam_width=4, max_new_tokens=2, eos_id=3, length_penalty=1.0)
    assert [h.score for h in got] == [math.log(0.25)] * 4
    assert [tokens(h) for h in got] == [[3], [0, 3], [0, 0], [0, 1]]  # finished first, the shorter first of all


def test_hypotheses_compare_by_value():
    a = Hypothesis(torch.tensor([1, 2]), -1.0, -0.5)
    assert a == Hypothesis(torch.tensor([1, 2]), -1.0, -0.5)
    assert a != Hypothesis(torch.tensor([1, 3]), -1.0, -0.5)
    assert a != Hypothesis(torch.tensor([1, 2]), -1.0, -0.25)
    assert a != "not a hypothesis"


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 10_000), k=st.integers(1, 5), alpha=st.sampled_from([0.0, 1.0]), use_eos=st.booleans())
def test_scores_are_sums_of_log_probs_and_best_first(seed, k, alpha, use_eos):
    lm = random_bigram(5, seed)
    eos = 4 if use_eos else None
    hypotheses = beam_search(lm, torch.tensor([2, 0]), k, 4, eos_id=eos, length_penalty=alpha)
    assert 1 <= len(hypotheses) <= k
    for h in hypotheses:
        assert h.log_prob == pytest.approx(lm.sequence_log_prob([2, 0], tokens(h)), abs=1e-10)
        assert h.score == pytest.approx(h.log_prob / len(h) ** alpha, abs=1e-12)
        if eos is None:
            assert len(h) == 4
    assert all(a.score >= b.score for a, b in zip(hypotheses, hypotheses[1:]))


def test_all_beams_advance_in_one_batched_call_per_step():
    lm = random_bigram(7, seed=3)
    beam_search(lm, torch.tensor([0]), beam_width=4, max_new_tokens=6)
    assert lm.calls == [1, 4, 4, 4, 4, 4]  # the prompt first, then all four beams together


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), vocab=st.integers(2, 4), n=st.integers(1, 4), k=st.integers(1, 3),
       use_eos=st.booleans(), alpha=st.sampled_from([0.0, 1.0]))
def test_exact_search_is_the_brute_force_optimum_and_beats_beam(seed, vocab, n, k, use_eos, alpha):
    lm = random_bigram(vocab, seed, sharpness=1.0)
    eos = 0 if use_eos else None
    [best] = exact_search(lm, torch.tensor([1 % vocab]), n, eos_id=eos, length_penalty=alpha)
    assert best.score == pytest.approx(brute_force_best(lm, [1 % vocab], n, eos, alpha), abs=1e-12)
    assert best.log_prob == pytest.approx(lm.sequence_log_prob([1 % vocab], tokens(best)), abs=1e-12)
    beam = beam_search(lm, torch.tensor([1 % vocab]), k, n, eos_id=eos, length_penalty=alpha)
    assert best.score >= beam[0].score - 1e-12


def test_exact_search_n_best_are_sorted_and_distinct():
    lm = random_bigram(4, seed=5)
    ranked = exact_search(lm, torch.tensor([0]), 3, eos_id=3, n_best=6)
    assert len({tuple(tokens(h)) for h in ranked}) == 6
    assert all(a.score >= b.score for a, b in zip(ranked, ranked[1:]))


# Token ids of the constructed examples: S is the prompt, the rest are named states.
S, A, B, C, D, A1, A2, A3, B1, B2, Z, EOS = range(12)


def test_beam_search_misses_the_most_probable_sequence():
    # A looks best at step 1, but its continuations are spread thin; C leads to a sure D.
    lm = table(12, {S: {A: 0.4, B: 0.35, C: 0.25}, A: {A1: 0.25, A2: 0.25, A3: 0.25, B1: 0.25},
                    B: {A1: 0.25, A2: 0.25, A3: 0.25, B1: 0.25}, C: {D: 1.0}})
    [exact] = exact_search(lm, torch.tensor([S]), 2)
    assert tokens(exact) == [C, D] and exact.log_prob == pytest.approx(math.log(0.25))
    beam2 = beam_search(lm, torch.tensor([S]), 2, 2)[0]
    assert beam2.log_prob == pytest.approx(math.log(0.4 * 0.25))
    assert beam2.log_prob < exact.log_prob
    assert tokens(beam_search(lm, torch.tensor([S]), 3, 2)[0]) == [C, D]


def test_a_wider_beam_can_score_lower_than_greedy():
    # Greedy follows A -> A1 -> Z (0.5 * 0.36 * 1 = 0.18). With two beams, B's two children
    # (0.45 * 0.52 = 0.234 and 0.45 * 0.48 = 0.216) push A -> A1 (0.18) out at step 2, and both
    # continue into a uniform row (x 1/12).
    lm = table(12, {S: {A: 0.5, B: 0.45, C: 0.05}, A: {A1: 0.36, A2: 0.34, A3: 0.30},
                    B: {B1: 0.52, B2: 0.48}, A1: {Z: 1.0}})
    greedy = greedy_decode(lm, torch.tensor([S]), 3)
    assert greedy[1:].tolist() == [A, A1, Z]
    scores = {k: beam_search(lm, torch.tensor([S]), k, 3)[0].log_prob for k in (1, 2, 3)}
    assert scores[1] == pytest.approx(math.log(0.18))
    assert scores[2] == pytest.approx(math.log(0.234 / 12))
    assert scores[2] < scores[1] <= scores[3]


def test_exact_search_prefers_an_early_eos_that_beam_search_skips():
    # Ending at once has p = 0.3; every longer continuation has p <= 0.7 * 0.25 (Stahlberg & Byrne 2019).
    lm = table(12, {S: {EOS: 0.3, A: 0.7}, A: {A1: 0.25, A2: 0.25, A3: 0.25, B1: 0.25}})
    [exact] = exact_search(lm, torch.tensor([S]), 3, eos_id=EOS)
    assert tokens(exact) == [EOS]
    [greedy_like] = beam_search(lm, torch.tensor([S]), 1, 3, eos_id=EOS)
    assert tokens(greedy_like)[0] == A and greedy_like.score < exact.score
    assert tokens(beam_search(lm, torch.tensor([S]), 2, 3, eos_id=EOS)[0]) == [EOS]


def test_length_penalty_moves_beam_search_to_longer_hypotheses():
    # Ending at once: p = 0.4. The long path A A1 A2 A3 EOS: p = 0.6 * 0.8**3 = 0.307, but per token
    # log(0.307) / 5 = -0.24 beats log(0.4) / 1 = -0.92.
    lm = table(12, {S: {EOS: 0.4, A: 0.6}, A: {A1: 0.8, EOS: 0.2}, A1: {A2: 0.8, EOS: 0.2},
                    A2: {A3: 0.8, EOS: 0.2}, A3: {EOS: 1.0}})
    plain = beam_search(lm, torch.tensor([S]), 2, 5, eos_id=EOS)[0]
    normalised = beam_search(lm, torch.tensor([S]), 2, 5, eos_id=EOS, length_penalty=1.0)[0]
    assert tokens(plain) == [EOS]
    assert tokens(normalised) == [A, A1, A2, A3, EOS]
    assert normalised.score == pytest.approx(math.log(0.6 * 0.8**3) / 5)


# ----------------------------------------------------------------------------------------------
# Filters, temperature and sampling


# Logits on a grid of 1/8: distinct values differ by enough to survive a temperature of 20.
logits_strategy = st.lists(st.integers(-64, 64), min_size=2, max_size=12).map(
    lambda xs: torch.tensor(xs, dtype=torch.float64) / 8)


@settings(max_examples=60, deadline=None)
@given(logits=logits_strategy, k=st.integers(1, 14))
def test_top_k_keeps_exactly_the_k_largest(logits, k):
    out = top_k_filter(logits, k)
    kept = torch.isfinite(out)
    assert int(kept.sum()) == min(k, len(logits))
    assert torch.equal(out[kept], logits[kept])
    if kept.sum() < len(logits):
        assert logits[kept].min() >= logits[~kept].max()


def test_top_k_edge_cases_and_ties():
    logits = torch.tensor([[1.0, 3.0, 3.0, 0.5], [2.0, 2.0, 2.0, 2.0]])
    assert torch.equal(top_k_filter(logits, 4), logits)  # k = V: identity
    assert torch.equal(top_k_filter(logits, 10), logits)
    one = top_k_filter(logits, 1)
    assert torch.isfinite(one).nonzero().tolist() == [[0, 1], [1, 0]]  # ties: the lowest id is kept
    two = top_k_filter(logits, 2)
    assert torch.isfinite(two).nonzero().tolist() == [[0, 1], [0, 2], [1, 0], [1, 1]]


@settings(max_examples=80, deadline=None)
@given(logits=logits_strategy, p=st.floats(0.01, 0.999))
def test_top_p_keeps_the_minimal_set_reaching_p(logits, p):
    probs = torch.softmax(logits, -1)
    kept = torch.isfinite(top_p_filter(logits, p))
    # Brute force: the smallest m such that the m most probable tokens carry mass >= p.
    sorted_probs = probs.sort(descending=True).values
    m = next(m for m in range(1, len(probs) + 1) if sorted_probs[:m].sum() >= p or m == len(probs))
    assert int(kept.sum()) == m
    assert probs[kept].sum() >= p - 1e-12 or m == len(probs)
    if m < len(probs):
        assert probs[kept].min() >= probs[~kept].max()


def test_top_p_worked_example_and_edges():
    probs = torch.tensor([0.5, 0.3, 0.15, 0.05], dtype=torch.float64)
    logits = probs.log()

    def kept(p: float, **kw) -> list[bool]:
        return torch.isfinite(top_p_filter(logits, p, **kw)).tolist()

    assert kept(0.5) == [True, False, False, False]  # 0.5 reaches p exactly
    assert kept(0.6) == [True, True, False, False]  # 0.3 crosses p and is kept
    assert kept(0.81) == [True, True, True, False]
    assert kept(1.0) == [True, True, True, True]
    assert kept(0.1, min_tokens_to_keep=3) == [True, True, True, False]
    tied = torch.zeros(4)
    assert torch.isfinite(top_p_filter(tied, 0.5)).tolist() == [True, True, False, False]  # ties in id order


@settings(max_examples=40, deadline=None)
@given(logits=logits_strategy, temperature=st.floats(0.05, 20.0))
def test_temperature_never_changes_the_argmax(logits, temperature):
    probs = sampling_distribution(logits, temperature)
    assert int(probs.argmax()) == int(logits.argmax())
    assert float(probs.sum()) == pytest.approx(1.0)


def test_temperature_limits_and_entropy_grows_with_temperature():
    logits = torch.tensor([2.0, 1.0, 0.5, -1.0], dtype=torch.float64)
    assert sampling_distribution(logits, 0.0).tolist() == [1.0, 0.0, 0.0, 0.0]
    torch.testing.assert_close(sampling_distribution(logits, 1.0), torch.softmax(logits, -1))
    torch.testing.assert_close(sampling_distribution(logits, 1e4), torch.full((4,), 0.25, dtype=torch.float64),
                               atol=1e-3, rtol=0)
    entropies = [float(entropy(sampling_distribution(logits, t))) for t in (0.0, 0.1, 0.5, 1.0, 2.0, 10.0)]
    assert entropies[0] == 0.0 and entropies == sorted(entropies)
    assert entropies[-1] < math.log(4)


def test_temperature_is_applied_before_top_p():
    logits = torch.tensor([1.0, 0.0, -1.0], dtype=torch.float64)
    # At T=1 the top token has p = 0.665 and top_p=0.6 keeps it alone; at T=5 it has 0.402 and two stay.
    assert int((sampling_distribution(logits, 1.0, top_p=0.6) > 0).sum()) == 1
    assert int((sampling_distribution(logits, 5.0, top_p=0.6) > 0).sum()) == 2
    filtered = sampling_distribution(logits, 5.0, top_k=2, top_p=0.99)
    torch.testing.assert_close(filtered, torch.softmax(torch.tensor([0.2, 0.0, -math.inf], dtype=torch.float64), -1))


def test_top_k_is_applied_before_top_p():
    logits = torch.tensor([0.4, 0.3, 0.2, 0.1], dtype=torch.float64).log()
    # top-k=2 leaves [4/7, 3/7]: top_p=0.5 then keeps the first alone. The other order would keep two.
    kept = sampling_distribution(logits, 1.0, top_k=2, top_p=0.5) > 0
    assert kept.tolist() == [True, False, False, False]


@pytest.mark.parametrize("kwargs", [{"temperature": 0.0}, {"top_k": 1}, {"temperature": 0.7, "top_k": 1},
                                    {"top_p": 1e-6}])
def test_sampling_that_must_be_greedy_is_greedy(kwargs):
    lm = random_bigram(6, seed=11, sharpness=0.5)
    prompt = torch.tensor([[0], [3]])
    got = sample(lm, prompt, 8, generator=torch.Generator().manual_seed(0), **kwargs)
    assert torch.equal(got, greedy_decode(lm, prompt, 8))


def test_sampling_is_reproducible_and_follows_the_distribution():
    lm = random_bigram(5, seed=2, sharpness=1.0)
    prompt = torch.zeros(20_000, 1, dtype=torch.long)
    draws = sample(lm, prompt, 1, temperature=1.5, top_k=4, generator=torch.Generator().manual_seed(0))[:, 1]
    again = sample(lm, prompt, 1, temperature=1.5, top_k=4, generator=torch.Generator().manual_seed(0))[:, 1]
    assert torch.equal(draws, again)
    expected = sampling_distribution(lm.log_probs[0], 1.5, top_k=4)  # (V,)
    observed = torch.bincount(draws, minlength=5).double() / len(draws)
    std = (expected * (1 - expected) / len(draws)).sqrt()
    assert torch.all((observed - expected).abs() <= 5 * std + 1e-12)
    assert observed[expected == 0].sum() == 0


def test_hypothesis_length():
    assert len(Hypothesis(torch.tensor([4, 2, 7]), -1.0, -1.0)) == 3


def test_random_table_lm_hashes_each_prefix_to_a_fixed_row():
    lm = RandomTableLM(vocab_size=5, seed=3, rows=97, scale=2.0)
    reference = 2.0 * torch.randn(97, 5, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    torch.testing.assert_close(lm.table, reference)

    def row_of(ids: list[int]) -> int:  # the hash written out in plain integers
        row = 0
        for i in ids:
            row = (row * 31 + i + 1) % 97
        return row

    batch = torch.tensor([[1, 2, 3], [4, 0, 2], [1, 2, 3]])  # (3, 3)
    logits = lm(batch)  # (3, 5)
    assert logits.shape == (3, 5) and logits.dtype == torch.float64
    for seq, out in zip(batch.tolist(), logits):
        torch.testing.assert_close(out, reference[row_of(seq)])
    torch.testing.assert_close(lm(batch[1:2]), logits[1:2])  # the same prefix, alone or in a batch
    assert not torch.equal(RandomTableLM(5, seed=4).table[:97], RandomTableLM(5, seed=3).table[:97])
    best = exact_search(lm, torch.tensor([1, 2]), 3, eos_id=0)[0]  # a valid next_logits for the searches
    assert beam_search(lm, torch.tensor([1, 2]), 3, 3, eos_id=0)[0].score <= best.score + 1e-12


# ----------------------------------------------------------------------------------------------
# Bad input


LM = random_bigram(5, seed=0)
PROMPT = torch.tensor([1, 2])


@pytest.mark.parametrize("call, message", [
    (lambda: top_k_filter(torch.zeros(3), 0), "k must be a positive integer, got 0"),
    (lambda: top_p_filter(torch.zeros(3), 1.5), r"p must be in \(0, 1\], got 1.5"),
    (lambda: top_p_filter(torch.zeros(3), 0.0), r"p must be in \(0, 1\], got 0"),
    (lambda: top_p_filter(torch.zeros(3), 0.5, min_tokens_to_keep=0), "min_tokens_to_keep must be a positive integer"),
    (lambda: sampling_distribution(torch.zeros(3), -0.5), "temperature must be >= 0, got -0.5"),
    (lambda: sampling_distribution(torch.zeros(3), float("nan")), "temperature must be a finite number, got nan"),
    (lambda: sample(LM, PROMPT, 3, temperature=-1.0), "temperature must be >= 0, got -1.0"),
    (lambda: sample(LM, PROMPT, 3, top_k=0), "top_k must be a positive integer, got 0"),
    (lambda: sample(LM, PROMPT, 3, top_p=2.0), r"top_p must be in \(0, 1\], got 2"),
    (lambda: beam_search(LM, PROMPT, 0, 3), "beam_width must be a positive integer, got 0"),
    (lambda: beam_search(LM, PROMPT, 2, 0), "max_new_tokens must be a positive integer, got 0"),
    (lambda: beam_search(LM, PROMPT, 2, 3, length_penalty=math.inf), "length_penalty must be a finite number"),
    (lambda: beam_search(LM, torch.tensor([[1], [2]]), 2, 3), "prompt_ids must hold one prompt"),
    (lambda: greedy_decode(LM, torch.tensor([7, 1]), 3), "prompt_ids must be token ids < vocab size 5, got max 7"),
    (lambda: greedy_decode(Bigram(LM.log_probs.exp(), vocab_size=5), torch.tensor([1, 7]), 3),
     "prompt_ids must be token ids < vocab size 5, got max 7"),
    (lambda: greedy_decode(LM, torch.tensor([1, -1]), 3), "prompt_ids must be token ids >= 0, got min -1"),
    (lambda: greedy_decode(LM, torch.tensor([], dtype=torch.long), 3), "prompt_ids must be a non-empty LongTensor"),
    (lambda: greedy_decode(LM, PROMPT, 3, eos_id=9), "eos_id must be < vocab size 5, got 9"),
    (lambda: greedy_decode(LM, PROMPT, 3, eos_id=-1), "eos_id must be a non-negative integer, got -1"),
    (lambda: greedy_decode(lambda ids: torch.zeros(5), PROMPT, 3), r"next_logits must return logits of shape \(B, V\)"),
    (lambda: exact_search(LM, PROMPT, 12), r"exact search would enumerate 5\*\*12 sequences"),
    (lambda: RandomTableLM(0, seed=0), "vocab_size must be a positive integer, got 0"),
    (lambda: RandomTableLM(5, seed=0, rows=0), "rows must be a positive integer, got 0"),
    (lambda: RandomTableLM(5, seed=0, scale=-1.0), "scale must be positive, got -1.0"),
    (lambda: RandomTableLM(5, seed=0)(torch.tensor([1, 2])), r"ids must have 2 dimensions, got shape \(2,\)"),
])
def test_bad_input_raises_a_clear_value_error(call, message):
    with pytest.raises(ValueError, match=message):
        call()


@pytest.mark.parametrize("call, message", [
    (lambda: top_k_filter(torch.zeros(3), 1.5), "k must be an integer, got float 1.5"),
    (lambda: top_k_filter(torch.zeros(3), True), "k must be an integer, got True"),
    (lambda: top_k_filter(torch.zeros(3, dtype=torch.long), 1), "logits must be a floating-point tensor"),
    (lambda: top_k_filter([0.0, 1.0], 1), "logits must be a torch.Tensor, got list"),
    (lambda: top_p_filter(torch.zeros(3), "0.5"), "p must be a real number, got str"),
    (lambda: sampling_distribution(torch.zeros(3), None), "temperature must be a real number, got NoneType"),
    (lambda: greedy_decode(LM, torch.tensor([1.0]), 3), "prompt_ids must be a LongTensor"),
    (lambda: greedy_decode(LM, [1, 2], 3), "prompt_ids must be a LongTensor"),
    (lambda: greedy_decode(LM, PROMPT, 3.0), "max_new_tokens must be an integer, got float 3.0"),
    (lambda: beam_search(LM, PROMPT, 2, 3, eos_id="0"), "eos_id must be an integer"),
    (lambda: RandomTableLM(5, seed=1.5), "seed must be an integer, got float 1.5"),
    (lambda: RandomTableLM(5, seed=0)(torch.tensor([[1.0]])), "ids must be an integer tensor"),
])
def test_a_wrong_type_raises_a_clear_type_error(call, message):
    with pytest.raises(TypeError, match=message):
        call()


def test_numpy_integers_are_accepted_as_sizes():
    logits = torch.tensor([[0.5, 2.0, 1.0, -1.0]])
    torch.testing.assert_close(top_k_filter(logits, np.int64(2)), top_k_filter(logits, 2))
    torch.testing.assert_close(top_p_filter(logits, 0.5, min_tokens_to_keep=np.int32(2)),
                               top_p_filter(logits, 0.5, min_tokens_to_keep=2))
    torch.testing.assert_close(sampling_distribution(logits, np.float64(0.5), top_k=np.int64(2)),
                               sampling_distribution(logits, 0.5, top_k=2))
    assert torch.equal(greedy_decode(LM, PROMPT, np.int64(3), eos_id=np.int64(4)),
                       greedy_decode(LM, PROMPT, 3, eos_id=4))
    assert beam_search(LM, PROMPT, np.int64(2), torch.tensor(3)) == beam_search(LM, PROMPT, 2, 3)


def test_prompts_longer_than_the_context_are_refused():
    lm = Bigram(LM.log_probs.exp(), context_length=4)
    with pytest.raises(ValueError, match="prompt_ids has 5 tokens, longer than the context_length 4"):
        greedy_decode(lm, torch.tensor([0, 1, 2, 3, 4]), 1)
    with pytest.raises(ValueError, match="max_new_tokens=3 with a prompt of 2 tokens exceeds the context_length 4"):
        beam_search(lm, PROMPT, 2, 3)
    assert len(greedy_decode(lm, PROMPT, 2)) == 4 and lm.calls == [1, 1]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_tiny_temperatures_give_the_limit_not_nan(dtype):
    logits = torch.tensor([[3.0, 1.0, 2.9], [3.0, 3.0, 1.0], [-3.0, -1.0, -2.0], [0.0, 0.0, -1.0]], dtype=dtype)
    for temperature in (1e-40, 1e-300):
        probs = sampling_distribution(logits, temperature)  # logits / T overflows to +inf for some
        assert torch.isfinite(probs).all()
        expected = torch.tensor([[1.0, 0.0, 0.0], [0.5, 0.5, 0.0], [0.0, 1.0, 0.0], [0.5, 0.5, 0.0]], dtype=dtype)
        torch.testing.assert_close(probs, expected)  # ties split evenly, as the T -> 0 limit does
    normal = torch.tensor([[3.0, 1.0, 2.9]], dtype=dtype)
    assert torch.equal(sampling_distribution(normal, 0.5), torch.softmax(normal / 0.5, dim=-1))


# ----------------------------------------------------------------------------------------------
# Logits that are NaN, +inf, or -inf everywhere


class Corrupted:
    """`LM`, except that the logits of call number `bad_step` hold `value` in the last row at `tokens`."""

    def __init__(self, bad_step: int, value: float, tokens: int | slice = 3) -> None:
        self.bad_step, self.value, self.tokens, self.step = bad_step, value, tokens, 0

    def __call__(self, ids: torch.Tensor) -> torch.Tensor:
        logits = LM(ids).clone()  # (B, V)
        if self.step == self.bad_step:
            logits[-1, self.tokens] = self.value
        self.step += 1
        return logits


DECODERS = {
    "greedy": lambda lm: greedy_decode(lm, PROMPT, 4),
    "greedy_batch": lambda lm: greedy_decode(lm, torch.tensor([[1, 2], [0, 4]]), 4),
    "sample": lambda lm: sample(lm, PROMPT, 4, generator=torch.Generator().manual_seed(0)),
    "sample_top_k_top_p": lambda lm: sample(lm, PROMPT, 4, temperature=0.7, top_k=3, top_p=0.9,
                                            generator=torch.Generator().manual_seed(0)),
    "beam": lambda lm: beam_search(lm, PROMPT, 2, 4),
    "exact": lambda lm: exact_search(lm, PROMPT, 4, n_best=3),
}


@pytest.mark.parametrize("decode", DECODERS.values(), ids=DECODERS.keys())
@pytest.mark.parametrize("value, found", [(math.nan, "NaN"), (math.inf, r"\+inf")])
@pytest.mark.parametrize("bad_step", [0, 2])
def test_nan_or_plus_inf_logits_are_refused_by_every_decoder(decode, value, found, bad_step):
    lm = Corrupted(bad_step, value)
    with pytest.raises(ValueError, match=rf"next_logits returned {found} at step {bad_step} \(the call for new "
                                         rf"token {bad_step + 1}\), row \d+, token 3: logits must be finite"):
        decode(lm)
    assert lm.step == bad_step + 1  # stopped at the call that returned it


@pytest.mark.parametrize("decode", DECODERS.values(), ids=DECODERS.keys())
def test_a_row_with_every_token_at_minus_inf_is_refused(decode):
    with pytest.raises(ValueError, match=r"next_logits returned -inf for every token at step 1 \(the call for "
                                         r"new token 2\), row \d+: no token can come next"):
        decode(Corrupted(1, -math.inf, tokens=slice(None)))


@pytest.mark.parametrize("decode", DECODERS.values(), ids=DECODERS.keys())
def test_minus_inf_logits_mask_tokens_and_are_allowed(decode):
    probs = LM.log_probs.exp() * (torch.arange(5) != 3)  # (V, V): token 3 can never come next
    out = decode(Bigram(probs / probs.sum(dim=1, keepdim=True)))
    generated = torch.cat([h.token_ids for h in out]) if isinstance(out, list) else out[..., 2:]
    assert generated.numel() > 0 and 3 not in generated.flatten().tolist()


def test_rows_that_finished_are_not_checked():
    # Row 0 emits EOS (id 0) at once; the model then returns NaN for it, which greedy never uses.
    def next_logits(ids: torch.Tensor) -> torch.Tensor:
        logits = torch.tensor([[5.0, 0.0, 0.0], [0.0, 0.0, 5.0]])  # (B, V)
        if ids.shape[1] > 1:
            logits[0] = math.nan
        return logits

    out = greedy_decode(next_logits, torch.tensor([[1], [1]]), 3, eos_id=0)
    assert out.tolist() == [[1, 0, 0, 0], [1, 2, 2, 2]]
