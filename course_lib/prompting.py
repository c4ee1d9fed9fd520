"""Prompting: classifying by scoring answers, templates, demonstrations and their order, calibration, voting.

A language model classifies without a single training step: every candidate answer (a *label*) is
scored by its log-probability as the continuation of the prompt
(`course_lib.decoding.score_options`), and the best-scoring label is the prediction. The rest of
this module changes the prompt or reads the scores:

- `Template`: a prompt with named slots, ``Template("Q: {question}\\nA:")``; a plain format string
  works wherever a template does. Filling it without a value for every slot is an error that names
  the slot, never a prompt with a hole in it.
- `build_prompt`: demonstrations (the template filled with an input, followed by its answer), then
  the query, one per line: few-shot prompting. With no demonstrations it is zero-shot.
- `orderings`: every order of the demonstrations, or a seeded sample of distinct orders, to
  measure how much accuracy depends on an order that carries no information.
- `classify`: the labels' scores and their probabilities renormalised over the labels.
- Contextual calibration (Zhao et al. 2021, section 5): a model is biased towards some labels
  whatever the input (the majority label of the demonstrations, the last one, a frequent word).
  `content_free_probs` measures that bias as the label distribution p_cf for inputs that carry no
  content ("N/A", "", "[MASK]"), and `calibrate` divides it out: W = diag(p_cf)^-1, b = 0, so the
  content-free input becomes exactly uniform.
- Self-consistency (Wang et al. 2023): sample several answers and keep the most frequent one,
  `majority_vote`; `self_consistency` samples with `course_lib.decoding.generate_text` and votes.

Left out: label words of several spellings (Zhao et al. sum the probabilities of synonyms), the
other calibrations of the paper (``W = I, b = -p_cf``) and later ones (batch, domain-context
calibration), choosing demonstrations by similarity, instruction templates of chat models, and
weighting votes by the samples' probabilities.
"""

from __future__ import annotations

import itertools
import math
import random
import string as _string
from collections import Counter
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from course_lib.decoding import TextTokenizer, generate_text, score_options
from course_lib.softmax import softmax
from course_lib.validation import callable_arg, nonnegative_int, positive_int, positive_number, string, type_name

__all__ = [
    "CONTENT_FREE_INPUTS",
    "Template",
    "build_prompt",
    "orderings",
    "Classification",
    "classify",
    "content_free_probs",
    "calibrate",
    "majority_vote",
    "Vote",
    "self_consistency",
]

# The content-free test inputs of Zhao et al. 2021 (their code averages p_cf over these three).
CONTENT_FREE_INPUTS = ("N/A", "", "[MASK]")

MAX_ORDERINGS = math.factorial(8)  # `orderings` lists every order of at most 8 items (40,320)

Query = Mapping[str, str] | str  # the values of a template's slots; a str fills a one-slot template


class Template:
    """A prompt with named slots: ``Template("Q: {question}\\nA:").format(question="Who?")``.

    Slots are plain names in braces (``{question}``); ``{{`` and ``}}`` are literal braces.
    Positional slots (``{}``, ``{0}``), attributes, indices, conversions and format specs are
    refused, so a template is filled by names only and in one way.
    """

    def __init__(self, text: str) -> None:
        self.text = string(text, "template")
        slots: list[str] = []
        try:
            fields = list(_string.Formatter().parse(self.text))
        except ValueError as error:
            raise ValueError(f"template is not a valid format string ({error}), got {self.text!r}") from None
        for _, field, spec, conversion in fields:
            if field is None:
                continue
            if not field.isidentifier() or spec or conversion:
                raise ValueError(f"template slots must be plain names like {{question}}, got "
                                 f"{{{field}{'!' + conversion if conversion else ''}{':' + spec if spec else ''}}} "
                                 f"in {self.text!r}")
            if field not in slots:
                slots.append(field)
        self.slots: tuple[str, ...] = tuple(slots)

    def format(self, **values: str) -> str:
        """The template with every slot filled; a missing or an unknown slot raises ValueError."""
        for slot in self.slots:
            if slot not in values:
                raise ValueError(f"template {self.text!r} needs a value for slot {slot!r}, "
                                 f"got values for {sorted(values)}")
        for name, value in values.items():
            if name not in self.slots:
                raise ValueError(f"template {self.text!r} has no slot {name!r}; its slots are {list(self.slots)}")
            string(value, f"the value of slot {name!r}")
        return self.text.format(**values)

    def fill(self, query: Query) -> str:
        """The template filled from a mapping of slot values, or from one str if it has one slot."""
        if not self.slots:
            raise ValueError(f"template must have a slot for the query, like {{question}}, got {self.text!r}")
        if isinstance(query, str):
            if len(self.slots) != 1:
                raise ValueError(f"query can be a single str only for a template with one slot; "
                                 f"{self.text!r} has slots {list(self.slots)}")
            return self.format(**{self.slots[0]: query})
        if not isinstance(query, Mapping):
            raise TypeError(f"query must be a str or a mapping of slot values, got {type_name(query)}")
        return self.format(**query)

    def __repr__(self) -> str:
        return f"Template({self.text!r})"


def _as_template(template: Template | str) -> Template:
    return template if isinstance(template, Template) else Template(template)


def build_prompt(template: Template | str, query: Query,
                 demonstrations: Sequence[tuple[Query, str]] = (), separator: str = "\n") -> str:
    """Demonstrations, then the query: ``separator.join([fill(x) + answer for x, answer in demos] + [fill(query)])``.

    ``Template("{person} lives in")`` with the demonstration ``("Rozi", " Pominport.")`` and the
    query ``"Kazi"`` gives ``"Rozi lives in Pominport.\\nKazi lives in"``: each demonstration is
    written exactly as the model will be asked to continue the query, answer included (so an answer
    starts with the space that the labels of `classify` start with).
    """
    template = _as_template(template)
    string(separator, "separator")
    if isinstance(demonstrations, (str, Mapping)) or not isinstance(demonstrations, Sequence):
        raise TypeError(f"demonstrations must be a sequence of (query, answer) pairs, got {type_name(demonstrations)}")
    parts = []
    for i, demonstration in enumerate(demonstrations):
        if not isinstance(demonstration, tuple) or len(demonstration) != 2:
            raise TypeError(f"demonstrations[{i}] must be a (query, answer) pair, got {demonstration!r}")
        parts.append(template.fill(demonstration[0]) + string(demonstration[1], f"demonstrations[{i}]'s answer"))
    return separator.join(parts + [template.fill(query)])


def _permutation(items: tuple, rank: int) -> tuple:
    """The permutation of ``items`` with lexicographic index ``rank`` (0 .. len(items)! - 1)."""
    pool, chosen = list(items), []
    for k in range(len(pool), 0, -1):
        index, rank = divmod(rank, math.factorial(k - 1))
        chosen.append(pool.pop(index))
    return tuple(chosen)


def orderings(items: Sequence[Any], n: int | None = None, seed: int = 0) -> list[tuple]:
    """Orders of ``items``: all ``len(items)!`` of them, or ``n`` distinct ones drawn with ``seed``.

    All orders come in the order of `itertools.permutations` (the identity first). A sample draws
    ``n`` distinct permutation indices uniformly without replacement (`random.Random(seed)`) and
    returns them in increasing index order, so the same seed gives the same orders, and a sample of
    all ``len(items)!`` is exactly the full list. Items are placed by position: equal items still
    give ``len(items)!`` orders. Listing all orders is refused beyond 8 items (8! = 40,320);
    sampling works for any number of items.
    """
    if isinstance(items, str) or not isinstance(items, Sequence):
        raise TypeError(f"items must be a sequence, got {type_name(items)}")
    items = tuple(items)
    total = math.factorial(len(items))
    if n is None:
        if total > MAX_ORDERINGS:
            raise ValueError(f"items has {len(items)}! = {total} orders, more than {MAX_ORDERINGS}; "
                             f"pass n to sample some of them, got n=None")
        return list(itertools.permutations(items))
    n = positive_int(n, "n")
    if n > total:
        raise ValueError(f"n must be at most {len(items)}! = {total}, the number of orders of {len(items)} items, "
                         f"got {n}")
    seed = nonnegative_int(seed, "seed")
    ranks = sorted(random.Random(seed).sample(range(total), n))
    return [_permutation(items, rank) for rank in ranks]


@dataclass(frozen=True, eq=False)
class Classification:
    """The labels, their scores (log-probabilities), their probabilities over the labels, the prediction."""

    labels: tuple[str, ...]
    scores: np.ndarray  # (K,) log p(label | prompt), or its mean per token (normalize="mean")
    probs: np.ndarray  # (K,) softmax of the scores over the labels (calibrated if p_cf was given)
    prediction: str  # the label of highest probability; the first such label on a tie


def _check_labels(labels: Sequence[str]) -> tuple[str, ...]:
    if isinstance(labels, str) or not isinstance(labels, Sequence):
        raise TypeError(f"labels must be a sequence of str, got {type_name(labels)}")
    labels = tuple(string(label, f"labels[{i}]", nonempty=True) for i, label in enumerate(labels))
    if len(labels) < 2 or len(set(labels)) != len(labels):
        raise ValueError(f"labels must be at least 2 distinct strings, got {list(labels)}")
    return labels


def classify(model: Any, tokenizer: TextTokenizer, prompt: str, labels: Sequence[str], *,
             normalize: str = "sum", p_cf: Sequence[float] | np.ndarray | None = None) -> Classification:
    """Score every label as the continuation of ``prompt`` and pick the most probable one.

    ``scores`` are `course_lib.decoding.score_options`'s (read its notes: the space before a word
    belongs to the label, ``" Pominport."``, not to the prompt); ``probs`` renormalises them over the
    labels, ``softmax(scores)``, in float64. With ``p_cf`` (from `content_free_probs`) the
    probabilities are calibrated by `calibrate` before the prediction is taken.
    """
    labels = _check_labels(labels)
    scores = np.array(score_options(model, tokenizer, prompt, labels, normalize=normalize))  # (K,)
    probs = softmax(torch.from_numpy(scores), dim=-1).numpy()  # (K,)
    if p_cf is not None:
        probs = calibrate(probs, p_cf)  # (K,)
    return Classification(labels, scores, probs, labels[int(np.argmax(probs))])


def content_free_probs(model: Any, tokenizer: TextTokenizer, prompts: Sequence[str], labels: Sequence[str], *,
                       normalize: str = "sum") -> np.ndarray:
    """p_cf: the model's label distribution for content-free prompts, averaged over them, shape (K,).

    Each prompt is the real prompt with its input replaced by a content-free one, e.g.
    ``[build_prompt(template, x, demonstrations) for x in CONTENT_FREE_INPUTS]``. As in Zhao et
    al.'s code, the labels' probabilities (``exp`` of the scores, not yet renormalised) are averaged
    over the prompts and the average is renormalised over the labels; computed in log space, so
    long labels whose probabilities underflow still count.
    """
    labels = _check_labels(labels)
    if isinstance(prompts, str) or not isinstance(prompts, Sequence):
        raise TypeError(f"prompts must be a sequence of str, got {type_name(prompts)}")
    if not prompts:
        raise ValueError("prompts must hold at least one content-free prompt, got []")
    scores = torch.tensor([score_options(model, tokenizer, p, labels, normalize=normalize) for p in prompts],
                          dtype=torch.float64)  # (P, K)
    mean_log = torch.logsumexp(scores, dim=0) - math.log(len(prompts))  # (K,) log of the mean probability
    return softmax(mean_log, dim=-1).numpy()  # (K,)


def calibrate(probs: Sequence[float] | np.ndarray, p_cf: Sequence[float] | np.ndarray) -> np.ndarray:
    """Contextual calibration: ``W p`` with ``W = diag(p_cf)^-1`` (b = 0), renormalised over the labels.

    ``probs`` is (..., K), one row per example (any positive scale: only ratios matter); ``p_cf`` is
    (K,) and positive. Zhao et al. predict ``argmax(W p + b)``; the renormalised vector has the same
    argmax and reads as probabilities. ``calibrate(p_cf, p_cf)`` is exactly uniform (every ratio is
    1), and a uniform ``p_cf`` changes nothing.
    """
    probs = _probability_array(probs, "probs")  # (..., K)
    p_cf = _probability_array(p_cf, "p_cf")  # (K,)
    if p_cf.ndim != 1 or probs.shape[-1] != p_cf.shape[0]:
        raise ValueError(f"p_cf must have shape (K,) with K = probs.shape[-1], got p_cf of shape {p_cf.shape} "
                         f"and probs of shape {probs.shape}")
    if np.any(p_cf <= 0):
        raise ValueError(f"p_cf must be positive (it is divided by), got {p_cf.tolist()}")
    if np.any(probs.sum(axis=-1) <= 0):
        raise ValueError("probs must have a positive sum in every row, got a row of zeros")
    ratios = probs / p_cf  # (..., K) W p
    return ratios / ratios.sum(axis=-1, keepdims=True)  # (..., K)


def _probability_array(values: Any, name: str) -> np.ndarray:
    """values as a float64 array of at least one dimension, finite and non-negative."""
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be an array of probabilities, got {type_name(values)}") from None
    if array.ndim == 0 or array.shape[-1] == 0:
        raise ValueError(f"{name} must have at least one dimension of size >= 1, got shape {array.shape}")
    if not np.all(np.isfinite(array)) or np.any(array < 0):
        raise ValueError(f"{name} must be finite and non-negative, got {array.tolist()}")
    return array


def majority_vote(answers: Sequence[Hashable]) -> Hashable:
    """The most frequent answer; on a tie, the tied answer that appears first in ``answers``.

    ``majority_vote(["7", "9", "9", "7"])`` is ``"7"``: both occur twice and "7" came first. The tie
    rule makes the vote a function of the samples alone (no second random draw); with answers
    sampled independently, the first of the tied answers is a uniformly random one of them.
    """
    if isinstance(answers, str) or not isinstance(answers, Sequence):
        raise TypeError(f"answers must be a sequence of answers, got {type_name(answers)}")
    if not answers:
        raise ValueError("answers must hold at least one answer, got []")
    try:
        counts = Counter(answers)  # keys in order of first appearance
    except TypeError:
        raise TypeError(f"answers must be hashable (str, int, tuple, ...), got {list(answers)!r}") from None
    return max(counts, key=counts.__getitem__)  # max keeps the first of equal counts


@dataclass(frozen=True)
class Vote:
    """Self-consistency's result: the voted answer, every sample's answer, every sampled text."""

    answer: Hashable | None  # None when no sample gave an answer
    answers: tuple[Hashable | None, ...]  # one per sample; None where `extract` found none
    texts: tuple[str, ...]


def self_consistency(model: Any, tokenizer: TextTokenizer, prompt: str, n: int, *, max_new_tokens: int,
                     extract: Callable[[str], Hashable | None] | None = None, temperature: float = 1.0,
                     top_k: int | None = None, top_p: float | None = None, stop: str | int | None = "\n",
                     generator: torch.Generator | None = None) -> Vote:
    """Sample ``n`` continuations of ``prompt``, read an answer from each, and take `majority_vote`.

    Each text is drawn by `course_lib.decoding.generate_text` at ``temperature`` (> 0: at 0 every
    sample is the greedy one), ending at ``stop`` (a newline ends a document of the course corpus).
    ``extract(text)`` returns the final answer (e.g. the number after "=") or None when the text has
    none; those samples do not vote. The default, ``str.strip``, takes the whole text as the answer.
    """
    n = positive_int(n, "n")
    positive_number(temperature, "temperature")
    if extract is None:
        extract = str.strip
    callable_arg(extract, "extract", "a function text -> answer")
    texts = tuple(generate_text(model, tokenizer, prompt, max_new_tokens, temperature=temperature, top_k=top_k,
                                top_p=top_p, stop=stop, generator=generator) for _ in range(n))
    answers = tuple(extract(text) for text in texts)
    voting = [a for a in answers if a is not None]
    return Vote(majority_vote(voting) if voting else None, answers, texts)
