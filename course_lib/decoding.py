"""Decoding: turning a language model's next-token logits into a sequence of tokens.

Every decoder here sees the model only as a function ``next_logits(ids) -> logits``: a LongTensor of
token ids ``(B, T)`` in, the logits of the token that comes next ``(B, V)`` out. A toy table, an
n-gram model and the course's TinyGPT all fit behind it. The decoders always pass whole sequences;
whether the model re-encodes them or reuses a KV cache is the model's business (see
`course_lib.models.TinyGPT.as_next_logits`). If ``next_logits`` has ``vocab_size`` or
``context_length`` attributes, the decoders check up front that the prompt's ids are in the
vocabulary and that the prompt and the new tokens fit in the context; otherwise the ids are checked
against the width of the first logits.

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
- `sampling_distribution`, `top_k_filter`, `top_p_filter` and `sample`: temperature first
  (``logits / T``; ``T = 0`` is the argmax, i.e. greedy), then top-k, then top-p, then softmax.

Ties are broken the same way everywhere, by a stable sort: among equal logits the lower token id
comes first (greedy picks it; top-k keeps exactly k tokens, preferring lower ids at the boundary;
top-p adds tokens of equal probability in id order), and among equal beam scores the earlier beam
and then the lower token id come first.

Left out: repetition and presence penalties, min-p / typical / eta sampling, diverse beam search,
constrained and speculative decoding, and generation beyond the model's context window.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import torch

from course_lib.validation import float_tensor, nonnegative_int, nonnegative_number, positive_int, probability, real

__all__ = [
    "NextLogits", "Hypothesis", "top_k_filter", "top_p_filter", "sampling_distribution", "greedy_decode", "sample",
    "beam_search", "exact_search",
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


def _call(next_logits: NextLogits, ids: torch.Tensor, first: bool, eos_id: int | None) -> torch.Tensor:
    """One model call with its output checked; on the first call, check ids against the vocabulary."""
    logits = next_logits(ids)  # (B, V)
    if not isinstance(logits, torch.Tensor) or logits.shape[:1] != ids.shape[:1] or logits.dim() != 2:
        raise ValueError(f"next_logits must return logits of shape (B, V) = ({ids.shape[0]}, V), got "
                         f"{_describe(logits)}")
    vocab_size = logits.shape[-1]
    if first and int(ids.max()) >= vocab_size:
        raise ValueError(f"prompt_ids must be token ids < vocab size {vocab_size}, got max {int(ids.max())}")
    if first and eos_id is not None and eos_id >= vocab_size:
        raise ValueError(f"eos_id must be < vocab size {vocab_size}, got {eos_id}")
    return logits


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
        logits = _call(next_logits, ids, first=step == 0, eos_id=eos_id)  # (B, V)
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
        logits = _call(next_logits, beams, first=step == 0, eos_id=eos_id)  # (K, V)
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
        logits = torch.cat([_call(next_logits, chunk, first=step == 0, eos_id=eos_id)
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
