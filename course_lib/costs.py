"""Cost models of sequence layers: FLOPs, memory, sequential operations, path lengths and the
bytes of a KV cache.

These are formulas for the notebooks to check against measurements (a FLOP counter, peak memory,
wall time):

- ``self_attention_flops`` and ``rnn_flops`` count the matrix-multiply FLOPs (2 per multiply-add)
  of one layer; ``attention_scores_bytes`` and ``rnn_states_bytes`` the memory of what each keeps
  per sequence (the score matrix, the hidden states).
- ``VASWANI_TABLE_1`` is Table 1 of Vaswani et al. 2017 as published (per-layer complexity,
  minimum sequential operations, maximum path length); ``table1_costs`` evaluates its expressions
  (the terms inside the O(.)) for concrete n, d, k, r.
- ``kv_cache_bytes``: what a decoder stores per generated sequence to avoid recomputing keys and
  values: 2 (K and V) x layers x KV heads x head dim x tokens x batch x bytes per value.

Left out: FLOPs of softmax, normalisation and elementwise operations (lower order), the MLP, the
backward pass, and memory of parameters or optimiser states.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from course_lib.validation import int_in_range, one_of, positive_int, positive_number

__all__ = [
    "VASWANI_TABLE_1", "self_attention_flops", "rnn_flops", "attention_scores_bytes", "rnn_states_bytes",
    "LayerCosts", "table1_costs", "kv_cache_bytes",
]

# Vaswani et al. 2017, "Attention Is All You Need", Table 1: n sequence length, d representation
# dimension, k convolution kernel size, r neighbourhood size of restricted self-attention.
VASWANI_TABLE_1: dict[str, tuple[str, str, str]] = {
    # layer type: (complexity per layer, sequential operations, maximum path length)
    "self-attention": ("O(n^2 * d)", "O(1)", "O(1)"),
    "recurrent": ("O(n * d^2)", "O(n)", "O(n)"),
    "convolutional": ("O(k * n * d^2)", "O(1)", "O(log_k(n))"),
    "self-attention (restricted)": ("O(r * n * d)", "O(1)", "O(n/r)"),
}


def self_attention_flops(n: int, d: int, batch: int = 1, projections: bool = True) -> int:
    """Matmul FLOPs of one self-attention layer over n positions of width d.

    ``Q K^T`` and ``weights @ V`` cost 2 n^2 d each (summed over heads: the head dims add up to d);
    the Q, K, V and output projections 2 n d^2 each. Total ``4 n^2 d + 8 n d^2`` per sequence, or
    ``4 n^2 d`` with projections=False (the part that Table 1's O(n^2 d) describes).
    """
    n = positive_int(n, "n")
    d = positive_int(d, "d")
    batch = positive_int(batch, "batch")
    flops = 4 * n * n * d + (8 * n * d * d if projections else 0)
    return batch * flops


def rnn_flops(n: int, d: int, batch: int = 1) -> int:
    """Matmul FLOPs of one Elman RNN layer (input and hidden width d) over n steps: each step
    computes ``W_ih x_t`` and ``W_hh h_{t-1}``, 2 d^2 each, so ``4 n d^2`` per sequence (an LSTM has
    4 gates: 4x this)."""
    n = positive_int(n, "n")
    d = positive_int(d, "d")
    batch = positive_int(batch, "batch")
    return batch * 4 * n * d * d


def attention_scores_bytes(n_queries: int, n_keys: int | None = None, n_heads: int = 1,
                           batch: int = 1, bytes_per_value: float = 4) -> float:
    """Bytes of one (batch, n_heads, n_queries, n_keys) score matrix, the largest intermediate of
    naive attention: quadratic in the sequence length. n_keys defaults to n_queries."""
    n_keys = n_queries if n_keys is None else n_keys
    n_queries = positive_int(n_queries, "n_queries")
    n_keys = positive_int(n_keys, "n_keys")
    n_heads = positive_int(n_heads, "n_heads")
    batch = positive_int(batch, "batch")
    positive_number(bytes_per_value, "bytes_per_value")
    return batch * n_heads * n_queries * n_keys * bytes_per_value


def rnn_states_bytes(n: int, d: int, batch: int = 1, bytes_per_value: float = 4) -> float:
    """Bytes of the n hidden states (width d) that an RNN layer keeps for backpropagation: linear
    in n."""
    n = positive_int(n, "n")
    d = positive_int(d, "d")
    batch = positive_int(batch, "batch")
    positive_number(bytes_per_value, "bytes_per_value")
    return batch * n * d * bytes_per_value


@dataclass(frozen=True)
class LayerCosts:
    """Table 1's three columns evaluated for concrete sizes (the expressions inside the O(.))."""

    complexity: float
    sequential_operations: float
    max_path_length: float


def table1_costs(layer: str, n: int, d: int, k: int | None = None,
                 r: int | None = None) -> LayerCosts:
    """Evaluate the row ``layer`` of ``VASWANI_TABLE_1`` for sequence length n and width d.

    k (kernel size >= 2) is required for "convolutional", r (neighbourhood) for
    "self-attention (restricted)". Constants hidden by the O(.) are not included: compare
    growth rates with these numbers, and absolute costs with ``self_attention_flops``/``rnn_flops``.
    """
    one_of(layer, "layer", VASWANI_TABLE_1)
    n = positive_int(n, "n")
    d = positive_int(d, "d")
    if layer == "self-attention":
        return LayerCosts(n * n * d, 1, 1)
    if layer == "recurrent":
        return LayerCosts(n * d * d, n, n)
    if layer == "convolutional":
        k = int_in_range(k, "k", 2)  # a kernel of 1 never grows the receptive field
        return LayerCosts(k * n * d * d, 1, math.log(n, k))
    r = positive_int(r, "r")  # "self-attention (restricted)"
    return LayerCosts(r * n * d, 1, n / r)


def kv_cache_bytes(n_layers: int, n_kv_heads: int, head_dim: int, seq_len: int, batch: int = 1,
                   bytes_per_value: float = 2) -> float:
    """Bytes of a decoder's KV cache: ``2 * n_layers * n_kv_heads * head_dim * seq_len * batch *
    bytes_per_value`` (the 2 counts keys and values).

    Multi-head attention has n_kv_heads = n_heads, grouped-query attention fewer, multi-query 1.
    LLaMA-2-7B (32 layers, 32 KV heads of dim 128, fp16): 512 KiB per token, 2 GiB at 4,096 tokens.
    Returns an int when bytes_per_value is an int.
    """
    sizes = [positive_int(value, name) for value, name in (
        (n_layers, "n_layers"), (n_kv_heads, "n_kv_heads"), (head_dim, "head_dim"), (seq_len, "seq_len"),
        (batch, "batch"))]
    positive_number(bytes_per_value, "bytes_per_value")
    return 2 * math.prod(sizes) * bytes_per_value
