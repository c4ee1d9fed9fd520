"""Decoding: turning a language model's next-token logits into a sequence of tokens.

Every decoder here sees the model only as a function ``next_logits(ids) -> logits``: a LongTensor of
token ids ``(B, T)`` in, the logits of the token that comes next ``(B, V)`` out. A toy table, an
n-gram model and the course's TinyGPT all fit behind it. The decoders always pass whole sequences;
whether the model re-encodes them or reuses a KV cache is the model's business (see
`course_lib.models.TinyGPT.as_next_logits`). If ``next_logits`` has ``vocab_size`` or
``context_length`` attributes, the decoders check up front that the prompt's ids are in the
vocabulary and that the prompt and the new tokens fit in the context; otherwise the ids are checked
against the width of the first logits. Logits must be finite, or -inf for a token that cannot come
next: a NaN, a +inf or a row that is -inf everywhere raises a ValueError naming the step instead of
decoding garbage (rows that already ended with EOS are not checked).

Implemented:

- `greedy_decode`: the most probable token at every step.
- `beam_search`: keeps the ``beam_width`` best partial sequences, all advanced in one batched call per
  step. A hypothesis scores ``log_prob / length ** length_penalty`` (length = number of generated
  tokens, EOS included): ``length_penalty=0`` is the plain sum of log-probabilities, ``1`` the mean
  per token. A candidate that ends with EOS is kept as finished if it ranks among the ``beam_width``
  best candidates of its step; the search stops when no live beam can still beat the worst of the
  ``beam_width`` best finished hypotheses, or at ``max_new_tokens``.
- `exact_search`: enumerates every continuation (tiny vocabularies only) to find the true optimum,
  which is how one sees what beam search misses.
- `RandomTableLM`: a toy ``next_logits`` with no structure at all, for experiments on the search
  itself: each prefix is hashed to a row of a fixed table of random logits.
- `sampling_distribution`, `top_k_filter`, `top_p_filter` and `sample`: temperature first
  (``logits / T``; ``T = 0`` is the argmax, i.e. greedy), then top-k, then top-p, then softmax.
- Text in, text out, for the lessons on prompting: `generate_text` (a prompt's continuation, greedy
  or sampled, up to a stop string or token) and, for multiple choice and zero-shot classification,
  `continuation_log_prob` (log p of given tokens after a prompt) and `score_options` (one score per
  candidate answer). These take a *model*: either anything with ``as_next_logits()`` (a course
  TinyGPT), which is also called directly as ``model(ids (B, T)) -> logits (B, T, V)`` to score every
  position of a batch in one teacher-forced pass, or a plain ``next_logits`` function, which is
  called once per scored token on the growing prefix.

Ties are broken the same way everywhere, by a stable sort: among equal logits the lower token id
comes first (greedy picks it; top-k keeps exactly k tokens, preferring lower ids at the boundary;
top-p adds tokens of equal probability in id order), and among equal beam scores the earlier beam
and then the lower token id come first.

Left out: repetition and presence penalties, min-p / typical / eta sampling, diverse beam search,
constrained and speculative decoding, and generation beyond the model's context window; for text,
batches of prompts, several stop strings at once, streaming, and scores normalised per character
or byte (lm-evaluation-harness's ``acc_norm``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import torch

from course_lib.validation import (
    callable_arg,
    float_tensor,
    integer,
    integer_tensor,
    nonnegative_int,
    nonnegative_number,
    one_of,
    positive_int,
    positive_number,
    probability,
    real,
    type_name,
)

__all__ = [
    "NextLogits", "Hypothesis", "top_k_filter", "top_p_filter", "sampling_distribution", "greedy_decode", "sample",
    "beam_search", "exact_search", "RandomTableLM", "TextTokenizer", "generate_text", "continuation_log_prob",
    "score_options",
]


class NextLogits(Protocol):
    """A language model seen by the decoders: token ids ``(B, T)`` -> next-token logits ``(B, V)``."""

    def __call__(self, ids: torch.Tensor) -> torch.Tensor: ...


@dataclass(frozen=True, eq=False)
class Hypothesis:
    """One decoded continuation: its generated token ids (prompt excluded) and how it scored.

    Two hypotheses are equal when their token ids, log-probabilities and scores are; being
    compared by value, a hypothesis is not hashable.
    """

    token_ids: torch.Tensor  # (L,) generated tokens, the EOS included when the hypothesis ended on it
    log_prob: float  # sum of the generated tokens' log-probabilities
    score: float  # log_prob / L ** length_penalty

    def __len__(self) -> int:
        return int(self.token_ids.numel())

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Hypothesis):
            return NotImplemented
        return (torch.equal(self.token_ids.cpu(), other.token_ids.cpu())
                and self.log_prob == other.log_prob and self.score == other.score)

    __hash__ = None  # type: ignore[assignment]


# ----------------------------------------------------------------------------------------------
# Input checks shared by the decoders


def _check_sampling(temperature: object, top_k: object, top_p: object) -> None:
    nonnegative_number(temperature, "temperature")
    if top_k is not None:
        positive_int(top_k, "top_k")
    if top_p is not None:
        probability(top_p, "top_p", allow_zero=False)


def _describe(value: object) -> str:
    if isinstance(value, torch.Tensor):
        return f"a tensor of shape {tuple(value.shape)} and dtype {value.dtype}"
    return repr(value)


def _check_logits(logits: object) -> torch.Tensor:
    float_tensor(logits, "logits")
    if logits.dim() < 1:
        raise ValueError(f"logits must have shape (..., V), got {_describe(logits)}")
    return logits


def _as_batch(prompt_ids: object) -> tuple[torch.Tensor, bool]:
    """Return the prompt as ``(B, T)`` and whether it came in as a single ``(T,)`` sequence."""
    if not isinstance(prompt_ids, torch.Tensor) or prompt_ids.dtype != torch.long:
        raise TypeError(f"prompt_ids must be a LongTensor of token ids, got {_describe(prompt_ids)}")
    if prompt_ids.dim() not in (1, 2) or prompt_ids.shape[-1] == 0 or prompt_ids.numel() == 0:
        raise ValueError(f"prompt_ids must be a non-empty LongTensor of shape (T,) or (B, T), "
                         f"got {_describe(prompt_ids)}")
    if int(prompt_ids.min()) < 0:
        raise ValueError(f"prompt_ids must be token ids >= 0, got min {int(prompt_ids.min())}")
    single = prompt_ids.dim() == 1
    return (prompt_ids[None] if single else prompt_ids), single


def _as_single(prompt_ids: object) -> torch.Tensor:
    """Return a single prompt as ``(1, T)``; searches decode one prompt at a time."""
    batch, _ = _as_batch(prompt_ids)
    if batch.shape[0] != 1:
        raise ValueError(f"prompt_ids must hold one prompt, shape (T,) or (1, T), got shape {tuple(prompt_ids.shape)}")
    return batch


def _check_fits_model(next_logits: NextLogits, prompt: torch.Tensor, max_new_tokens: int) -> None:
    """Check the prompt against the model's ``vocab_size`` and ``context_length``, if it has them.

    The cap is on the output: prompt and new tokens together must fit in ``context_length``, so
    that the whole output can be fed to the model again. The model itself sees one token fewer (the
    last new token is never fed back); a prompt that fills the context gets no new token.
    """
    vocab_size = getattr(next_logits, "vocab_size", None)
    if vocab_size is not None and int(prompt.max()) >= vocab_size:
        raise ValueError(f"prompt_ids must be token ids < vocab size {vocab_size}, got max {int(prompt.max())}")
    context_length = getattr(next_logits, "context_length", None)
    prompt_length = prompt.shape[-1]
    if context_length is None:
        return
    if prompt_length > context_length:
        raise ValueError(f"prompt_ids has {prompt_length} tokens, longer than the context_length {context_length}")
    if prompt_length + max_new_tokens > context_length:
        raise ValueError(f"max_new_tokens={max_new_tokens} with a prompt of {prompt_length} tokens exceeds "
                         f"the context_length {context_length}")


def _check_eos(eos_id: object) -> int | None:
    return None if eos_id is None else nonnegative_int(eos_id, "eos_id")


def _call(next_logits: NextLogits, ids: torch.Tensor, step: int, eos_id: int | None,
          live: torch.Tensor | None = None) -> torch.Tensor:
    """One model call with its output checked; at step 0, check ids against the vocabulary.

    ``live`` (B,) marks the rows whose logits are used (default: all); finished rows are not checked.
    """
    logits = next_logits(ids)  # (B, V)
    if not isinstance(logits, torch.Tensor) or logits.shape[:1] != ids.shape[:1] or logits.dim() != 2:
        raise ValueError(f"next_logits must return logits of shape (B, V) = ({ids.shape[0]}, V), got "
                         f"{_describe(logits)}")
    vocab_size = logits.shape[-1]
    if step == 0 and int(ids.max()) >= vocab_size:
        raise ValueError(f"prompt_ids must be token ids < vocab size {vocab_size}, got max {int(ids.max())}")
    if step == 0 and eos_id is not None and eos_id >= vocab_size:
        raise ValueError(f"eos_id must be < vocab size {vocab_size}, got {eos_id}")
    _check_finite(logits if live is None else logits.masked_fill(~live[:, None], 0.0), step)
    return logits


def _check_finite(logits: torch.Tensor, step: int) -> None:
    """Logits must be finite or -inf (a token the model rules out), with at least one finite per row.

    NaN or +inf would otherwise pass silently: the argmax of a NaN row is arbitrary, and beam
    search's log-probabilities become NaN and are never ranked.
    """
    bad = torch.isnan(logits) | (logits == math.inf)  # (B, V)
    if bool(bad.any()):
        row, token = bad.nonzero()[0].tolist()
        found = "NaN" if math.isnan(logits[row, token]) else "+inf"
        raise ValueError(f"next_logits returned {found} at step {step} (the call for new token {step + 1}), "
                         f"row {row}, token {token}: logits must be finite, or -inf for a token that cannot "
                         f"come next")
    ruled_out = torch.isneginf(logits).all(dim=-1)  # (B,)
    if bool(ruled_out.any()):
        row = int(ruled_out.nonzero()[0])
        raise ValueError(f"next_logits returned -inf for every token at step {step} (the call for new "
                         f"token {step + 1}), row {row}: no token can come next")


# ----------------------------------------------------------------------------------------------
# Filters and the sampling distribution


def top_k_filter(logits: torch.Tensor, k: int) -> torch.Tensor:
    """Keep the ``k`` largest logits of each row (exactly k: lower ids win ties), others -> -inf.

    ``k >= V`` keeps everything. Returns a new tensor of the same shape ``(..., V)``.
    """
    _check_logits(logits)
    k = positive_int(k, "k")
    if k >= logits.shape[-1]:
        return logits.clone()
    order = torch.sort(logits, dim=-1, descending=True, stable=True).indices  # (..., V)
    keep = torch.zeros_like(logits, dtype=torch.bool).scatter_(-1, order[..., :k], True)  # (..., V)
    return logits.masked_fill(~keep, float("-inf"))


def top_p_filter(logits: torch.Tensor, p: float, min_tokens_to_keep: int = 1) -> torch.Tensor:
    """Keep the smallest set of most probable tokens whose probability mass reaches ``p``.

    Tokens are added from the most probable down (equal probabilities in id order) until the mass of
    those already added is >= ``p``: the token that crosses ``p`` is kept. At least
    ``min_tokens_to_keep`` tokens are kept; ``p = 1`` keeps every token. Removed logits become -inf;
    the kept ones are unchanged (softmax renormalises them).
    """
    _check_logits(logits)
    p = probability(p, "p", allow_zero=False)
    min_tokens_to_keep = positive_int(min_tokens_to_keep, "min_tokens_to_keep")
    if p == 1.0:
        return logits.clone()
    sorted_logits, order = torch.sort(logits, dim=-1, descending=True, stable=True)  # (..., V)
    sorted_probs = torch.softmax(sorted_logits, dim=-1)  # (..., V)
    mass_before = torch.cumsum(sorted_probs, dim=-1) - sorted_probs  # (..., V) mass of the better tokens
    keep_sorted = mass_before < p  # (..., V)
    keep_sorted[..., :min_tokens_to_keep] = True
    keep = torch.zeros_like(keep_sorted).scatter_(-1, order, keep_sorted)  # (..., V) back to id order
    return logits.masked_fill(~keep, float("-inf"))


def _tempered(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """``logits / temperature``; a row that overflows (a temperature so small that a finite logit
    divided by it is infinite) gets its exact T -> 0 limit: 0 at its maxima, -inf elsewhere."""
    scaled = logits / temperature  # (..., V)
    overflow = (~torch.isfinite(scaled) & torch.isfinite(logits)).any(dim=-1, keepdim=True)  # (..., 1)
    if bool(overflow.any()):
        top = logits == logits.amax(dim=-1, keepdim=True)  # (..., V) every maximum, ties included
        limit = torch.zeros_like(logits).masked_fill(~top, -math.inf)  # (..., V)
        scaled = torch.where(overflow, limit, scaled)  # (..., V)
    return scaled


def sampling_distribution(logits: torch.Tensor, temperature: float = 1.0, top_k: int | None = None,
                          top_p: float | None = None) -> torch.Tensor:
    """The distribution `sample` draws from: softmax of ``logits / temperature``, then filtered.

    Order: temperature, then top-k, then top-p, then softmax (so top-p sees the tempered
    probabilities). ``temperature = 0`` gives the one-hot of the argmax (greedy), the limit T -> 0.
    Returns probabilities ``(..., V)`` that sum to 1 along the last axis.
    """
    _check_logits(logits)
    _check_sampling(temperature, top_k, top_p)
    if temperature == 0:
        greedy = logits.argmax(dim=-1, keepdim=True)  # (..., 1) first maximum: the lowest id among ties
        return torch.zeros_like(logits).scatter_(-1, greedy, 1.0)
    scaled = _tempered(logits, temperature)  # (..., V)
    if top_k is not None:
        scaled = top_k_filter(scaled, top_k)
    if top_p is not None:
        scaled = top_p_filter(scaled, top_p)
    return torch.softmax(scaled, dim=-1)  # (..., V)


# ----------------------------------------------------------------------------------------------
# Token-by-token decoders


def _generate(next_logits: NextLogits, prompt_ids: torch.Tensor, max_new_tokens: int, eos_id: int | None,
              pick: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """Append ``pick(logits)`` until ``max_new_tokens`` or until every row has emitted ``eos_id``.

    Rows that have finished are padded with ``eos_id`` while the others go on.
    """
    ids, single = _as_batch(prompt_ids)  # (B, T0)
    max_new_tokens = positive_int(max_new_tokens, "max_new_tokens")
    eos_id = _check_eos(eos_id)
    _check_fits_model(next_logits, ids, max_new_tokens)
    done = torch.zeros(ids.shape[0], dtype=torch.bool, device=ids.device)  # (B,)
    for step in range(max_new_tokens):
        logits = _call(next_logits, ids, step, eos_id, live=~done)  # (B, V)
        token = pick(logits)  # (B,)
        if eos_id is not None:
            token = token.masked_fill(done, eos_id)  # (B,)
            done = done | (token == eos_id)
        ids = torch.cat([ids, token[:, None]], dim=1)  # (B, T + 1)
        if bool(done.all()):
            break
    return ids[0] if single else ids


def greedy_decode(next_logits: NextLogits, prompt_ids: torch.Tensor, max_new_tokens: int,
                  eos_id: int | None = None) -> torch.Tensor:
    """Append the most probable token (lowest id among ties) ``max_new_tokens`` times or until EOS.

    ``prompt_ids`` is ``(T,)`` or ``(B, T)``; returns the prompt followed by the new tokens, in the
    same layout. In a batch, rows that reached EOS are padded with ``eos_id``.
    """
    return _generate(next_logits, prompt_ids, max_new_tokens, eos_id, pick=lambda logits: logits.argmax(dim=-1))


def sample(next_logits: NextLogits, prompt_ids: torch.Tensor, max_new_tokens: int, temperature: float = 1.0,
           top_k: int | None = None, top_p: float | None = None, generator: torch.Generator | None = None,
           eos_id: int | None = None) -> torch.Tensor:
    """Draw each new token from `sampling_distribution` (temperature, then top-k, then top-p).

    ``temperature = 0`` is greedy decoding. ``generator`` makes the draws reproducible. Same layout
    and EOS handling as `greedy_decode`.
    """
    _check_sampling(temperature, top_k, top_p)

    def pick(logits: torch.Tensor) -> torch.Tensor:
        probs = sampling_distribution(logits, temperature, top_k, top_p)  # (B, V)
        return torch.multinomial(probs, num_samples=1, generator=generator)[:, 0]  # (B,)

    return _generate(next_logits, prompt_ids, max_new_tokens, eos_id, pick)


# ----------------------------------------------------------------------------------------------
# Searches over whole sequences


def _normalised(log_prob: float, length: int, length_penalty: float) -> float:
    return log_prob / length ** length_penalty


def _best_reachable(log_prob: float, length: int, max_new_tokens: int, length_penalty: float) -> float:
    """Upper bound on the score of any extension of a live beam of ``length`` tokens.

    Log-probabilities only fall as tokens are added, and ``log_prob / L ** alpha`` (log_prob <= 0) is
    monotone in L, so the bound is attained at the shortest or the longest possible length.
    """
    return max(_normalised(log_prob, n, length_penalty) for n in (length + 1, max_new_tokens))


def _top_stable(values: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``n`` largest of ``values`` (N,) and their indices, equal values in index order.

    Same result as the first ``n`` of a stable descending sort, without sorting all N values.
    """
    if n >= len(values):
        return torch.sort(values, descending=True, stable=True)
    threshold = torch.topk(values, n).values[-1]
    contenders = (values >= threshold).nonzero()[:, 0]  # (m,) m >= n, in index order
    order = torch.sort(values[contenders], descending=True, stable=True).indices[:n]  # (n,)
    return values[contenders[order]], contenders[order]


def _ranked(hypotheses: list[Hypothesis], n: int) -> list[Hypothesis]:
    return sorted(hypotheses, key=lambda h: -h.score)[:n]  # sorted() is stable: earlier wins ties


def beam_search(next_logits: NextLogits, prompt_ids: torch.Tensor, beam_width: int, max_new_tokens: int,
                eos_id: int | None = None, length_penalty: float = 0.0) -> list[Hypothesis]:
    """Beam search from one prompt; returns up to ``beam_width`` hypotheses, best first.

    All live beams advance in one batched ``next_logits`` call per step. Without EOS and with
    ``length_penalty=0`` every hypothesis has ``max_new_tokens`` tokens and its score is the plain sum
    of their log-probabilities. With ``beam_width=1`` and ``length_penalty=0`` it returns the greedy
    continuation.
    """
    beams = _as_single(prompt_ids)  # (1, T0): the live beams, best first
    beam_width = positive_int(beam_width, "beam_width")
    max_new_tokens = positive_int(max_new_tokens, "max_new_tokens")
    eos_id = _check_eos(eos_id)
    length_penalty = real(length_penalty, "length_penalty")
    prompt_length = beams.shape[1]
    _check_fits_model(next_logits, beams, max_new_tokens)
    beam_log_probs = torch.zeros(1, dtype=torch.float64, device=beams.device)  # (K,)
    finished: list[Hypothesis] = []
    for step in range(max_new_tokens):
        logits = _call(next_logits, beams, step, eos_id)  # (K, V)
        vocab_size = logits.shape[-1]
        candidates = beam_log_probs[:, None] + torch.log_softmax(logits.double(), dim=-1)  # (K, V)
        scores, flat = _top_stable(candidates.flatten(), 2 * beam_width)  # (<= 2K,)
        keep_beams, keep_tokens, keep_log_probs = [], [], []
        for rank, (index, log_prob) in enumerate(zip(flat.tolist(), scores.tolist())):
            if log_prob == float("-inf") or len(keep_beams) == beam_width:
                break
            beam, token = divmod(index, vocab_size)
            if token == eos_id:
                if rank < beam_width:
                    ids = torch.cat([beams[beam, prompt_length:], beams.new_tensor([token])])  # (L,)
                    finished.append(Hypothesis(ids, log_prob, _normalised(log_prob, step + 1, length_penalty)))
                continue
            keep_beams.append(beam)
            keep_tokens.append(token)
            keep_log_probs.append(log_prob)
        if not keep_beams:
            return _ranked(finished, beam_width)
        parents = torch.tensor(keep_beams, device=beams.device)  # (K',)
        new_tokens = torch.tensor(keep_tokens, device=beams.device)  # (K',)
        beams = torch.cat([beams[parents], new_tokens[:, None]], dim=1)  # (K', T + 1)
        beam_log_probs = torch.tensor(keep_log_probs, dtype=torch.float64, device=beams.device)  # (K',)
        best = _ranked(finished, beam_width)
        if len(best) == beam_width and step + 1 < max_new_tokens and \
                _best_reachable(keep_log_probs[0], step + 1, max_new_tokens, length_penalty) <= best[-1].score:
            return best
    alive = [Hypothesis(beams[i, prompt_length:], lp, _normalised(lp, max_new_tokens, length_penalty))
             for i, lp in enumerate(beam_log_probs.tolist())]
    return _ranked(finished + alive, beam_width)


def exact_search(next_logits: NextLogits, prompt_ids: torch.Tensor, max_new_tokens: int,
                 eos_id: int | None = None, length_penalty: float = 0.0, n_best: int = 1,
                 max_sequences: int = 100_000) -> list[Hypothesis]:
    """Score every possible continuation by enumeration and return the ``n_best`` best, best first.

    A continuation ends at the first EOS or after ``max_new_tokens`` tokens; it scores like in
    `beam_search`. The enumeration grows as V ** max_new_tokens, so it is meant for toy vocabularies:
    more than ``max_sequences`` continuations raise a ValueError. Each depth is scored in one
    batched call (split in chunks of 4096 sequences).
    """
    frontier = _as_single(prompt_ids)  # (N, T): unfinished continuations
    max_new_tokens = positive_int(max_new_tokens, "max_new_tokens")
    eos_id = _check_eos(eos_id)
    length_penalty = real(length_penalty, "length_penalty")
    n_best = positive_int(n_best, "n_best")
    max_sequences = positive_int(max_sequences, "max_sequences")
    prompt_length = frontier.shape[1]
    _check_fits_model(next_logits, frontier, max_new_tokens)
    frontier_log_probs = torch.zeros(1, dtype=torch.float64, device=frontier.device)  # (N,)
    ended: list[tuple[torch.Tensor, torch.Tensor]] = []  # (ids (M, L), log_probs (M,)) per depth
    for step in range(max_new_tokens):
        logits = torch.cat([_call(next_logits, chunk, step, eos_id)
                            for chunk in frontier.split(4096)])  # (N, V)
        vocab_size = logits.shape[-1]
        if step == 0:
            branching = vocab_size - (eos_id is not None)
            if branching ** max_new_tokens > max_sequences:
                raise ValueError(f"exact search would enumerate {branching}**{max_new_tokens} sequences, more "
                                 f"than max_sequences={max_sequences}; use a smaller vocabulary or max_new_tokens")
        log_probs = frontier_log_probs[:, None] + torch.log_softmax(logits.double(), dim=-1)  # (N, V)
        tokens = torch.arange(vocab_size, device=frontier.device)  # (V,)
        if eos_id is not None:
            ids = torch.cat([frontier[:, prompt_length:], frontier.new_full((len(frontier), 1), eos_id)], 1)
            ended.append((ids, log_probs[:, eos_id]))  # (N, L), (N,)
            tokens = tokens[tokens != eos_id]  # (V - 1,)
        frontier = torch.cat([frontier.repeat_interleave(len(tokens), dim=0),
                              tokens.repeat(len(frontier))[:, None]], dim=1)  # (N * V', T + 1)
        frontier_log_probs = log_probs[:, tokens].flatten()  # (N * V',)
    ended.append((frontier[:, prompt_length:], frontier_log_probs))
    best: list[Hypothesis] = []  # the n_best of each length, then the n_best of those
    for ids, log_probs in ended:
        scores = log_probs / ids.shape[1] ** length_penalty  # (M,)
        top = torch.sort(scores, descending=True, stable=True).indices[:n_best]  # (n_best,)
        best.extend(Hypothesis(ids[i], float(log_probs[i]), float(scores[i])) for i in top.tolist())
    return _ranked(best, n_best)  # ties: shorter first, then enumeration order


class RandomTableLM:
    """A toy language model whose next-token logits are random but fixed: a ``next_logits`` for search experiments.

    The whole sequence (prompt and generated tokens) is hashed to one of ``rows`` rows of a table of
    ``scale * N(0, 1)`` logits drawn once from ``seed`` (float64): ``row = (31 * row + id + 1) % rows``
    over the ids, starting from 0. The same prefix always gets the same row, in any batch; different
    prefixes can share a row, but the rows look unrelated. Left out: any structure a real model has
    (the logits do not depend on meaning), and a context limit.
    """

    def __init__(self, vocab_size: int, seed: int, rows: int = 4099, scale: float = 1.5) -> None:
        self.vocab_size = positive_int(vocab_size, "vocab_size")
        generator = torch.Generator().manual_seed(integer(seed, "seed"))
        rows = positive_int(rows, "rows")
        scale = positive_number(scale, "scale")
        self.table = scale * torch.randn(rows, self.vocab_size, generator=generator, dtype=torch.float64)  # (rows, V)

    def __call__(self, ids: torch.Tensor) -> torch.Tensor:  # (B, T) -> (B, V)
        ids = integer_tensor(ids, "ids", ndim=2)
        row = torch.zeros(len(ids), dtype=torch.long)  # (B,)
        for t in range(ids.shape[1]):
            row = (row * 31 + ids[:, t].cpu() + 1) % len(self.table)
        return self.table[row]


# ----------------------------------------------------------------------------------------------
# Text in, text out: generation and scoring with a tokenizer


class TextTokenizer(Protocol):
    """What `generate_text` and `score_options` need of a tokenizer (every course tokenizer fits)."""

    def encode(self, text: str) -> list[int]: ...

    def decode(self, ids: Iterable[int]) -> str: ...


def _as_next_logits(model: Any) -> NextLogits:
    """The decoders' view of ``model``: a fresh ``model.as_next_logits()``, or model itself if it is one."""
    if hasattr(model, "as_next_logits"):
        return model.as_next_logits()
    return callable_arg(model, "model", "a model with as_next_logits() or a next_logits(ids) function")


def _device_of(model: Any) -> torch.device:
    """Where a model's ids must live: the device of its first parameter (or of the module it wraps,
    ``model.model``, as `course_lib.models.NextTokenLogits` does), or the CPU."""
    module = model if isinstance(model, torch.nn.Module) else getattr(model, "model", None)
    if isinstance(module, torch.nn.Module):
        for parameter in module.parameters():
            return parameter.device
    return torch.device("cpu")


def _check_tokenizer(tokenizer: Any) -> TextTokenizer:
    if not (callable(getattr(tokenizer, "encode", None)) and callable(getattr(tokenizer, "decode", None))):
        raise TypeError(f"tokenizer must have encode(text) and decode(ids) methods, got {type_name(tokenizer)}")
    return tokenizer


def _encode_text(tokenizer: TextTokenizer, text: object, name: str) -> list[int]:
    """The ids of ``text``, which must be a str that encodes to at least one token."""
    if not isinstance(text, str):
        raise TypeError(f"{name} must be a str, got {type_name(text)}")
    ids = list(tokenizer.encode(text))
    if not ids:
        raise ValueError(f"{name} must encode to at least one token, got {text!r}")
    return ids


def _check_stop(stop: object, next_logits: NextLogits) -> str | int | None:
    """``stop`` as a non-empty str, a token id (below the model's vocab_size, if known) or None."""
    if stop is None or (isinstance(stop, str) and stop):
        return stop
    if isinstance(stop, str):
        raise ValueError("stop must be a non-empty str, a token id or None, got ''")
    token = integer(stop, "stop")
    vocab_size = getattr(next_logits, "vocab_size", None)
    if token < 0 or (vocab_size is not None and token >= vocab_size):
        raise ValueError(f"stop must be a token id in [0, {vocab_size}), got {token}" if vocab_size is not None
                         else f"stop must be a token id >= 0, got {token}")
    return token


def generate_text(model: Any, tokenizer: TextTokenizer, prompt: str, max_new_tokens: int, *,
                  temperature: float = 0.0, top_k: int | None = None, top_p: float | None = None,
                  stop: str | int | None = None, generator: torch.Generator | None = None) -> str:
    """The model's continuation of ``prompt``, as text (the prompt itself is not repeated).

    ``model`` has ``as_next_logits()`` (a course TinyGPT) or is a ``next_logits(ids)`` function.
    Each new token is the argmax when ``temperature`` is 0 (`greedy_decode`, the default, so the
    same prompt always gives the same text) and is drawn by `sample` otherwise (temperature, then
    ``top_k``, then ``top_p``; ``generator`` makes the draws reproducible). Generation ends after
    ``max_new_tokens`` tokens or at ``stop``: a string (e.g. ``"\n"``, which ends a document of the
    course corpus) or a token id. The stop itself is not returned, as in OpenAI's API: the text ends
    where the stop string begins. The prompt and ``max_new_tokens`` must fit in the model's
    ``context_length`` (when it has one), checked before the first token.
    """
    next_logits = _as_next_logits(model)
    tokenizer = _check_tokenizer(tokenizer)
    max_new_tokens = positive_int(max_new_tokens, "max_new_tokens")
    _check_sampling(temperature, top_k, top_p)
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator or None, got {type_name(generator)}")
    stop = _check_stop(stop, next_logits)
    ids = torch.tensor(_encode_text(tokenizer, prompt, "prompt"), device=_device_of(model))  # (T0,)
    _check_fits_model(next_logits, ids[None], max_new_tokens)
    new: list[int] = []
    for _ in range(max_new_tokens):
        if temperature == 0:
            ids = greedy_decode(next_logits, ids, 1)  # (T + 1,)
        else:
            ids = sample(next_logits, ids, 1, temperature, top_k, top_p, generator)  # (T + 1,)
        token = int(ids[-1])
        if token == stop:  # a stop token id
            break
        new.append(token)
        if isinstance(stop, str) and stop in tokenizer.decode(new):
            break
    text = tokenizer.decode(new)
    return text.split(stop)[0] if isinstance(stop, str) else text


def _as_ids(ids: object, name: str) -> list[int]:
    """``ids`` (ints, a 1-D integer tensor or array) as a non-empty list of ids >= 0."""
    if isinstance(ids, torch.Tensor):
        ids = integer_tensor(ids, name, ndim=1).tolist()
    elif isinstance(ids, (str, bytes)) or not isinstance(ids, Iterable):
        raise TypeError(f"{name} must be a sequence of token ids or a 1-D integer tensor, got {type_name(ids)}")
    ids = [integer(i, f"{name}[{position}]") for position, i in enumerate(ids)]
    if not ids:
        raise ValueError(f"{name} must hold at least one token id, got []")
    if min(ids) < 0:
        raise ValueError(f"{name} must hold token ids >= 0, got {min(ids)}")
    return ids


def _check_fits_scoring(model: Any, prompt: list[int], continuation: list[int], name: str) -> None:
    """The ids against the model's ``vocab_size``, and what it reads against its ``context_length``."""
    vocab_size = getattr(model, "vocab_size", None)
    if vocab_size is not None and max(prompt + continuation) >= vocab_size:
        raise ValueError(f"prompt and {name} must hold token ids < vocab size {vocab_size}, "
                         f"got {max(prompt + continuation)}")
    context_length = getattr(model, "context_length", None)
    read = len(prompt) + len(continuation) - 1  # the last token is scored, never read
    if context_length is not None and read > context_length:
        raise ValueError(f"prompt ({len(prompt)} tokens) and {name} ({len(continuation)} tokens) do not fit in "
                         f"the context_length {context_length}: the model would read {read} tokens")


def _teacher_forced_log_probs(model: Any, prompt: list[int], continuations: list[list[int]]) -> list[float]:
    """Each continuation's log-probability from one pass of ``model(ids) -> (B, T, V)`` over the batch.

    Rows are right-padded with id 0: the model is causal, so a padded position never changes the
    logits of an earlier one, and only positions before the padding are read.
    """
    rows = [prompt + c for c in continuations]
    ids = torch.zeros(len(rows), max(map(len, rows)) - 1, dtype=torch.long, device=_device_of(model))  # (B, T)
    for r, row in enumerate(rows):
        ids[r, :len(row) - 1] = torch.tensor(row[:-1])
    with torch.no_grad():
        logits = model(ids)  # (B, T, V)
    if not isinstance(logits, torch.Tensor) or logits.shape[:2] != ids.shape or logits.dim() != 3:
        raise ValueError(f"model(ids) must return logits of shape (B, T, V) = ({ids.shape[0]}, {ids.shape[1]}, V), "
                         f"got {_describe(logits)}")
    log_probs = torch.log_softmax(logits.double(), dim=-1)  # (B, T, V)
    first = len(prompt) - 1  # the position whose logits predict the first continuation token
    device = log_probs.device
    return [float(log_probs[r, first + torch.arange(len(c), device=device), torch.tensor(c, device=device)].sum())
            for r, c in enumerate(continuations)]  # each a sum over the continuation's L tokens


def _stepwise_log_prob(next_logits: NextLogits, prompt: list[int], continuation: list[int]) -> float:
    """A continuation's log-probability from one ``next_logits`` call per token, on the growing prefix."""
    total, device = 0.0, _device_of(next_logits)
    for k, token in enumerate(continuation):
        ids = torch.tensor([prompt + continuation[:k]], device=device)  # (1, T)
        logits = _call(next_logits, ids, k, None)  # (1, V)
        if token >= logits.shape[-1]:
            raise ValueError(f"continuation ids must be < vocab size {logits.shape[-1]}, got {token}")
        total += float(torch.log_softmax(logits[0].double(), dim=-1)[token])
    return total


def _log_probs(model: Any, prompt: list[int], continuations: list[list[int]], names: list[str]) -> list[float]:
    """log p(continuation | prompt) for each continuation, checked first against the model's sizes."""
    for continuation, name in zip(continuations, names, strict=True):
        _check_fits_scoring(model, prompt, continuation, name)
    if hasattr(model, "as_next_logits"):
        return _teacher_forced_log_probs(model, prompt, continuations)
    next_logits = callable_arg(model, "model", "a model with as_next_logits() or a next_logits(ids) function")
    return [_stepwise_log_prob(next_logits, prompt, c) for c in continuations]


def continuation_log_prob(model: Any, prompt_ids: Iterable[int] | torch.Tensor,
                          continuation_ids: Iterable[int] | torch.Tensor) -> float:
    """log p(continuation | prompt): the sum over the continuation's tokens of log p(token | all before it).

    ``model`` has ``as_next_logits()`` (a course TinyGPT: scored in one teacher-forced pass,
    ``model(ids)`` giving the logits after every position) or is a ``next_logits(ids)`` function
    (called once per continuation token on the growing prefix). Computed in float64; a sum of log
    probabilities, not a product of probabilities, which would underflow for long continuations.
    Both arguments are non-empty sequences of ids (or 1-D integer tensors or arrays); the model reads
    the prompt and all but the last continuation token, which must fit in its ``context_length``.
    """
    prompt = _as_ids(prompt_ids, "prompt_ids")
    continuation = _as_ids(continuation_ids, "continuation_ids")
    return _log_probs(model, prompt, [continuation], ["continuation_ids"])[0]


def score_options(model: Any, tokenizer: TextTokenizer, prompt: str, options: Sequence[str],
                  normalize: str = "sum") -> list[float]:
    """How well each option continues ``prompt``: a log-probability, higher is better, one per option.

    For multiple choice and zero-shot classification: the predicted answer is the option with the
    highest score, and no text is generated, so the answer is always one of the options.

    ``normalize="sum"`` gives log p(option | prompt), the sum over the option's tokens. Every token
    multiplies in a probability below 1, so a longer option scores lower for its length alone, and a
    one-token label can beat a correct three-token one. ``"mean"`` divides by the number of the option's
    tokens (the mean log-probability per token), which removes that penalty but favours options whose
    later tokens are predictable once the first is chosen; per-token scores also depend on the
    tokenizer. Neither is right for every task: compare them.

    Tokenization: the prompt and each option are encoded *separately* and their ids concatenated, so
    exactly the option's own tokens are scored, the same ids whatever the prompt. The model then
    reads a segmentation that may differ from the one it saw in training when the cut between prompt
    and option falls inside a pre-token: a GPT-2-style BPE attaches the space before a word to that
    word, so write ``prompt="... lives in"`` with ``options=[" Pominport.", ...]``, never the space
    at the end of the prompt: ``"in "`` + ``"Pominport."`` encodes the space alone, a sequence the
    model has rarely seen (the course's tiny GPT then prefers the true object for 17 of its world's
    120 facts instead of all 120). Encoding prompt + option together instead
    would give the canonical segmentation, but then a token may straddle the cut, and the prompt's
    tokens are no longer the same for every option.

    ``model`` is as in `continuation_log_prob`; a model with ``as_next_logits()`` scores all
    options in one batched pass.
    """
    tokenizer = _check_tokenizer(tokenizer)
    if isinstance(options, str) or not isinstance(options, Sequence):
        raise TypeError(f"options must be a sequence of str, got {type_name(options)}")
    if not options:
        raise ValueError("options must hold at least one option, got []")
    normalize = one_of(normalize, "normalize", ("sum", "mean"))
    prompt_ids = _encode_text(tokenizer, prompt, "prompt")
    names = [f"options[{i}]" for i in range(len(options))]
    encoded = [_encode_text(tokenizer, option, name) for option, name in zip(options, names, strict=True)]
    log_probs = _log_probs(model, prompt_ids, encoded, names)
    return log_probs if normalize == "sum" else [lp / len(ids) for lp, ids in zip(log_probs, encoded, strict=True)]
