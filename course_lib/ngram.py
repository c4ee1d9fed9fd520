"""N-gram language models with interpolated Kneser-Ney smoothing: the statistical LMs before neural ones.

An n-gram model predicts the next token from the n - 1 tokens before it and nothing else, with
probabilities read off counts in the training text. Counts alone give zero probability to every
n-gram the text did not contain, so the counts are smoothed. Interpolated Kneser-Ney (Kneser & Ney
1995; the interpolated form with one discount D of Chen & Goodman 1999, section 3) takes a fixed
discount D from every seen count and hands the mass it frees to the next lower order::

    P_n(w | h) = max(c(h w) - D, 0) / c(h .)  +  D * N1+(h .) / c(h .) * P_{n-1}(w | h')

with h the last n - 1 tokens, h' the same without its first token, c(h w) the count of the n-gram,
c(h .) the sum of c(h w) over w and N1+(h .) the number of distinct tokens seen after h: each of them
gave up D, so the lower order gets exactly what the discount took. The lower orders k < n use the
same formula with *continuation counts* in place of c: N1+(. h w), the number of distinct tokens seen
just before h w. A lower order is only consulted for what the higher order has not seen, and what
matters there is how many contexts a token completes, not how often: "Francisco" is frequent but
follows only "San". Below order 1 is the uniform distribution over the vocabulary, so every token of
the vocabulary gets some mass. A context never seen at an order (c(h .) = 0) passes the order below
through unchanged.

Sentences: each training sequence is padded with n - 1 `BOS` ("<s>") before and one `EOS` ("</s>")
after. `EOS` is predicted like any token, so the probabilities of all finite sentences add up to 1
and a model can say where a sentence ends; `BOS` is only ever context. A context shorter than n - 1
tokens is the start of a sentence. `NGramLM.distribution` sums to 1 over `NGramLM.vocabulary`: the
tokens of the training data and of the ``vocabulary`` given to `NGramLM.fit`, then `EOS`, then the
unknown token if the model has one.

Unknown tokens: by default a token outside the vocabulary is an error that names it. A model made
with ``unk="<unk>"`` scores any such token as that one token, whose probability comes from the
uniform base (and from its counts, if the training data already used it): one shared share of mass
for every unseen token, so perplexities with an unknown token compare only between models with the
same vocabulary.

Comparing with the course world's exact probabilities: `document_tokens` splits a document into
words (at each space) or characters, both reversible, so a model's probability of the tokens is its
probability of the text, and `document_nats` gives each document's total negative log-likelihood in
nats, comparable with ``-DocumentGenerator.log_prob`` and with `course_lib.zoo.document_nats`.

Left out: modified Kneser-Ney (three discounts by count, Chen & Goodman's best variant), discounts
estimated from counts of counts, back-off (non-interpolated) Kneser-Ney, KenLM's raw counts for
n-grams that start with <s>, pruning, and the storage that makes billion-token models fit in memory
(tries, quantised probabilities, hashing).
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence

import numpy as np
import torch

from course_lib.validation import (
    number_in_range,
    one_of,
    positive_int,
    string,
    type_name,
)

__all__ = ["BOS", "EOS", "UNITS", "NGramLM", "document_nats", "document_tokens"]

BOS = "<s>"
EOS = "</s>"
UNITS = ("words", "characters")


class NGramLM:
    """An n-gram language model of order ``order`` with interpolated Kneser-Ney smoothing.

    ``discount`` is the D of every order, in (0, 1). ``unk`` is the unknown-token policy: None (an
    unknown token raises ValueError) or the token that stands for every unknown one. Fit with
    `fit`; probabilities are Python floats (float64), log-probabilities in nats.
    """

    def __init__(self, order: int, discount: float = 0.75, *, unk: str | None = None) -> None:
        self.order = positive_int(order, "order")
        self.discount = number_in_range(discount, "discount", 0, 1, low_open=True, high_open=True)
        if unk is not None and string(unk, "unk", nonempty=True) in (BOS, EOS):
            raise ValueError(f"unk must differ from {BOS!r} and {EOS!r}, got {unk!r}")
        self.unk = unk
        self.vocabulary: tuple[str, ...] = ()
        self._index: dict[str, int] = {}
        # _levels[k]: the (k + 1)-gram counts by context: {h (k tokens): ({w: count}, sum of counts)}
        self._levels: list[dict[tuple[str, ...], tuple[dict[str, int], int]]] = []

    def fit(self, sequences: Sequence[Sequence[str]], vocabulary: Iterable[str] = ()) -> NGramLM:
        """Count the n-grams of ``sequences`` (lists of str tokens, one per sentence); returns self.

        ``vocabulary``: tokens the model should know beyond those in the data (they get mass from
        the uniform base only). Fitting again starts from scratch.
        """
        sequences = _token_lists(sequences, "sequences")
        if not sequences:
            raise ValueError("sequences must hold at least one sequence, got none")
        extra = _token_lists([vocabulary], "vocabulary")[0]
        pad = (BOS,) * (self.order - 1)
        grams = Counter()
        for sequence in sequences:
            padded = pad + tuple(sequence) + (EOS,)
            grams.update(zip(*(padded[i:] for i in range(self.order))))
        levels = [grams]  # the highest order keeps its counts
        for _ in range(self.order - 1):  # each lower order: distinct left extensions, N1+(. h w)
            levels.append(Counter(gram[1:] for gram in levels[-1]))
        self._levels = [_by_context(level) for level in reversed(levels)]
        known = {gram[0] for gram in levels[-1]} | set(extra) | ({self.unk} if self.unk else set())
        known.discard(EOS)
        self.vocabulary = tuple(sorted(known - {self.unk})) + (EOS,) + ((self.unk,) if self.unk else ())
        self._index = {token: i for i, token in enumerate(self.vocabulary)}
        return self

    def prob(self, token: str, context: Sequence[str] = ()) -> float:
        """P(token | context); ``context`` is the sentence so far (only its last order - 1 tokens count)."""
        return self._prob(self._token(token, "token"), self._context(context))

    def distribution(self, context: Sequence[str] = ()) -> dict[str, float]:
        """P(w | context) for every w of `vocabulary`, in that order: it sums to 1."""
        h = self._context(context)
        D = self.discount
        p = np.full(len(self.vocabulary), 1 / len(self.vocabulary))  # (V,) the uniform base
        for k, level in enumerate(self._levels):
            if (seen := level.get(h[len(h) - k:])) is not None:
                followers, total = seen
                bump = np.zeros_like(p)  # (V,)
                bump[[self._index[w] for w in followers]] = [c - D for c in followers.values()]
                p = (D * len(followers) * p + bump) / total  # (V,) the same sums as `prob`
        return dict(zip(self.vocabulary, p.tolist()))

    def log_prob(self, tokens: Sequence[str]) -> float:
        """ln P(tokens, then EOS) for one sentence, in nats."""
        padded = self._padded(tokens, "tokens")
        n = self.order
        return sum(math.log(self._prob(padded[i], padded[i - n + 1:i])) for i in range(n - 1, len(padded)))

    def perplexity(self, sequences: Sequence[Sequence[str]]) -> float:
        """exp of the mean negative log-likelihood per predicted token (each sentence's EOS included)."""
        sequences = _token_lists(sequences, "sequences")
        if not sequences:
            raise ValueError("sequences must hold at least one sequence, got none")
        nats = -sum(self.log_prob(s) for s in sequences)
        return math.exp(nats / sum(len(s) + 1 for s in sequences))

    def sample(self, max_tokens: int, generator: torch.Generator | None = None) -> list[str]:
        """A sentence drawn token by token until EOS (not returned) or ``max_tokens`` tokens."""
        max_tokens = positive_int(max_tokens, "max_tokens")
        tokens: list[str] = []
        while len(tokens) < max_tokens:
            context = tokens[max(len(tokens) - self.order + 1, 0):]
            probs = torch.tensor(list(self.distribution(context).values()), dtype=torch.float64)  # (V,)
            token = self.vocabulary[int(torch.multinomial(probs, 1, generator=generator))]
            if token == EOS:
                break
            tokens.append(token)
        return tokens

    # --- the formula and its inputs ---------------------------------------------------------------

    def _prob(self, w: str, h: tuple[str, ...]) -> float:
        """Interpolated Kneser-Ney, from the uniform base up to the highest order (checked input)."""
        D = self.discount
        p = 1 / len(self.vocabulary)
        for k, level in enumerate(self._levels):  # order k + 1 reads the last k tokens of h
            if (seen := level.get(h[len(h) - k:])) is not None:
                followers, total = seen
                p = (max(followers.get(w, 0) - D, 0) + D * len(followers) * p) / total
        return p

    def _known(self, token: object, name: str) -> str:
        """token if the model knows it, else the unknown token, else a ValueError naming it."""
        if string(token, name) in self._index and token != EOS:
            return token
        if token in (BOS, EOS):
            raise ValueError(f"{name} must not contain {BOS!r} or {EOS!r} (the model adds them), got {token!r}")
        if self.unk is None:
            raise ValueError(f"{name} {token!r} is not in the vocabulary of {len(self.vocabulary)} tokens; "
                             f"make the model with unk='<unk>' to score unknown tokens")
        return self.unk

    def _token(self, token: str, name: str) -> str:
        """A token to predict: a known token, EOS, or the unknown token."""
        self._check_fitted()
        return EOS if token == EOS else self._known(token, name)

    def _context(self, context: Sequence[str]) -> tuple[str, ...]:
        """The last order - 1 tokens of the padded context."""
        self._check_fitted()
        context = _token_lists([context], "context")[0]
        n = self.order - 1
        padded = (BOS,) * n + tuple(self._known(t, "context") for t in context[max(len(context) - n, 0):])
        return padded[len(padded) - n:]

    def _padded(self, tokens: Sequence[str], name: str) -> tuple[str, ...]:
        """BOS * (order - 1), the tokens (unknown ones mapped), EOS."""
        self._check_fitted()
        tokens = _token_lists([tokens], name)[0]
        return (BOS,) * (self.order - 1) + tuple(self._known(t, name) for t in tokens) + (EOS,)

    def _check_fitted(self) -> None:
        if not self._levels:
            raise ValueError("the model is not fitted yet: call fit(sequences) first")


def document_tokens(document: str, unit: str = "words") -> list[str]:
    """A document as tokens that give it back exactly: split at each space ("words"), or its characters."""
    string(document, "document")
    return document.split(" ") if one_of(unit, "unit", UNITS) == "words" else list(document)


def document_nats(model: NGramLM, documents: Sequence[str], unit: str = "words") -> torch.Tensor:
    """Each document's total negative log-likelihood in nats, EOS included: (len(documents),) float64.

    ``unit`` must be the one the model was fitted with (`document_tokens`). The split is reversible,
    so the total is the model's -ln P of the text itself, comparable with
    ``-DocumentGenerator.log_prob(document)``.
    """
    if not isinstance(model, NGramLM):
        raise TypeError(f"model must be an NGramLM, got {type_name(model)}")
    if isinstance(documents, str) or not documents:
        raise ValueError(f"documents must be a non-empty sequence of str, got {documents!r:.80}")
    return torch.tensor([-model.log_prob(document_tokens(d, unit)) for d in documents],
                        dtype=torch.float64)  # (len(documents),)


def _by_context(counts: Counter) -> dict[tuple[str, ...], tuple[dict[str, int], int]]:
    """{context: ({token: count}, total count)} from {n-gram: count}."""
    followers: defaultdict[tuple[str, ...], dict[str, int]] = defaultdict(dict)
    for gram, count in counts.items():
        followers[gram[:-1]][gram[-1]] = count
    return {h: (f, sum(f.values())) for h, f in followers.items()}


def _token_lists(sequences: object, name: str) -> list[Sequence[str]]:
    """sequences as a list of token sequences; a str where a list of tokens belongs is an error."""
    if isinstance(sequences, (str, bytes)) or not isinstance(sequences, Iterable):
        raise TypeError(f"{name} must be a list of token lists, got {type_name(sequences)} {sequences!r:.60}")
    sequences = list(sequences)
    for i, sequence in enumerate(sequences):
        if isinstance(sequence, (str, bytes)) or not isinstance(sequence, Iterable):
            where = f"{name}[{i}]" if name == "sequences" else name
            raise TypeError(f"{where} must be a list of str tokens (split a text first: document_tokens), "
                            f"got {type_name(sequence)} {sequence!r:.60}")
    sequences = [s if isinstance(s, (list, tuple)) else list(s) for s in sequences]
    for sequence in sequences:
        if not all(isinstance(token, str) for token in sequence):
            string(next(t for t in sequence if not isinstance(t, str)), f"each token of {name}")
    tokens = set().union(*sequences)
    if BOS in tokens or EOS in tokens:
        raise ValueError(f"{name} must not contain {BOS!r} or {EOS!r} (the model adds them)")
    return sequences
