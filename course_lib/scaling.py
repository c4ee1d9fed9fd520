"""Scaling arithmetic of large language models: training compute, the Chinchilla loss and its
compute-optimal allocation, and the memory that training and inference need.

- ``training_flops(N, D) = 6 N D``: about 2 FLOPs per parameter and token in the forward pass and
  twice that in the backward pass (Kaplan et al. 2020, section 2.1). GPT-3 with the 174.6B
  parameters of its compute table and 300B tokens gives the 3.14e+23 FLOPs of that table
  (Brown et al. 2020, Table D.1); its headline 175B gives 3.15e+23.
- ``chinchilla_loss(N, D) = E + A / N^alpha + B / D^beta`` with the constants of Hoffmann et al.
  2022's Approach 3 (appendix D.2: E = 1.69, A = 406.4, B = 410.7, alpha = 0.34, beta = 0.28),
  read from the registry of cited numbers (``course_lib.registry``).
- ``compute_optimal(C)``: the N and D that minimise that loss on the budget 6 N D = C, in their
  closed form (Hoffmann et al. 2022, section 3.3): ``N = G (C/6)^a``, ``D = (C/6)^b / G`` with
  ``G = (alpha A / (beta B))^(1/(alpha+beta))``, ``a = beta/(alpha+beta)``, ``b = alpha/(alpha+beta)``.
- ``training_memory_bytes(N)``: 16 bytes per parameter for mixed-precision Adam (Rajbhandari et
  al. 2020, section 3.1); ``inference_memory(...)``: the weights at a given width plus the KV cache
  (``course_lib.costs.kv_cache_bytes``).

The published constants are rounded, and the rounding matters. With them the optimum at Gopher's
budget (5.76e+23 FLOPs) is 32.2B parameters on 2.98T tokens, 93 tokens per parameter, where the
paper projects 40B from its unrounded fit (Figure 4) and trained Chinchilla at 70B on 1.4T; the
exponent a is 0.28 / 0.62 = 0.452 where the paper reports 0.46 (Table 2). The loss surface is flat
along the budget: Chinchilla's own allocation is predicted within 0.01 nats of the optimum.

- ``fit_power_law(N, L, E)``: the power law ``L = E + A / N^alpha`` through measured losses with a
  known irreducible term E, fitted by least squares on ``log(L - E)`` against ``log N``. The course
  world's exact entropy is such an E (the zoo's ``scaling_curve`` card measures tiny models of
  several sizes against it); for real text E is unknown and must be fitted too.

Left out: fitting E itself (Hoffmann et al. fit all five constants with a Huber loss), the
attention term of the FLOP count (2 n_layer n_ctx d_model per token, small when
d_model > n_ctx / 12), the difference between counting embedding parameters or not (Kaplan et al.
leave them out, Hoffmann et al. count them), activation memory (it depends on batch, sequence
length and recomputation), sharding of the model states across devices (ZeRO's stages divide
them), and Hoffmann et al.'s Approaches 1 and 2.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from course_lib.costs import kv_cache_bytes
from course_lib.registry import cited
from course_lib.validation import positive_int, positive_number, real, type_name

__all__ = [
    "FLOPS_PER_PARAMETER_PER_TOKEN",
    "MIXED_PRECISION_ADAM_BYTES",
    "ChinchillaFit",
    "ComputeOptimal",
    "InferenceMemory",
    "PowerLaw",
    "chinchilla_fit",
    "chinchilla_loss",
    "compute_optimal",
    "fit_power_law",
    "inference_memory",
    "training_flops",
    "training_memory_breakdown",
    "training_memory_bytes",
]

FLOPS_PER_PARAMETER_PER_TOKEN = 6  # 2 forward + 4 backward (Kaplan et al. 2020, section 2.1)

# Bytes per parameter of the model states in mixed-precision training with Adam (ZeRO, section 3.1).
MIXED_PRECISION_ADAM_BYTES: dict[str, int] = {
    "fp16 weights": 2,
    "fp16 gradients": 2,
    "fp32 master weights": 4,
    "fp32 Adam momentum": 4,
    "fp32 Adam variance": 4,
}


@dataclass(frozen=True)
class ChinchillaFit:
    """The constants of ``L(N, D) = E + A / N^alpha + B / D^beta`` (loss in nats per token)."""

    E: float
    A: float
    B: float
    alpha: float
    beta: float

    def __post_init__(self) -> None:
        for name in ("E", "A", "B", "alpha", "beta"):
            positive_number(getattr(self, name), name)


@dataclass(frozen=True)
class ComputeOptimal:
    """The loss-minimising allocation of a training budget of ``flops`` FLOPs (6 N D = flops)."""

    flops: float
    n_params: float
    n_tokens: float
    loss: float

    @property
    def tokens_per_parameter(self) -> float:
        return self.n_tokens / self.n_params


@dataclass(frozen=True)
class InferenceMemory:
    """Bytes a decoder needs to generate: its weights and the KV cache of the sequences it serves."""

    weights: float
    kv_cache: float

    @property
    def total(self) -> float:
        return self.weights + self.kv_cache


@dataclass(frozen=True)
class PowerLaw:
    """``L(N) = E + A / N^alpha``: a loss that falls as a power of N towards the irreducible E."""

    E: float
    A: float
    alpha: float

    def __call__(self, n: float) -> float:
        """The loss predicted at ``n``."""
        return self.E + self.A / positive_number(n, "n") ** self.alpha


def fit_power_law(sizes: Sequence[float], losses: Sequence[float], irreducible: float) -> PowerLaw:
    """The ``PowerLaw`` with E = ``irreducible`` that fits (sizes, losses) best in log space.

    Least squares of ``log(L - E) = log A - alpha log N``: every point must lie above E, and at
    least two distinct sizes are needed.
    """
    irreducible = real(irreducible, "irreducible")
    if isinstance(sizes, (str, bytes)) or isinstance(losses, (str, bytes)) or len(sizes) != len(losses):
        raise ValueError(f"sizes and losses must be sequences of the same length, got {sizes!r:.60} and {losses!r:.60}")
    xs = [math.log(positive_number(n, "sizes")) for n in sizes]
    ys = []
    for loss in losses:
        if not real(loss, "losses") > irreducible:
            raise ValueError(f"losses must all exceed irreducible={irreducible}, got {loss!r}")
        ys.append(math.log(loss - irreducible))
    if len(set(xs)) < 2:
        raise ValueError(f"sizes must hold at least two distinct values, got {list(sizes)!r:.60}")
    x_mean, y_mean = sum(xs) / len(xs), sum(ys) / len(ys)
    slope = (sum((x - x_mean) * (y - y_mean) for x, y in zip(xs, ys))
             / sum((x - x_mean) ** 2 for x in xs))
    return PowerLaw(irreducible, math.exp(y_mean - slope * x_mean), -slope)


def training_flops(n_params: float, n_tokens: float) -> float:
    """Training compute ``6 N D`` of a dense Transformer with N parameters trained on D tokens.

    Counts are real numbers (175e9 is accepted): at this scale they are estimates, not sizes.
    """
    n_params = positive_number(n_params, "n_params")
    n_tokens = positive_number(n_tokens, "n_tokens")
    return FLOPS_PER_PARAMETER_PER_TOKEN * n_params * n_tokens


def chinchilla_fit() -> ChinchillaFit:
    """Approach 3's fitted constants (Hoffmann et al. 2022, appendix D.2), from the registry."""
    return ChinchillaFit(*(cited(f"chinchilla.approach3.{name}").value
                           for name in ("E", "A", "B", "alpha", "beta")))


def chinchilla_loss(n_params: float, n_tokens: float, fit: ChinchillaFit | None = None) -> float:
    """Predicted loss (nats per token) of N parameters trained on D tokens: E + A/N^alpha + B/D^beta."""
    n_params = positive_number(n_params, "n_params")
    n_tokens = positive_number(n_tokens, "n_tokens")
    f = _fit(fit)
    return f.E + f.A / n_params**f.alpha + f.B / n_tokens**f.beta


def compute_optimal(flops: float, fit: ChinchillaFit | None = None) -> ComputeOptimal:
    """The N and D that minimise ``chinchilla_loss`` among all with 6 N D = flops (closed form)."""
    flops = positive_number(flops, "flops")
    f = _fit(fit)
    g = (f.alpha * f.A / (f.beta * f.B)) ** (1 / (f.alpha + f.beta))
    a, b = f.beta / (f.alpha + f.beta), f.alpha / (f.alpha + f.beta)
    c6 = flops / FLOPS_PER_PARAMETER_PER_TOKEN
    n_params, n_tokens = g * c6**a, c6**b / g
    return ComputeOptimal(flops, n_params, n_tokens, chinchilla_loss(n_params, n_tokens, f))


def training_memory_breakdown(n_params: float) -> dict[str, float]:
    """Bytes of each model state of mixed-precision Adam training (no activations), by name."""
    n_params = positive_number(n_params, "n_params")
    return {name: n_params * size for name, size in MIXED_PRECISION_ADAM_BYTES.items()}


def training_memory_bytes(n_params: float) -> float:
    """Bytes of the model states of mixed-precision Adam training: 16 per parameter (7B -> 112 GB)."""
    return sum(training_memory_breakdown(n_params).values())


def inference_memory(n_params: float, *, n_layers: int, n_kv_heads: int, head_dim: int, seq_len: int,
                     batch: int = 1, bytes_per_weight: float = 2, bytes_per_kv_value: float = 2
                     ) -> InferenceMemory:
    """Weights at ``bytes_per_weight`` (2 for fp16/bf16, 1 for int8, 0.5 for 4-bit) plus the KV cache
    of ``batch`` sequences of ``seq_len`` tokens (``course_lib.costs.kv_cache_bytes``)."""
    n_params = positive_number(n_params, "n_params")
    bytes_per_weight = positive_number(bytes_per_weight, "bytes_per_weight")
    bytes_per_kv_value = positive_number(bytes_per_kv_value, "bytes_per_kv_value")
    for value, name in ((n_layers, "n_layers"), (n_kv_heads, "n_kv_heads"), (head_dim, "head_dim"),
                        (seq_len, "seq_len"), (batch, "batch")):
        positive_int(value, name)
    cache = kv_cache_bytes(n_layers, n_kv_heads, head_dim, seq_len, batch, bytes_per_kv_value)
    return InferenceMemory(n_params * bytes_per_weight, cache)


def _fit(fit: ChinchillaFit | None) -> ChinchillaFit:
    """``fit``, or Approach 3's constants when it is None."""
    if fit is None:
        return chinchilla_fit()
    if not isinstance(fit, ChinchillaFit):
        raise TypeError(f"fit must be a ChinchillaFit or None, got {type_name(fit)}")
    return fit

