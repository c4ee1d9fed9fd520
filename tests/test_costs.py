"""Tests for course_lib.costs: formulas against PyTorch's FLOP counter, tensor sizes, brute-force
path lengths, Table 1 of Vaswani et al. 2017 and the LLaMA-2-7B KV-cache size."""

from __future__ import annotations

from collections import deque

import numpy as np
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from course_lib.attention import MultiHeadAttention, scaled_dot_product_attention
from course_lib.costs import (
    VASWANI_TABLE_1,
    attention_scores_bytes,
    kv_cache_bytes,
    rnn_flops,
    rnn_states_bytes,
    self_attention_flops,
    table1_costs,
)
from course_lib.transformer import Decoder

KIB, GIB = 1024, 1024**3


def counted_flops(fn) -> int:
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


@pytest.mark.parametrize("n, d, batch", [(10, 32, 1), (40, 16, 2), (7, 64, 3)])
def test_flop_formulas_match_pytorchs_flop_counter(n: int, d: int, batch: int) -> None:
    torch.manual_seed(0)
    x = torch.randn(batch, n, d)
    mha = MultiHeadAttention(d, 4)
    assert counted_flops(lambda: mha(x)) == self_attention_flops(n, d, batch)
    q = k = v = torch.randn(batch, 4, n, d // 4)
    assert (counted_flops(lambda: scaled_dot_product_attention(q, k, v))
            == self_attention_flops(n, d, batch, projections=False))
    rnn = torch.nn.RNN(d, d, batch_first=True)
    assert counted_flops(lambda: rnn(x)) == rnn_flops(n, d, batch)


def test_memory_formulas_match_tensor_sizes() -> None:
    q = k = v = torch.randn(2, 4, 9, 8)
    _, weights = scaled_dot_product_attention(q, k, v)
    assert weights.nbytes == attention_scores_bytes(9, n_heads=4, batch=2)
    states, _ = torch.nn.RNN(8, 8, batch_first=True)(torch.randn(2, 9, 8))
    assert states.nbytes == rnn_states_bytes(9, 8, batch=2)
    assert attention_scores_bytes(3, 5, bytes_per_value=2) == 30


def test_table1_is_the_published_table() -> None:
    assert VASWANI_TABLE_1 == {
        "self-attention": ("O(n^2 * d)", "O(1)", "O(1)"),
        "recurrent": ("O(n * d^2)", "O(n)", "O(n)"),
        "convolutional": ("O(k * n * d^2)", "O(1)", "O(log_k(n))"),
        "self-attention (restricted)": ("O(r * n * d)", "O(1)", "O(n/r)"),
    }


def test_table1_costs_and_the_n_equals_d_crossover() -> None:
    d = 64
    for n in (16, 64, 256):
        attention = table1_costs("self-attention", n, d).complexity
        recurrent = table1_costs("recurrent", n, d).complexity
        assert (attention < recurrent) == (n < d) and (attention == recurrent) == (n == d)
        exact_attention = self_attention_flops(n, d, projections=False)
        assert (exact_attention < rnn_flops(n, d)) == (n < d)
    assert table1_costs("recurrent", 100, 8).sequential_operations == 100
    assert table1_costs("convolutional", 81, 8, k=3).max_path_length == pytest.approx(4)
    assert table1_costs("self-attention (restricted)", 100, 8, r=10).max_path_length == 10


def longest_shortest_path(n: int, edges: dict[str, list[str]]) -> int:
    """Maximum over (input i, output j) pairs connected by the graph of the shortest path length."""
    worst = 0
    for i in range(n):
        distance, frontier = {f"x{i}": 0}, deque([f"x{i}"])
        while frontier:
            node = frontier.popleft()
            for nxt in edges.get(node, []):
                if nxt not in distance:
                    distance[nxt] = distance[node] + 1
                    frontier.append(nxt)
        worst = max([worst] + [dist for node, dist in distance.items() if node.startswith("y")])
    return worst


@pytest.mark.parametrize("n", [1, 5, 12])
def test_path_lengths_by_brute_force(n: int) -> None:
    # Recurrent layer: output y_t (the hidden state) reads x_t and y_{t-1}.
    recurrent = {f"x{t}": [f"y{t}"] for t in range(n)}
    recurrent |= {f"y{t}": [f"y{t + 1}"] for t in range(n - 1)}
    assert longest_shortest_path(n, recurrent) == table1_costs("recurrent", n, 4).max_path_length
    # Self-attention layer: every output reads every input directly.
    attention = {f"x{i}": [f"y{j}" for j in range(n)] for i in range(n)}
    expected = table1_costs("self-attention", n, 4).max_path_length
    assert longest_shortest_path(n, attention) == expected


def test_kv_cache_bytes_llama2_7b() -> None:
    per_token = kv_cache_bytes(n_layers=32, n_kv_heads=32, head_dim=128, seq_len=1)
    assert per_token == 512 * KIB
    assert kv_cache_bytes(32, 32, 128, 4096) == 2 * GIB
    assert kv_cache_bytes(32, 8, 128, 4096) == kv_cache_bytes(32, 32, 128, 4096) // 4  # GQA
    assert kv_cache_bytes(32, 1, 128, 4096, batch=8) == 8 * 2 * GIB // 32  # MQA, 8 sequences
    assert kv_cache_bytes(32, 32, 128, 1, bytes_per_value=0.5) == 128 * KIB  # 4-bit


def test_kv_cache_bytes_matches_a_real_cache() -> None:
    torch.manual_seed(1)
    decoder = Decoder(3, 16, 4).eval()
    caches = decoder.new_caches()
    with torch.no_grad():
        decoder(torch.randn(2, 5, 16), caches=caches)
        decoder(torch.randn(2, 1, 16), caches=caches)
    stored = sum(c.k.nbytes + c.v.nbytes for c in caches)
    assert stored == kv_cache_bytes(3, 4, 4, seq_len=6, batch=2, bytes_per_value=4)


def test_costs_bad_inputs() -> None:
    with pytest.raises(ValueError, match="n must be a positive integer, got 0"):
        self_attention_flops(0, 8)
    with pytest.raises(TypeError, match="d must be an integer, got float 2.5"):
        rnn_flops(4, 2.5)
    with pytest.raises(ValueError, match="bytes_per_value must be positive, got 0"):
        kv_cache_bytes(1, 1, 1, 1, bytes_per_value=0)
    with pytest.raises(TypeError, match="bytes_per_value must be a real number, got bool True"):
        rnn_states_bytes(4, 4, bytes_per_value=True)
    with pytest.raises(ValueError, match="seq_len must be a positive integer, got -1"):
        kv_cache_bytes(32, 32, 128, -1)
    with pytest.raises(ValueError, match="layer must be one of 'self-attention', 'recurrent'"):
        table1_costs("transformer", 4, 4)
    with pytest.raises(TypeError, match="k must be an integer, got NoneType None"):
        table1_costs("convolutional", 4, 4)
    with pytest.raises(ValueError, match="k must be an integer >= 2, got 1"):
        table1_costs("convolutional", 4, 4, k=1)
    with pytest.raises(TypeError, match="r must be an integer, got NoneType None"):
        table1_costs("self-attention (restricted)", 4, 4)
    with pytest.raises(ValueError, match="batch must be a positive integer, got 0"):
        attention_scores_bytes(4, batch=0)


def test_costs_accept_numpy_integer_sizes() -> None:
    assert self_attention_flops(np.int64(16), np.int32(8)) == self_attention_flops(16, 8)
    assert rnn_flops(np.int64(16), np.int64(8), batch=np.int64(2)) == rnn_flops(16, 8, batch=2)
    sizes = [np.int64(32), np.int64(32), np.int64(128), np.int64(4096)]
    assert kv_cache_bytes(*sizes) == 2 * GIB and type(kv_cache_bytes(*sizes)) is int
    assert table1_costs("convolutional", np.int64(9), 4, k=np.int64(3)) == table1_costs("convolutional", 9, 4, k=3)
