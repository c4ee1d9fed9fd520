"""Tests for course_lib.attention: softmax, attention, multi-head attention, KV cache, tiled
attention and masks, against PyTorch's own implementations and brute force."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.overrides import TorchFunctionMode

from course_lib.attention import (
    KVCache,
    MultiHeadAttention,
    causal_mask,
    padding_mask,
    prefix_lm_mask,
    scaled_dot_product_attention,
    sliding_window_mask,
    tiled_attention,
    to_torch_multihead_attention,
)

NEG_INF = -math.inf


def seeded(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def randn(*shape: int, seed: int = 0, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    return torch.randn(*shape, generator=seeded(seed), dtype=dtype)


def random_mask(*shape: int, seed: int = 0, keep: float = 0.6) -> torch.Tensor:
    """A random boolean mask with at least one True per row."""
    mask = torch.rand(*shape, generator=seeded(seed)) < keep
    mask[..., 0] = True
    return mask


# --------------------------------------------------------------------------------------------------
# scaled dot-product attention


@pytest.mark.parametrize("with_mask", [False, True])
@pytest.mark.parametrize("scale", [None, 0.3])
def test_sdpa_matches_torch(with_mask: bool, scale: float | None) -> None:
    q, k, v = randn(2, 3, 5, 8, seed=1), randn(2, 3, 7, 8, seed=2), randn(2, 3, 7, 4, seed=3)
    mask = random_mask(2, 1, 5, 7) if with_mask else None
    out, weights = scaled_dot_product_attention(q, k, v, mask=mask, scale=scale)
    expected = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=scale)
    torch.testing.assert_close(out, expected)
    assert weights.shape == (2, 3, 5, 7)
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, 3, 5))
    if with_mask:
        assert torch.equal(weights[~mask.expand_as(weights)], torch.zeros(int((~mask).sum()) * 3))


def test_sdpa_bias_matches_torch_float_mask() -> None:
    q, k, v = randn(2, 4, 6, seed=1), randn(2, 5, 6, seed=2), randn(2, 5, 3, seed=3)
    bias = randn(4, 5, seed=4)
    out, _ = scaled_dot_product_attention(q, k, v, bias=bias)
    torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k, v, attn_mask=bias))


def test_sdpa_fully_masked_row_gives_zero_output_and_weights() -> None:
    q, k, v = (randn(1, 3, 4, seed=s).requires_grad_() for s in (1, 2, 3))
    mask = torch.tensor([[True, True, False], [False, False, False], [True, False, True]])
    out, weights = scaled_dot_product_attention(q, k, v, mask=mask)
    assert torch.equal(weights[0, 1], torch.zeros(3)) and torch.equal(out[0, 1], torch.zeros(4))
    expected = F.scaled_dot_product_attention(q[:, [0, 2]], k, v, attn_mask=mask[[0, 2]])
    torch.testing.assert_close(out[:, [0, 2]], expected)
    out.sum().backward()
    assert all(torch.isfinite(t.grad).all() for t in (q, k, v))


def test_sdpa_bad_inputs() -> None:
    q, k, v = randn(2, 4, 8), randn(2, 5, 8), randn(2, 5, 3)
    with pytest.raises(TypeError, match="boolean"):
        scaled_dot_product_attention(q, k, v, mask=torch.ones(4, 5))
    with pytest.raises(ValueError, match=r"mask of shape \(4, 4\) does not broadcast"):
        scaled_dot_product_attention(q, k, v, mask=torch.ones(4, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match="does not broadcast"):
        scaled_dot_product_attention(q, k, v, mask=torch.ones(3, 2, 4, 5, dtype=torch.bool))
    with pytest.raises(ValueError, match="bias of shape"):
        scaled_dot_product_attention(q, k, v, bias=torch.ones(5, 4))
    with pytest.raises(ValueError, match="same last dimension"):
        scaled_dot_product_attention(q, randn(2, 5, 7), v)
    with pytest.raises(ValueError, match="same length"):
        scaled_dot_product_attention(q, k, randn(2, 6, 3))
    with pytest.raises(ValueError, match="do not broadcast"):
        scaled_dot_product_attention(randn(3, 4, 8), k, v)
    with pytest.raises(ValueError, match=r"\(\.\.\., T, d\)"):
        scaled_dot_product_attention(randn(8), k, v)
    with pytest.raises(ValueError, match="scale must be positive, got 0.0"):
        scaled_dot_product_attention(q, k, v, scale=0.0)
    with pytest.raises(ValueError, match="scale must be a finite number, got inf"):
        scaled_dot_product_attention(q, k, v, scale=math.inf)
    with pytest.raises(TypeError, match="scale must be a real number, got bool True"):
        scaled_dot_product_attention(q, k, v, scale=True)
    with pytest.raises(TypeError, match="k must be a torch.Tensor, got list"):
        scaled_dot_product_attention(q, k.tolist(), v)
    with pytest.raises(TypeError, match="bias must be a torch.Tensor, got float"):
        scaled_dot_product_attention(q, k, v, bias=1.0)
    with pytest.raises(ValueError, match="NaN"):
        scaled_dot_product_attention(q.masked_fill(q > 1, math.nan), k, v)


# --------------------------------------------------------------------------------------------------
# masks


def test_causal_mask_is_lower_triangular_and_aligns_to_the_end() -> None:
    assert torch.equal(causal_mask(5), torch.tril(torch.ones(5, 5, dtype=torch.bool)))
    assert torch.equal(causal_mask(2, 5), causal_mask(5)[3:])  # the last 2 queries of 5


def test_sliding_window_mask_brute_force() -> None:
    n, window = 7, 3
    expected = torch.tensor([[0 <= i - j < window for j in range(n)] for i in range(n)])
    assert torch.equal(sliding_window_mask(n, window), expected)
    assert torch.equal(sliding_window_mask(2, window, n_keys=n), expected[-2:])
    assert torch.equal(sliding_window_mask(n, n), causal_mask(n))


def test_prefix_lm_mask_brute_force() -> None:
    n, prefix = 6, 3
    expected = torch.tensor([[j < prefix or j <= i for j in range(n)] for i in range(n)])
    assert torch.equal(prefix_lm_mask(n, prefix), expected)
    assert torch.equal(prefix_lm_mask(n, 0), causal_mask(n))
    assert prefix_lm_mask(n, n).all()


def test_padding_mask() -> None:
    mask = padding_mask(torch.tensor([3, 1, 0]), max_len=4)
    assert mask.shape == (3, 1, 1, 4)
    assert mask[:, 0, 0].tolist() == [[True, True, True, False], [True, False, False, False],
                                      [False] * 4]
    assert padding_mask([2, 1]).shape == (2, 1, 1, 2)
    assert padding_mask([0, 0]).tolist() == [[[[False]]], [[[False]]]]  # nothing to attend to


def test_masks_accept_numpy_integer_sizes() -> None:
    assert torch.equal(causal_mask(np.int64(3)), causal_mask(3))
    assert torch.equal(causal_mask(np.int32(2), np.int64(4)), causal_mask(2, 4))
    assert torch.equal(sliding_window_mask(np.int64(5), np.int64(2)), sliding_window_mask(5, 2))
    assert torch.equal(prefix_lm_mask(np.int64(4), np.int64(2)), prefix_lm_mask(4, 2))
    assert torch.equal(padding_mask([2, 1], max_len=np.int64(3)), padding_mask([2, 1], max_len=3))
    assert torch.equal(causal_mask(torch.tensor(3)), causal_mask(3))  # a 0-d integer tensor


def test_mask_bad_inputs() -> None:
    with pytest.raises(ValueError, match="n_queries must be a positive integer, got 0"):
        causal_mask(0)
    with pytest.raises(ValueError, match="n_keys must be >= n_queries"):
        causal_mask(4, 3)
    with pytest.raises(ValueError, match="window must be a positive integer, got 0"):
        sliding_window_mask(4, 0)
    with pytest.raises(ValueError, match=r"prefix_len must be an integer in \[0, 4\], got 5"):
        prefix_lm_mask(4, 5)
    with pytest.raises(TypeError, match="prefix_len must be an integer, got float 2.0"):
        prefix_lm_mask(4, 2.0)
    with pytest.raises(TypeError, match="n_queries must be an integer, got True"):
        causal_mask(True)
    with pytest.raises(ValueError, match=">= 0"):
        padding_mask([2, -1])
    with pytest.raises(ValueError, match="max_len must be >= every length"):
        padding_mask([2, 5], max_len=4)
    with pytest.raises(TypeError, match="lengths must be integers, got dtype torch.float32"):
        padding_mask(torch.tensor([1.5]))
    with pytest.raises(ValueError, match=r"lengths must be a 1-D tensor or list, got shape \(1, 2\)"):
        padding_mask([[1, 2]])
    with pytest.raises(ValueError, match=r"lengths must be non-empty, got \[\]"):
        padding_mask([])


# --------------------------------------------------------------------------------------------------
# multi-head attention


@pytest.mark.parametrize("need_weights", [True, False])
def test_mha_matches_torch_self_attention(need_weights: bool) -> None:
    torch.manual_seed(0)
    ours = MultiHeadAttention(16, 4)
    ref = to_torch_multihead_attention(ours).eval()
    x = randn(3, 6, 16)
    for mask in (None, causal_mask(6), random_mask(3, 6, 6, seed=5)):
        out, weights = ours(x, mask=mask, need_weights=need_weights)
        torch_mask = None if mask is None else ~mask  # torch: True = NOT allowed
        if torch_mask is not None and torch_mask.ndim == 3:
            torch_mask = torch_mask.repeat_interleave(4, dim=0)  # (B * H, T, T)
        ref_out, ref_weights = ref(x, x, x, attn_mask=torch_mask, average_attn_weights=False)
        torch.testing.assert_close(out, ref_out)
        if need_weights:
            torch.testing.assert_close(weights, ref_weights)
        else:
            assert weights is None


def test_mha_matches_torch_cross_attention_with_padding() -> None:
    torch.manual_seed(1)
    ours = MultiHeadAttention(12, 3)
    ref = to_torch_multihead_attention(ours).eval()
    query, memory = randn(2, 4, 12, seed=1), randn(2, 7, 12, seed=2)
    lengths = torch.tensor([7, 3])
    out, weights = ours(query, memory, mask=padding_mask(lengths))
    key_padding = torch.arange(7)[None, :] >= lengths[:, None]  # torch: True = padding
    ref_out, ref_weights = ref(query, memory, memory, key_padding_mask=key_padding,
                               average_attn_weights=False)
    torch.testing.assert_close(out, ref_out)
    torch.testing.assert_close(weights, ref_weights)


def test_torch_copy_without_bias_and_refusing_gqa() -> None:
    torch.manual_seed(7)
    ours = MultiHeadAttention(8, 2, bias=False)
    ref = to_torch_multihead_attention(ours)
    x = randn(2, 3, 8)
    torch.testing.assert_close(ours(x)[0], ref(x, x, x)[0])
    with pytest.raises(ValueError, match="n_kv_heads must equal n_heads"):
        to_torch_multihead_attention(MultiHeadAttention(8, 2, n_kv_heads=1))


def test_fused_path_equals_explicit_path_including_empty_rows() -> None:
    torch.manual_seed(2)
    mha = MultiHeadAttention(8, 2, n_kv_heads=1)
    x = randn(2, 5, 8, seed=3)
    mask = random_mask(2, 5, 5, seed=4)
    mask[1, 2] = False  # a query with nothing to attend to
    explicit, weights = mha(x, mask=mask)
    assert torch.equal(weights[1, :, 2], torch.zeros(2, 5))
    x_fused = x.clone().requires_grad_()
    fused, none = mha(x_fused, mask=mask, need_weights=False)
    assert none is None
    torch.testing.assert_close(fused, explicit)
    fused.sum().backward()
    assert torch.isfinite(x_fused.grad).all()


def test_parameter_count_is_4d2_plus_4d_for_every_head_count() -> None:
    d = 24
    for n_heads in (1, 2, 3, 4, 6, 8, 12, 24):
        with_bias = MultiHeadAttention(d, n_heads).parameters()
        without_bias = MultiHeadAttention(d, n_heads, bias=False).parameters()
        assert sum(p.numel() for p in with_bias) == 4 * d * d + 4 * d
        assert sum(p.numel() for p in without_bias) == 4 * d * d


def test_gqa_and_mqa_shapes_and_parameters() -> None:
    d, h = 32, 8
    for n_kv in (8, 4, 2, 1):
        mha = MultiHeadAttention(d, h, n_kv_heads=n_kv, bias=False)
        assert mha.k_proj.weight.shape == (n_kv * d // h, d)
        assert sum(p.numel() for p in mha.parameters()) == 2 * d * d + 2 * d * n_kv * (d // h)
        out, weights = mha(randn(2, 5, d))
        assert out.shape == (2, 5, d) and weights.shape == (2, h, 5, 5)


def test_gqa_with_n_kv_heads_equal_to_n_heads_is_mha() -> None:
    torch.manual_seed(3)
    mha = MultiHeadAttention(16, 4)
    gqa = MultiHeadAttention(16, 4, n_kv_heads=4)
    gqa.load_state_dict(mha.state_dict())
    x = randn(2, 6, 16)
    torch.testing.assert_close(gqa(x, causal=True)[0], mha(x, causal=True)[0])


def test_gqa_equals_mha_with_shared_key_value_heads() -> None:
    """Grouped-query attention is multi-head attention whose K/V heads repeat in groups."""
    torch.manual_seed(4)
    d, h, n_kv = 16, 4, 2
    gqa = MultiHeadAttention(d, h, n_kv_heads=n_kv)
    mha = MultiHeadAttention(d, h)
    hd, group = d // h, h // n_kv
    with torch.no_grad():
        for name in ("q_proj", "out_proj"):
            getattr(mha, name).load_state_dict(getattr(gqa, name).state_dict())
        for name in ("k_proj", "v_proj"):
            small, big = getattr(gqa, name), getattr(mha, name)
            weight = small.weight.view(n_kv, hd, d)  # (kv head, row in head, d)
            big.weight.copy_(weight.repeat_interleave(group, 0).reshape(d, d))
            big.bias.copy_(small.bias.view(n_kv, hd).repeat_interleave(group, 0).reshape(d))
    x = randn(2, 5, d)
    torch.testing.assert_close(gqa(x)[0], mha(x)[0])


def test_permuting_heads_with_out_proj_blocks_leaves_output_unchanged() -> None:
    torch.manual_seed(5)
    d, h = 16, 4
    hd = d // h
    mha = MultiHeadAttention(d, h)
    permuted = MultiHeadAttention(d, h)
    perm = torch.tensor([2, 0, 3, 1])
    rows = (perm[:, None] * hd + torch.arange(hd)).reshape(-1)  # feature indices, head by head
    with torch.no_grad():
        for name in ("q_proj", "k_proj", "v_proj"):
            getattr(permuted, name).weight.copy_(getattr(mha, name).weight[rows])
            getattr(permuted, name).bias.copy_(getattr(mha, name).bias[rows])
        permuted.out_proj.weight.copy_(mha.out_proj.weight[:, rows])
        permuted.out_proj.bias.copy_(mha.out_proj.bias)
    x = randn(2, 5, d)
    out, weights = mha(x)
    out_p, weights_p = permuted(x)
    torch.testing.assert_close(out_p, out)
    torch.testing.assert_close(weights_p, weights[:, perm])
    assert not torch.allclose(permuted.q_proj.weight, mha.q_proj.weight)


@pytest.mark.parametrize("n_kv_heads", [4, 2, 1])
def test_kv_cached_decoding_equals_the_full_causal_pass(n_kv_heads: int) -> None:
    torch.manual_seed(6)
    mha = MultiHeadAttention(16, 4, n_kv_heads=n_kv_heads)
    x = randn(2, 9, 16)
    full, _ = mha(x, causal=True)
    cache = KVCache()
    prefill, _ = mha(x[:, :4], cache=cache, causal=True)  # a prompt of 4 tokens at once
    steps = [mha(x[:, t:t + 1], cache=cache, causal=True, need_weights=t % 2 == 0)[0]
             for t in range(4, 9)]
    torch.testing.assert_close(torch.cat([prefill, *steps], dim=1), full)
    assert len(cache) == 9 and cache.k.shape == (2, n_kv_heads, 9, 4)


@pytest.mark.parametrize("n_kv_heads", [4, 1])
def test_cross_attention_cache_holds_the_memory_once(n_kv_heads: int) -> None:
    torch.manual_seed(8)
    mha = MultiHeadAttention(16, 4, n_kv_heads=n_kv_heads)
    memory, x = randn(2, 5, 16, seed=1), randn(2, 3, 16, seed=2)  # a memory of S = 5, 3 decoding steps
    mask = padding_mask([5, 2])  # (B, 1, 1, S): the second memory is padded after 2 positions
    full, full_weights = mha(x, memory, mask=mask)  # every query at once, no cache
    projected = []
    mha.k_proj.register_forward_hook(lambda module, args, out: projected.append(args[0].shape[1]))
    cache = KVCache()
    steps = [mha(x[:, t:t + 1], memory, mask=mask, cache=cache, need_weights=t != 1) for t in range(3)]
    assert projected == [5]  # the memory's keys were computed at the first step only
    assert len(cache) == 5 and cache.k.shape == (2, n_kv_heads, 5, 4)  # not 15 after 3 steps
    for t, (out, weights) in enumerate(steps):
        torch.testing.assert_close(out, full[:, t:t + 1])
        if t != 1:
            assert weights.shape == (2, 4, 1, 5)  # memory-length columns
            torch.testing.assert_close(weights, full_weights[:, :, t:t + 1])


def test_cross_attention_cache_refuses_another_memory_length() -> None:
    mha, cache = MultiHeadAttention(8, 2), KVCache()
    mha(randn(1, 1, 8), randn(1, 5, 8), cache=cache)
    with pytest.raises(ValueError, match=r"cache holds the keys and values of a memory of \(B, S\) = \(1, 5\) "
                                         r"\(cross-attention, key given\), got key of shape \(1, 1, 8\)"):
        mha(randn(1, 1, 8), randn(1, 1, 8), cache=cache)  # self-attention must leave key None


def test_kv_cache_validates_and_resets() -> None:
    cache = KVCache()
    assert len(cache) == 0
    k = randn(1, 2, 3, 4)
    cache.append(k, k)
    with pytest.raises(ValueError, match="do not match the cached keys"):
        cache.append(randn(1, 1, 1, 4), randn(1, 1, 1, 4))
    with pytest.raises(ValueError, match="must have shape"):
        cache.append(randn(2, 3, 4), randn(2, 3, 4))
    cache.reset()
    assert len(cache) == 0 and cache.k is None


def test_mha_bad_inputs() -> None:
    with pytest.raises(ValueError, match="divisible by n_heads, got d_model=10, n_heads=4"):
        MultiHeadAttention(10, 4)
    with pytest.raises(ValueError, match="divisible by n_kv_heads, got n_heads=6, n_kv_heads=4"):
        MultiHeadAttention(12, 6, n_kv_heads=4)
    with pytest.raises(ValueError, match="n_heads must be a positive integer, got 0"):
        MultiHeadAttention(12, 0)
    mha = MultiHeadAttention(8, 2)
    with pytest.raises(ValueError, match=r"query must have shape \(B, T, d_model=8\)"):
        mha(randn(2, 5, 6))
    with pytest.raises(ValueError, match="must agree"):
        mha(randn(2, 5, 8), randn(3, 4, 8))
    with pytest.raises(ValueError, match="does not broadcast"):
        mha(randn(2, 5, 8), mask=torch.ones(5, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match="mask must be"):
        mha(randn(2, 5, 8), mask=torch.ones(1, 1, 1, 5, 5, dtype=torch.bool))
    with pytest.raises(TypeError, match="mask must be a torch.Tensor, got list"):
        mha(randn(2, 5, 8), mask=[[True]])
    with pytest.raises(TypeError, match="key must be a torch.Tensor, got ndarray"):
        mha(randn(2, 5, 8), np.zeros((2, 5, 8)))
    with pytest.raises(TypeError, match="d_model must be an integer, got float 8.0"):
        MultiHeadAttention(8.0, 2)


def test_mha_accepts_numpy_integer_sizes() -> None:
    mha = MultiHeadAttention(np.int64(8), np.int64(4), n_kv_heads=np.int32(2))
    assert (mha.d_model, mha.n_heads, mha.n_kv_heads, mha.head_dim) == (8, 4, 2, 2)
    assert type(mha.head_dim) is int
    assert mha(randn(1, 3, 8), causal=True)[0].shape == (1, 3, 8)


# --------------------------------------------------------------------------------------------------
# tiled attention


@pytest.mark.parametrize("scale", [None, 0.3])
@pytest.mark.parametrize("causal", [False, True])
def test_tiled_attention_equals_naive_for_every_block_size(causal: bool, scale: float | None) -> None:
    n = 13
    q, k, v = randn(2, 3, n, 8, seed=1), randn(2, 3, n, 8, seed=2), randn(2, 3, n, 5, seed=3)
    mask = causal_mask(n) if causal else None
    naive, _ = scaled_dot_product_attention(q * 3, k, v, mask=mask, scale=scale)  # *3: peaked rows
    for block_size in range(1, n + 3):
        tiled = tiled_attention(q * 3, k, v, block_size, causal=causal, scale=scale)
        torch.testing.assert_close(tiled, naive, atol=1e-5, rtol=1e-5)


@settings(max_examples=25, deadline=None, derandomize=True)
@given(tq=st.integers(1, 12), extra=st.integers(0, 6), block_size=st.integers(1, 8),
       causal=st.booleans(), seed=st.integers(0, 1000))
def test_tiled_attention_property(tq: int, extra: int, block_size: int, causal: bool,
                                  seed: int) -> None:
    tk = tq + extra
    q, k, v = randn(tq, 4, seed=seed), randn(tk, 4, seed=seed + 1), randn(tk, 3, seed=seed + 2)
    mask = causal_mask(tq, tk) if causal else None
    naive, _ = scaled_dot_product_attention(q, k, v, mask=mask)
    torch.testing.assert_close(tiled_attention(q, k, v, block_size, causal=causal), naive,
                               atol=1e-5, rtol=1e-5)


class LargestResult(TorchFunctionMode):
    """Records the largest tensor any torch function returns."""

    def __init__(self) -> None:
        super().__init__()
        self.largest = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        result = func(*args, **(kwargs or {}))
        if isinstance(result, torch.Tensor):
            self.largest = max(self.largest, result.numel())
        return result


def test_tiled_attention_never_builds_the_n_by_n_matrix() -> None:
    n, d, block = 64, 4, 8
    q, k, v = randn(n, d, seed=1), randn(n, d, seed=2), randn(n, d, seed=3)
    with LargestResult() as naive_run:
        scaled_dot_product_attention(q, k, v)
    with LargestResult() as tiled_run:
        tiled_attention(q, k, v, block, causal=True)
    assert naive_run.largest == n * n
    assert tiled_run.largest == max(n * d, block * block)


def test_tiled_attention_gradients_match_naive() -> None:
    q, k, v = (randn(6, 4, seed=s, dtype=torch.float64).requires_grad_() for s in (1, 2, 3))
    tiled_attention(q, k, v, 4, causal=True).pow(2).sum().backward()
    grads = [t.grad.clone() for t in (q, k, v)]
    for t in (q, k, v):
        t.grad = None
    scaled_dot_product_attention(q, k, v, mask=causal_mask(6))[0].pow(2).sum().backward()
    for got, t in zip(grads, (q, k, v)):
        torch.testing.assert_close(got, t.grad)


def test_tiled_attention_bad_inputs() -> None:
    q = randn(5, 4)
    with pytest.raises(ValueError, match="block_size must be a positive integer, got 0"):
        tiled_attention(q, q, q, 0)
    with pytest.raises(TypeError, match="block_size must be an integer, got float 2.0"):
        tiled_attention(q, q, q, 2.0)
    with pytest.raises(ValueError, match="scale must be positive, got -1.0"):
        tiled_attention(q, q, q, 2, scale=-1.0)
    torch.testing.assert_close(tiled_attention(q, q, q, np.int64(2)), tiled_attention(q, q, q, 2))
    with pytest.raises(ValueError, match="Tk >= Tq"):
        tiled_attention(q, q[:3], q[:3], 2, causal=True)
    with pytest.raises(ValueError, match="same last dimension"):
        tiled_attention(q, randn(5, 3), q, 2)
