"""Attention, written out: softmax, scaled dot-product attention, multi-head attention, a KV
cache, tiled (online-softmax) attention and the usual boolean masks.

Conventions used everywhere in this module:

- Tensors are batch-first; attention inputs have shape ``(..., T, d)``.
- A boolean mask says ``True`` = *may attend* (the convention of
  ``torch.nn.functional.scaled_dot_product_attention``; ``torch.nn.MultiheadAttention`` uses the
  opposite one). Masked weights are exactly 0.
- A query row with nothing to attend to (every key masked) has weights all 0 and output 0. The
  softmax of a row of all ``-inf`` is defined the same way: all zeros, not NaN.

``MultiHeadAttention`` supports grouped-query attention (``n_kv_heads < n_heads``; 1 gives
multi-query attention) and incremental decoding with a ``KVCache``: in self-attention each step
appends its new keys and values; in cross-attention (an explicit ``key``, such as an encoder's
output) the first step fills the cache with the memory's keys and values and every later step
reuses them, without projecting the memory again. With ``need_weights=True`` (the
default) every step is the code in this module; with ``need_weights=False`` it calls PyTorch's
fused ``scaled_dot_product_attention`` kernel, which computes the same function (the tests check
it) without returning the weights. ``to_torch_multihead_attention`` copies its weights into
``torch.nn.MultiheadAttention``, the reference it is tested against.

``tiled_attention`` computes exact attention block by block with an online softmax (the idea of
FlashAttention, Dao et al. 2022): the same result as the naive formula, with memory linear in the
sequence length instead of quadratic. It is a readable loop, not a fast kernel.

Left out: dropout on attention weights, additive biases inside ``MultiHeadAttention`` (ALiBi's bias
goes through ``scaled_dot_product_attention(..., bias=...)``), rotary embeddings inside the module
(``course_lib.positional.apply_rope`` rotates q and k), a check that a cross-attention cache is
given the same memory at every step (only its length is checked), and a preallocated or paged KV
cache (``KVCache`` concatenates).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from course_lib.softmax import softmax
from course_lib.validation import int_in_range, positive_int, positive_number, tensor

__all__ = [
    "scaled_dot_product_attention", "causal_mask", "sliding_window_mask", "prefix_lm_mask", "padding_mask",
    "KVCache", "MultiHeadAttention", "to_torch_multihead_attention", "tiled_attention",
]

# --------------------------------------------------------------------------------------------------
# scaled dot-product attention


def _check_qkv(q: Tensor, k: Tensor, v: Tensor) -> None:
    for name, t in (("q", q), ("k", k), ("v", v)):
        if tensor(t, name).ndim < 2:
            raise ValueError(f"{name} must have shape (..., T, d), got {tuple(t.shape)}")
    if q.shape[-1] != k.shape[-1]:
        raise ValueError(f"q and k must have the same last dimension, got q {tuple(q.shape)} "
                         f"and k {tuple(k.shape)}")
    if k.shape[-2] != v.shape[-2]:
        raise ValueError(f"k and v must have the same length (dim -2), got k {tuple(k.shape)} "
                         f"and v {tuple(v.shape)}")
    try:
        torch.broadcast_shapes(q.shape[:-2], k.shape[:-2], v.shape[:-2])
    except RuntimeError:
        raise ValueError(f"the leading dimensions of q {tuple(q.shape)}, k {tuple(k.shape)} and "
                         f"v {tuple(v.shape)} do not broadcast") from None


def _check_broadcasts(t: Tensor, shape: tuple[int, ...], name: str) -> None:
    """t must broadcast to ``shape`` without enlarging it."""
    try:
        ok = torch.broadcast_shapes(t.shape, shape) == torch.Size(shape)
    except RuntimeError:
        ok = False
    if not ok:
        raise ValueError(f"{name} of shape {tuple(t.shape)} does not broadcast to the attention "
                         f"scores of shape {tuple(shape)}")


def _check_mask(mask: Tensor, shape: tuple[int, ...]) -> None:
    if not isinstance(mask, Tensor) or mask.dtype != torch.bool:
        got = mask.dtype if isinstance(mask, Tensor) else type(mask).__name__
        raise TypeError(f"mask must be a boolean tensor (True = may attend), got {got}")
    _check_broadcasts(mask, shape, "mask")


def scaled_dot_product_attention(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None = None,
                                 scale: float | None = None,
                                 bias: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """``softmax(q k^T * scale + bias, masked) v``; returns ``(out, weights)``.

    q: (..., Tq, d), k: (..., Tk, d), v: (..., Tk, dv); leading dimensions broadcast.
    mask: boolean, broadcastable to (..., Tq, Tk), True = may attend. Masked weights are exactly 0;
    a query with no key to attend to gets weights 0 and output 0.
    scale: defaults to ``1 / sqrt(d)`` (Vaswani et al. 2017, section 3.2.1).
    bias: optional float tensor added to the scaled scores, broadcastable to (..., Tq, Tk)
    (e.g. ``course_lib.positional.alibi_bias``).
    Returns out (..., Tq, dv) and weights (..., Tq, Tk), whose unmasked rows sum to 1.
    """
    _check_qkv(q, k, v)
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else positive_number(scale, "scale")
    scores = (q * scale) @ k.transpose(-2, -1)  # (..., Tq, Tk); scaling q is the cheaper side
    if bias is not None:
        _check_broadcasts(tensor(bias, "bias"), tuple(scores.shape), "bias")
        scores = scores + bias  # (..., Tq, Tk)
    if mask is not None:
        _check_mask(mask, tuple(scores.shape))
        scores = scores.masked_fill(~mask, -math.inf)  # (..., Tq, Tk)
    weights = softmax(scores, dim=-1, overwrite=True)  # (..., Tq, Tk); all -inf rows give zeros
    return weights @ v, weights  # (..., Tq, dv), (..., Tq, Tk)


def _fused_attention(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None) -> Tensor:
    """PyTorch's fused kernel with this module's convention for rows that have no key: output 0.

    Such rows are given every key (so the kernel stays finite, also in the backward pass) and then
    zeroed.
    """
    if mask is None:
        return F.scaled_dot_product_attention(q, k, v)  # (B, H, Tq, hd)
    has_key = mask.any(dim=-1, keepdim=True)  # (..., Tq, 1)
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask | ~has_key)  # (B, H, Tq, hd)
    return out.masked_fill(~has_key, 0.0)  # (B, H, Tq, hd)


# --------------------------------------------------------------------------------------------------
# masks (True = may attend)


def _query_key_positions(n_queries: int, n_keys: int | None,
                         device: torch.device | str | None) -> tuple[Tensor, Tensor]:
    """Absolute positions of the queries (Tq, 1) and keys (1, Tk); queries are the last Tq keys."""
    n_keys = n_queries if n_keys is None else n_keys
    n_queries = positive_int(n_queries, "n_queries")
    n_keys = positive_int(n_keys, "n_keys")
    if n_keys < n_queries:
        raise ValueError(f"n_keys must be >= n_queries (the queries are the last n_queries "
                         f"positions), got n_keys={n_keys}, n_queries={n_queries}")
    i = torch.arange(n_keys - n_queries, n_keys, device=device)[:, None]  # (Tq, 1)
    j = torch.arange(n_keys, device=device)[None, :]  # (1, Tk)
    return i, j


def causal_mask(n_queries: int, n_keys: int | None = None,
                device: torch.device | str | None = None) -> Tensor:
    """Causal mask (Tq, Tk): each query attends to its own position and earlier ones.

    The queries are the *last* Tq of the Tk positions (query i sits at position Tk - Tq + i), which
    is what incremental decoding needs: Tk = cached length + Tq. n_keys defaults to n_queries.
    """
    i, j = _query_key_positions(n_queries, n_keys, device)
    return j <= i  # (Tq, Tk)


def sliding_window_mask(n_queries: int, window: int, n_keys: int | None = None,
                        device: torch.device | str | None = None) -> Tensor:
    """Causal sliding-window mask (Tq, Tk): each query attends to itself and the window - 1
    positions before it, so window counts the query itself (window = 1: only itself; other code
    bases may count one more). Positions are aligned as in ``causal_mask``."""
    window = positive_int(window, "window")
    i, j = _query_key_positions(n_queries, n_keys, device)
    return (j <= i) & (i - j < window)  # (Tq, Tk)


def prefix_lm_mask(n: int, prefix_len: int, device: torch.device | str | None = None) -> Tensor:
    """Prefix-LM mask (n, n): the first prefix_len positions see each other in both directions,
    every later position attends causally (to the whole prefix and to itself and earlier ones).

    prefix_len = 0 gives the causal mask, prefix_len = n the full (encoder) mask.
    """
    n = positive_int(n, "n")
    prefix_len = int_in_range(prefix_len, "prefix_len", 0, n)
    i = torch.arange(n, device=device)[:, None]  # (n, 1)
    j = torch.arange(n, device=device)[None, :]  # (1, n)
    return (j < prefix_len) | (j <= i)  # (n, n)


def padding_mask(lengths: Tensor | list[int], max_len: int | None = None,
                 device: torch.device | str | None = None) -> Tensor:
    """Key-padding mask (B, 1, 1, max_len): sequence b has lengths[b] real tokens, then padding.

    Broadcasts against scores of shape (B, H, Tq, Tk) and combines with the other masks by ``&``.
    max_len defaults to the longest length (1 when every length is 0). The mask lives on
    ``device``, by default the device of lengths. A length of 0 leaves nothing to attend to: those
    rows get zero output.
    """
    lengths = torch.as_tensor(lengths, device=device)
    if lengths.numel() == 0:
        raise ValueError(f"lengths must be non-empty, got {lengths.tolist()}")
    if lengths.dtype.is_floating_point or lengths.dtype.is_complex or lengths.dtype == torch.bool:
        raise TypeError(f"lengths must be integers, got dtype {lengths.dtype}")
    if lengths.ndim != 1:
        raise ValueError(f"lengths must be a 1-D tensor or list, got shape {tuple(lengths.shape)}")
    if bool((lengths < 0).any()):
        raise ValueError(f"lengths must be >= 0, got {lengths.tolist()}")
    longest = int(lengths.max())
    max_len = max(longest, 1) if max_len is None else max_len  # all lengths 0: one masked column
    max_len = positive_int(max_len, "max_len")
    if longest > max_len:
        raise ValueError(f"max_len must be >= every length, got max_len={max_len} and a length "
                         f"of {longest}")
    j = torch.arange(max_len, device=lengths.device)  # (Tk,)
    return (j[None, :] < lengths[:, None])[:, None, None, :]  # (B, 1, 1, Tk)


# --------------------------------------------------------------------------------------------------
# KV cache and multi-head attention


class KVCache:
    """The keys and values of every position seen so far, for one attention layer.

    ``k`` and ``v`` have shape (B, n_kv_heads, T_past, head_dim) (None before the first append).
    ``append(k_new, v_new)`` takes (B, n_kv_heads, T_new, head_dim), concatenates along the time
    axis (dim 2) and returns the full (B, n_kv_heads, T_past + T_new, head_dim) keys and values.
    Keys are stored per key-value head, before they are repeated for grouped-query attention, so
    the cache of a GQA/MQA layer is n_heads / n_kv_heads times smaller. A model keeps one cache per
    layer.
    """

    def __init__(self) -> None:
        self.k: Tensor | None = None
        self.v: Tensor | None = None

    def __len__(self) -> int:
        """Number of cached positions, T_past."""
        return 0 if self.k is None else self.k.shape[2]

    def append(self, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """Add new keys and values (B, n_kv_heads, T_new, head_dim); return all of them."""
        if k.ndim != 4 or v.ndim != 4 or k.shape[:3] != v.shape[:3]:
            raise ValueError(f"k and v must have shape (B, n_kv_heads, T_new, head_dim) with equal "
                             f"(B, n_kv_heads, T_new), got k {tuple(k.shape)} and v "
                             f"{tuple(v.shape)}")
        if self.k is not None and (k.shape[:2] != self.k.shape[:2] or k.shape[3] != self.k.shape[3]
                                   or v.shape[3] != self.v.shape[3]):
            raise ValueError(f"new keys {tuple(k.shape)} do not match the cached keys "
                             f"{tuple(self.k.shape)} in batch, heads or head_dim")
        self.k = k if self.k is None else torch.cat([self.k, k], dim=2)  # (B, Hkv, T, hd)
        self.v = v if self.v is None else torch.cat([self.v, v], dim=2)  # (B, Hkv, T, hd)
        return self.k, self.v

    def reset(self) -> None:
        """Forget every cached position."""
        self.k = self.v = None


def _repeat_kv(x: Tensor, n_rep: int) -> Tensor:
    """(B, Hkv, T, hd) -> (B, Hkv * n_rep, T, hd): key-value head g serves query heads
    g * n_rep ... (g + 1) * n_rep - 1."""
    return x if n_rep == 1 else x.repeat_interleave(n_rep, dim=1)


def _cached_memory(cache: KVCache, memory: Tensor) -> tuple[Tensor, Tensor]:
    """The keys and values a cross-attention cache holds, checked against the memory (B, S, d)."""
    if cache.k.shape[0] != memory.shape[0] or cache.k.shape[2] != memory.shape[1]:
        raise ValueError(f"cache holds the keys and values of a memory of (B, S) = ({cache.k.shape[0]}, "
                         f"{cache.k.shape[2]}) (cross-attention, key given), got key of shape "
                         f"{tuple(memory.shape)}; for incremental self-attention, leave key None")
    return cache.k, cache.v


class MultiHeadAttention(nn.Module):
    """Multi-head attention (Vaswani et al. 2017, section 3.2.2), batch-first, with GQA/MQA.

    ``n_heads`` query heads of size head_dim = d_model / n_heads; keys and values have
    ``n_kv_heads`` heads (default n_heads), each shared by n_heads / n_kv_heads query heads:
    n_kv_heads = n_heads is multi-head, 1 is multi-query (Shazeer 2019), in between is
    grouped-query attention (Ainslie et al. 2023). The heads' outputs are concatenated
    (n_heads * head_dim = d_model) and mixed by ``out_proj``. Parameters: q_proj and out_proj are
    d_model x d_model, k_proj and v_proj d_model x (n_kv_heads * head_dim), so plain multi-head
    attention has 4 d_model^2 weights (+ 4 d_model biases) whatever n_heads is.
    """

    def __init__(self, d_model: int, n_heads: int, n_kv_heads: int | None = None,
                 bias: bool = True) -> None:
        super().__init__()
        n_kv_heads = n_heads if n_kv_heads is None else n_kv_heads
        d_model = positive_int(d_model, "d_model")
        n_heads = positive_int(n_heads, "n_heads")
        n_kv_heads = positive_int(n_kv_heads, "n_kv_heads")
        if d_model % n_heads:
            raise ValueError(f"d_model must be divisible by n_heads, got d_model={d_model}, "
                             f"n_heads={n_heads}")
        if n_heads % n_kv_heads:
            raise ValueError(f"n_heads must be divisible by n_kv_heads, got n_heads={n_heads}, "
                             f"n_kv_heads={n_kv_heads}")
        self.d_model, self.n_heads, self.n_kv_heads = d_model, n_heads, n_kv_heads
        self.head_dim = d_model // n_heads
        self.q_proj = nn.Linear(d_model, d_model, bias=bias)
        self.k_proj = nn.Linear(d_model, n_kv_heads * self.head_dim, bias=bias)
        self.v_proj = nn.Linear(d_model, n_kv_heads * self.head_dim, bias=bias)
        self.out_proj = nn.Linear(d_model, d_model, bias=bias)

    def _split_heads(self, x: Tensor, n_heads: int) -> Tensor:
        B, T, _ = x.shape
        return x.view(B, T, n_heads, self.head_dim).transpose(1, 2)  # (B, heads, T, hd)

    def _check_inputs(self, query: Tensor, key: Tensor, value: Tensor) -> None:
        for name, t in (("query", query), ("key", key), ("value", value)):
            if tensor(t, name).ndim != 3 or t.shape[-1] != self.d_model:
                raise ValueError(f"{name} must have shape (B, T, d_model={self.d_model}), "
                                 f"got {tuple(t.shape)}")
        if not query.shape[0] == key.shape[0] == value.shape[0] or key.shape[1] != value.shape[1]:
            raise ValueError(f"query (B, Tq, d), key and value (B, Tk, d) must agree, got "
                             f"{tuple(query.shape)}, {tuple(key.shape)}, {tuple(value.shape)}")

    def _full_mask(self, mask: Tensor | None, causal: bool, B: int, Tq: int, Tk: int,
                   device: torch.device) -> Tensor | None:
        """The user's mask as (B or 1, H or 1, Tq, Tk), combined with the causal mask."""
        if mask is not None:
            if tensor(mask, "mask").ndim not in (2, 3, 4):
                raise ValueError(f"mask must be (Tq, Tk), (B, Tq, Tk) or (B, H, Tq, Tk), got {tuple(mask.shape)}")
            mask = mask.unsqueeze(1) if mask.ndim == 3 else mask  # (B, 1, Tq, Tk)
            _check_mask(mask, (B, self.n_heads, Tq, Tk))
        if causal:
            causal_part = causal_mask(Tq, Tk, device=device)  # (Tq, Tk)
            mask = causal_part if mask is None else mask & causal_part
        return mask

    def forward(self, query: Tensor, key: Tensor | None = None, value: Tensor | None = None,
                mask: Tensor | None = None, cache: KVCache | None = None, causal: bool = False,
                need_weights: bool = True) -> tuple[Tensor, Tensor | None]:
        """Attend from query (B, Tq, d_model) to key/value (B, Tk, d_model).

        key defaults to query (self-attention), value to key.
        mask: boolean, True = may attend; shape (Tq, Tk), (B, Tq, Tk) or (B, n_heads, Tq, Tk) (any
        of these dimensions may be 1). With a cache, Tk counts the cached positions too.
        cache: a ``KVCache`` for incremental decoding. Self-attention (key None): the new keys and
        values are appended to it and the queries attend to everything it holds. Cross-attention
        (key given, e.g. an encoder's memory (B, S, d_model)): the first call fills the empty cache
        with the memory's keys and values, later calls attend to those and do not project key and
        value again (they must pass a memory of the same length S). One cache per attention layer.
        causal: also apply ``causal_mask(Tq, Tk)``, aligned so that the queries are the newest
        positions (correct with a cache).
        need_weights: return the per-head weights (B, n_heads, Tq, Tk). False returns None instead
        and computes the same output with ``torch.nn.functional.scaled_dot_product_attention``.
        Returns (out (B, Tq, d_model), weights or None).
        """
        memory_cached = key is not None and cache is not None and len(cache) > 0  # cross-attention, 2nd step on
        key = query if key is None else key
        value = key if value is None else value
        self._check_inputs(query, key, value)
        B, Tq, _ = query.shape
        q = self._split_heads(self.q_proj(query), self.n_heads)  # (B, H, Tq, hd)
        if memory_cached:
            k, v = _cached_memory(cache, key)  # (B, Hkv, S, hd), projected at the first step
        else:
            k = self._split_heads(self.k_proj(key), self.n_kv_heads)  # (B, Hkv, Tk, hd)
            v = self._split_heads(self.v_proj(value), self.n_kv_heads)  # (B, Hkv, Tk, hd)
            if cache is not None:
                k, v = cache.append(k, v)  # (B, Hkv, T_past + Tk, hd)
        mask = self._full_mask(mask, causal, B, Tq, k.shape[2], query.device)
        n_rep = self.n_heads // self.n_kv_heads
        k, v = _repeat_kv(k, n_rep), _repeat_kv(v, n_rep)  # (B, H, Tk, hd)
        if need_weights:
            out, weights = scaled_dot_product_attention(q, k, v, mask)  # (B, H, Tq, hd)
        else:
            out, weights = _fused_attention(q, k, v, mask), None  # (B, H, Tq, hd)
        out = out.transpose(1, 2).reshape(B, Tq, self.d_model)  # heads concatenated: (B, Tq, d)
        return self.out_proj(out), weights


def to_torch_multihead_attention(mha: MultiHeadAttention) -> nn.MultiheadAttention:
    """A ``torch.nn.MultiheadAttention`` (batch-first) holding copies of mha's weights.

    It computes the same function; remember that its boolean masks mean True = *not* allowed and
    that it averages the weights over heads unless ``average_attn_weights=False``. Only plain
    multi-head attention has a torch counterpart (n_kv_heads must equal n_heads).
    """
    if mha.n_kv_heads != mha.n_heads:
        raise ValueError(f"torch.nn.MultiheadAttention has no grouped-query form; n_kv_heads must "
                         f"equal n_heads, got n_kv_heads={mha.n_kv_heads}, n_heads={mha.n_heads}")
    bias = mha.q_proj.bias is not None
    ref = nn.MultiheadAttention(mha.d_model, mha.n_heads, bias=bias, batch_first=True)
    ref = ref.to(device=mha.q_proj.weight.device, dtype=mha.q_proj.weight.dtype)
    projections = (mha.q_proj, mha.k_proj, mha.v_proj)
    with torch.no_grad():
        ref.in_proj_weight.copy_(torch.cat([p.weight for p in projections]))  # (3d, d)
        ref.out_proj.weight.copy_(mha.out_proj.weight)
        if bias:
            ref.in_proj_bias.copy_(torch.cat([p.bias for p in projections]))  # (3d,)
            ref.out_proj.bias.copy_(mha.out_proj.bias)
    return ref.train(mha.training)


# --------------------------------------------------------------------------------------------------
# tiled attention with an online softmax


def tiled_attention(q: Tensor, k: Tensor, v: Tensor, block_size: int, causal: bool = False,
                    scale: float | None = None) -> Tensor:
    """Exact attention computed block by block with an online softmax; returns (..., Tq, dv).

    For each block of queries the keys are visited block by block, keeping per query a running
    maximum m, a running normaliser l and an unnormalised output acc. When a new block raises the
    maximum, the old l and acc are rescaled by ``exp(m_old - m_new)``, so after the last block
    ``acc / l`` is exactly ``softmax(q k^T * scale) v``. The largest intermediate is one
    (block_size x block_size) tile of scores: the (Tq x Tk) matrix is never built.

    q: (..., Tq, d), k: (..., Tk, d), v: (..., Tk, dv). causal: positions aligned as in
    ``causal_mask`` (requires Tk >= Tq); key blocks entirely in the future are skipped. NaN inputs
    propagate to the output (no check is made inside the loop).
    """
    _check_qkv(q, k, v)
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else positive_number(scale, "scale")
    block_size = positive_int(block_size, "block_size")
    Tq, Tk = q.shape[-2], k.shape[-2]
    if causal and Tk < Tq:
        raise ValueError(f"causal tiled attention needs Tk >= Tq, got Tq={Tq}, Tk={Tk}")
    batch = torch.broadcast_shapes(q.shape[:-2], k.shape[:-2], v.shape[:-2])
    out = q.new_empty(batch + (Tq, v.shape[-1]))  # (..., Tq, dv)
    for q0 in range(0, Tq, block_size):
        q1 = min(q0 + block_size, Tq)
        k_end = min(Tk, q1 + Tk - Tq) if causal else Tk  # keys after the last query are future
        out[..., q0:q1, :] = _attend_block(q[..., q0:q1, :], k, v, q0 + Tk - Tq, k_end,
                                           block_size, causal, scale)
    return out


def _attend_block(qb: Tensor, k: Tensor, v: Tensor, q_pos: int, k_end: int, block_size: int,
                  causal: bool, scale: float) -> Tensor:
    """Online-softmax attention of one query block (..., bq, d), at positions q_pos ..., to the
    keys [0, k_end)."""
    batch = torch.broadcast_shapes(qb.shape[:-2], k.shape[:-2], v.shape[:-2])
    bq = qb.shape[-2]
    row_max = qb.new_full(batch + (bq, 1), -math.inf)  # running maximum m
    row_sum = qb.new_zeros(batch + (bq, 1))  # running normaliser l
    acc = qb.new_zeros(batch + (bq, v.shape[-1]))  # running unnormalised output
    i = torch.arange(q_pos, q_pos + bq, device=qb.device)[:, None]  # (bq, 1)
    for k0 in range(0, k_end, block_size):
        k1 = min(k0 + block_size, k_end)
        scores = (qb @ k[..., k0:k1, :].transpose(-2, -1)) * scale  # (..., bq, bk)
        if causal and k1 - 1 > q_pos:  # the tile reaches past the first query's position
            j = torch.arange(k0, k1, device=qb.device)[None, :]  # (1, bk)
            scores = scores.masked_fill(j > i, -math.inf)
        new_max = torch.maximum(row_max, scores.amax(dim=-1, keepdim=True))  # (..., bq, 1)
        safe_max = new_max.masked_fill(torch.isneginf(new_max), 0.0)  # rows with no key yet
        correction = torch.exp(row_max - safe_max)  # rescales what was summed so far
        p = torch.exp(scores - safe_max)  # (..., bq, bk)
        row_sum = row_sum * correction + p.sum(dim=-1, keepdim=True)  # (..., bq, 1)
        acc = acc * correction + p @ v[..., k0:k1, :]  # (..., bq, dv)
        row_max = new_max
    return acc / row_sum.masked_fill(row_sum == 0, 1.0)  # (..., bq, dv)
