"""Adaptive softmax: an exact softmax over a large vocabulary that spends little on rare words.

Classes are sorted by frequency (class 0 the most frequent) and split by ``cutoffs`` into a head
shortlist ``[0, cutoffs[0])`` and tail clusters ``[cutoffs[i-1], cutoffs[i])``, the last one ending
at ``n_classes``. The *head* is one softmax over the shortlist plus one entry per tail cluster; a
cluster's entry holds the probability of the whole cluster, and a second softmax inside the cluster
splits it among its words (Grave et al. 2017, section 4)::

    log p(w) = head_logprob[w]                                    w in the shortlist
    log p(w) = head_logprob[cluster] + cluster_logprob[w]         w in a tail cluster

The result is a normalised distribution over all ``n_classes``: nothing is approximated in the
probabilities, only the model is restricted. Rare clusters see the input through a projection to
``in_features // div_value**i`` dimensions (i = 1 for the first cluster), so their many words cost
fewer parameters and FLOPs.

Where the time goes: in training, the target is known, so a token pays for the head and for the
one cluster its target is in; a cluster is evaluated only for the tokens whose targets fall in it.
On a Zipf vocabulary most of the probability mass sits in the shortlist, so the expected cost per
token (`adaptive_softmax_flops`) is a fraction of the full softmax's (`full_softmax_flops`).
Computing the whole distribution (`AdaptiveLogSoftmax.log_prob`) evaluates every cluster for every
token and saves only through the reduced dimensions.

The log-softmaxes are PyTorch's fused kernel (``torch.nn.functional.log_softmax``), not the
written-out `course_lib.softmax.log_softmax`: the subject here is the clustering, and its speed is
measured against torch's module (``scripts/bench_adaptive_softmax.py``).

`AdaptiveLogSoftmax` has the parameter names and shapes of ``torch.nn.AdaptiveLogSoftmaxWithLoss``
(``head``, ``tail.i.0``, ``tail.i.1``), so state dicts load both ways and outputs agree.

Left out: the choice of cutoffs by the paper's cost model of GPU matrix products (cutoffs are given
here), tying the tail projections to input embeddings (Baevski & Auli 2019), dropout inside the
clusters, sampled-softmax methods, and ``device``/``dtype`` constructor arguments (use ``.to``).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from course_lib.validation import (
    float_tensor,
    integer,
    integer_tensor,
    positive_int,
    positive_number,
    real,
    tensor,
    type_name,
)

__all__ = [
    "AdaptiveLogSoftmax",
    "AdaptiveSoftmaxOutput",
    "adaptive_softmax_flops",
    "full_softmax_flops",
    "zipf_probabilities",
]


class AdaptiveSoftmaxOutput(NamedTuple):
    """What `AdaptiveLogSoftmax.forward` returns, as torch's module does: ``(output, loss)``."""

    output: Tensor  # log-probability of each target, target's shape
    loss: Tensor  # mean negative log-likelihood, 0-d


def _check_cutoffs(cutoffs: Iterable[int], n_classes: int) -> list[int]:
    """cutoffs as a list of ints, strictly increasing, each in [1, n_classes - 1]."""
    if isinstance(cutoffs, (str, bytes)) or not isinstance(cutoffs, Iterable):
        raise TypeError(f"cutoffs must be a sequence of integers, got {type_name(cutoffs)}")
    values = [integer(c, f"cutoffs[{i}]") for i, c in enumerate(cutoffs)]
    if not values:
        raise ValueError("cutoffs must hold at least one cutoff, got []")
    if any(a >= b for a, b in itertools.pairwise(values)):
        raise ValueError(f"cutoffs must be strictly increasing, got {values}")
    if values[0] < 1 or values[-1] > n_classes - 1:
        raise ValueError(f"cutoffs must lie in [1, n_classes - 1] = [1, {n_classes - 1}], got {values}")
    return values


def _cluster_dims(in_features: int, n_clusters: int, div_value: float) -> list[int]:
    """Projection size of each tail cluster: ``in_features // div_value**i`` for i = 1, 2, ..."""
    dims = [int(in_features // div_value ** (i + 1)) for i in range(n_clusters)]  # torch's formula
    if min(dims) < 1:
        raise ValueError(f"in_features // div_value**i must be >= 1 for every cluster; in_features = "
                         f"{in_features} and div_value = {div_value:g} give {dims}")
    return dims


class AdaptiveLogSoftmax(nn.Module):
    """Adaptive softmax with the interface of ``torch.nn.AdaptiveLogSoftmaxWithLoss``.

    ``head``: Linear(in_features, cutoffs[0] + n_clusters, bias=head_bias); ``tail[i]``:
    Linear(in_features, in_features // div_value**(i+1), bias=False) followed by Linear(that,
    cluster size, bias=False). Inputs x are (..., in_features); targets are class indices (...).
    ``cutoffs`` keeps torch's convention: the given cutoffs followed by n_classes.
    """

    def __init__(self, in_features: int, n_classes: int, cutoffs: Iterable[int],
                 div_value: float = 4.0, head_bias: bool = False) -> None:
        super().__init__()
        self.in_features = positive_int(in_features, "in_features")
        self.n_classes = positive_int(n_classes, "n_classes")
        given = _check_cutoffs(cutoffs, self.n_classes)
        self.div_value = positive_number(div_value, "div_value")
        if not isinstance(head_bias, bool):
            raise TypeError(f"head_bias must be a bool, got {type_name(head_bias)} {head_bias!r}")
        self.head_bias = head_bias
        self.cutoffs = [*given, self.n_classes]  # cluster i holds classes [cutoffs[i], cutoffs[i+1])
        self.shortlist_size = given[0]
        self.n_clusters = len(given)
        self.head = nn.Linear(self.in_features, self.shortlist_size + self.n_clusters, bias=head_bias)
        dims = _cluster_dims(self.in_features, self.n_clusters, self.div_value)
        self.tail = nn.ModuleList(
            nn.Sequential(nn.Linear(self.in_features, dim, bias=False),
                          nn.Linear(dim, high - low, bias=False))
            for dim, low, high in zip(dims, self.cutoffs, self.cutoffs[1:]))

    def _check_input(self, x: Tensor) -> Tensor:
        float_tensor(x, "x")
        if x.ndim == 0 or x.shape[-1] != self.in_features:
            raise ValueError(f"x must have shape (..., in_features = {self.in_features}), "
                             f"got {tuple(x.shape)}")
        return x.reshape(-1, self.in_features)  # (N, in_features)

    def log_prob(self, x: Tensor) -> Tensor:
        """Log-probabilities of all n_classes: x (..., in_features) -> (..., n_classes)."""
        flat = self._check_input(x)  # (N, d)
        return self._full_log_prob(flat, self.head(flat)).reshape(*x.shape[:-1], self.n_classes)

    def _full_log_prob(self, x: Tensor, head_logits: Tensor) -> Tensor:
        """x (N, d), head_logits (N, shortlist + n_clusters) -> (N, n_classes)."""
        head = F.log_softmax(head_logits, dim=-1)  # (N, shortlist + n_clusters)
        parts = [head[:, :self.shortlist_size]]  # (N, shortlist)
        for i, cluster in enumerate(self.tail):
            cluster_prob = head[:, self.shortlist_size + i, None]  # (N, 1) log p(cluster)
            parts.append(cluster_prob + F.log_softmax(cluster(x), dim=-1))  # (N, cluster size)
        return torch.cat(parts, dim=-1)  # (N, n_classes)

    def forward(self, x: Tensor, target: Tensor) -> AdaptiveSoftmaxOutput:
        """Log-probability of each target and the mean loss: x (..., d), target (...) -> (output (...), loss).

        Each cluster runs only on the rows whose target lies in it, as in training.
        """
        flat = self._check_input(x)  # (N, d)
        integer_tensor(target, "target")
        if target.shape != x.shape[:-1]:
            raise ValueError(f"target must have shape x.shape[:-1] = {tuple(x.shape[:-1])}, "
                             f"got {tuple(target.shape)}")
        labels = target.reshape(-1)  # (N,)
        if len(labels) and not 0 <= int(labels.min()) <= int(labels.max()) < self.n_classes:
            raise ValueError(f"target must hold classes in [0, {self.n_classes - 1}], got values in "
                             f"[{int(labels.min())}, {int(labels.max())}]")
        cluster = torch.bucketize(labels, labels.new_tensor(self.cutoffs[:-1]), right=True)  # (N,) 0 = head
        head_index = torch.where(cluster == 0, labels, self.shortlist_size + cluster - 1)  # (N,)
        head = F.log_softmax(self.head(flat), dim=-1)  # (N, shortlist + n_clusters)
        output = head.gather(1, head_index[:, None]).squeeze(1)  # (N,) log p(word or its cluster)
        for i, tail in enumerate(self.tail):
            rows = (cluster == i + 1).nonzero().squeeze(1)  # (n_i,) tokens whose target is here
            if len(rows) == 0:
                continue
            inside = F.log_softmax(tail(flat[rows]), dim=-1)  # (n_i, cluster size)
            word = (labels[rows] - self.cutoffs[i])[:, None]  # (n_i, 1) index within the cluster
            output = output.index_add(0, rows, inside.gather(1, word).squeeze(1))  # + log p(w | cluster)
        return AdaptiveSoftmaxOutput(output.reshape(target.shape), -output.mean())

    def predict(self, x: Tensor) -> Tensor:
        """Most probable class for each row: x (..., in_features) -> (...) class indices.

        If the head's best entry is a shortlist word, it is the answer without evaluating any
        cluster: every tail word has a probability at most that of its cluster.
        """
        flat = self._check_input(x)  # (N, d)
        head_logits = self.head(flat)  # (N, shortlist + n_clusters)
        best = head_logits.argmax(dim=-1)  # (N,)
        open_rows = (best >= self.shortlist_size).nonzero().squeeze(1)  # a cluster won the head
        if len(open_rows):
            full = self._full_log_prob(flat[open_rows], head_logits[open_rows])  # (n, n_classes)
            best = best.index_copy(0, open_rows, full.argmax(dim=-1))
        return best.reshape(x.shape[:-1])


def zipf_probabilities(n_classes: int, exponent: float = 1.0) -> Tensor:
    """Zipf's law over ranks 1..n_classes: ``p_r = r**-exponent / sum_k k**-exponent``, float64 (n_classes,)."""
    n_classes = positive_int(n_classes, "n_classes")
    exponent = real(exponent, "exponent")
    weights = torch.arange(1, n_classes + 1, dtype=torch.float64) ** -exponent  # (V,)
    return weights / weights.sum()


def full_softmax_flops(in_features: int, n_classes: int) -> int:
    """Matmul FLOPs per token of a full output layer: ``2 * in_features * n_classes``."""
    return 2 * positive_int(in_features, "in_features") * positive_int(n_classes, "n_classes")


def adaptive_softmax_flops(in_features: int, cutoffs: Iterable[int], class_probs: Tensor,
                           div_value: float = 4.0) -> float:
    """Expected matmul FLOPs per token of `AdaptiveLogSoftmax.forward` (training, target known).

    class_probs: (n_classes,) frequencies of the classes as targets (normalised here). The head
    runs for every token: ``2 d (shortlist + n_clusters)``. Cluster i runs for the tokens whose
    target lies in it, a fraction q_i = its words' total probability, at ``2 d h_i + 2 h_i |V_i|``
    with h_i = ``d // div_value**i``. FLOPs count 2 per multiply-add, as `count_flops` does; the
    softmax's exponentials and sums, linear in the classes touched, are left out.
    """
    d = positive_int(in_features, "in_features")
    tensor(class_probs, "class_probs", ndim=1)
    probs = class_probs.detach().to(torch.float64)  # (V,)
    if not bool(torch.isfinite(probs).all()) or bool((probs < 0).any()) or probs.sum() <= 0:
        raise ValueError("class_probs must be non-negative finite frequencies with a positive sum")
    probs = probs / probs.sum()
    bounds = _check_cutoffs(cutoffs, len(probs))
    dims = _cluster_dims(d, len(bounds), positive_number(div_value, "div_value"))
    flops = 2.0 * d * (bounds[0] + len(bounds))  # the head, every token
    for dim, low, high in zip(dims, bounds, [*bounds[1:], len(probs)]):
        flops += float(probs[low:high].sum()) * (2 * d * dim + 2 * dim * (high - low))
    return flops
