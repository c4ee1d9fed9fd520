"""Transformer building blocks: a GELU MLP, encoder and decoder blocks (pre-LN or post-LN), and
the three assemblies: encoder-only, decoder-only and encoder-decoder.

A block is two or three residual sublayers. With ``norm_position="post"`` (Vaswani et al. 2017)
each sublayer is ``x = LayerNorm(x + sublayer(x))``; with ``"pre"`` (GPT-2, and the placement
that Xiong et al. 2020 show trains without learning-rate warmup) it is
``x = x + sublayer(LayerNorm(x))``, and a stack of pre-LN blocks ends with one more LayerNorm.
The sublayers:

- ``EncoderBlock``: self-attention over the whole sequence (plus an optional padding mask), MLP.
- ``DecoderBlock``: *causal* self-attention (optionally with a ``KVCache`` for incremental
  decoding), then, if ``cross_attention=True``, attention to the encoder's output ``memory``, MLP.

The assemblies work on vectors (B, T, d_model): token and position embeddings and the output head
belong to the models built on them (``course_lib.models``).

Left out: SwiGLU and RMSNorm variants, attention-weight dropout, caching of cross-attention keys
and values (they are recomputed from ``memory`` at every step), parallel attention/MLP blocks.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor, nn

from course_lib.attention import KVCache, MultiHeadAttention
from course_lib.validation import number_in_range, one_of, positive_int

__all__ = ["NORM_POSITIONS", "MLP", "EncoderBlock", "DecoderBlock", "Encoder", "Decoder", "EncoderDecoder"]

NORM_POSITIONS = ("pre", "post")


def _check_block_args(dropout: float, norm_position: str) -> None:
    number_in_range(dropout, "dropout", 0.0, 1.0, high_open=True)
    one_of(norm_position, "norm_position", NORM_POSITIONS)


class MLP(nn.Module):
    """Position-wise feed-forward network: Linear(d_model, d_ff) -> GELU -> Linear(d_ff, d_model).
    d_ff defaults to 4 d_model (Vaswani et al. 2017, section 3.3: 512 -> 2048)."""

    def __init__(self, d_model: int, d_ff: int | None = None) -> None:
        super().__init__()
        d_model = positive_int(d_model, "d_model")
        d_ff = 4 * d_model if d_ff is None else positive_int(d_ff, "d_ff")
        self.fc_in = nn.Linear(d_model, d_ff)
        self.act = nn.GELU()
        self.fc_out = nn.Linear(d_ff, d_model)

    def forward(self, x: Tensor) -> Tensor:
        """(..., d_model) -> (..., d_model)."""
        return self.fc_out(self.act(self.fc_in(x)))  # (..., d_ff) inside


class _Residual(nn.Module):
    """One residual sublayer with its LayerNorm, placed before (pre) or after (post) the residual
    sum, and dropout on the sublayer's output (Vaswani et al. 2017, section 5.4). The sublayer
    itself is passed to forward as a function."""

    def __init__(self, d_model: int, norm_position: str, dropout: float) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(d_model)
        self.norm_position = norm_position
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor, sublayer: Callable[[Tensor], Tensor]) -> Tensor:
        if self.norm_position == "pre":
            return x + self.dropout(sublayer(self.norm(x)))  # (B, T, d)
        return self.norm(x + self.dropout(sublayer(x)))  # (B, T, d)


class EncoderBlock(nn.Module):
    """Bidirectional self-attention and MLP, each a residual sublayer.

    forward(x (B, T, d_model), mask=None) -> (B, T, d_model); mask as in ``MultiHeadAttention``
    (typically ``padding_mask``).
    """

    def __init__(self, d_model: int, n_heads: int, d_ff: int | None = None, dropout: float = 0.0,
                 norm_position: str = "pre", n_kv_heads: int | None = None) -> None:
        super().__init__()
        _check_block_args(dropout, norm_position)
        self.norm_position = norm_position
        self.self_attn = MultiHeadAttention(d_model, n_heads, n_kv_heads)
        self.attn_sub = _Residual(d_model, norm_position, dropout)
        self.mlp = MLP(d_model, d_ff)
        self.mlp_sub = _Residual(d_model, norm_position, dropout)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        """(B, T, d_model) -> (B, T, d_model)."""
        x = self.attn_sub(x, lambda h: self.self_attn(h, mask=mask, need_weights=False)[0])
        return self.mlp_sub(x, self.mlp)

    def attention_weights(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        """The self-attention weights (B, n_heads, T, T) this block uses for input x."""
        h = self.attn_sub.norm(x) if self.norm_position == "pre" else x
        return self.self_attn(h, mask=mask)[1]


class DecoderBlock(nn.Module):
    """Causal self-attention, optional cross-attention to an encoder's output, MLP.

    forward(x (B, T, d_model), mask=None, cache=None, memory=None, memory_mask=None)
    -> (B, T, d_model).
    Self-attention is always causal; ``mask`` is an extra mask (e.g. padding, sliding window)
    combined with it by ``&``, of shape (T, T_total), (B, T, T_total) or (B, H, T, T_total) where
    T_total = len(cache) + T. With ``cache`` (a ``KVCache``, one per block) the block processes only
    the new positions x and attends to the cached ones too: feeding a sequence one token at a time
    gives the same outputs as one causal pass over the whole sequence.
    memory (B, S, d_model) is required exactly when the block was built with
    ``cross_attention=True``; memory_mask (optional, e.g. ``padding_mask``) must broadcast to
    (B, H, T, S).
    """

    def __init__(self, d_model: int, n_heads: int, d_ff: int | None = None, dropout: float = 0.0,
                 norm_position: str = "pre", cross_attention: bool = False,
                 n_kv_heads: int | None = None) -> None:
        super().__init__()
        _check_block_args(dropout, norm_position)
        self.norm_position = norm_position
        self.self_attn = MultiHeadAttention(d_model, n_heads, n_kv_heads)
        self.self_sub = _Residual(d_model, norm_position, dropout)
        if cross_attention:
            self.cross_attn = MultiHeadAttention(d_model, n_heads, n_kv_heads)
            self.cross_sub = _Residual(d_model, norm_position, dropout)
        else:
            self.cross_attn = None
        self.mlp = MLP(d_model, d_ff)
        self.mlp_sub = _Residual(d_model, norm_position, dropout)

    def forward(self, x: Tensor, mask: Tensor | None = None, cache: KVCache | None = None,
                memory: Tensor | None = None, memory_mask: Tensor | None = None) -> Tensor:
        """(B, T, d_model) -> (B, T, d_model); see the class docstring for the arguments."""
        if (memory is None) != (self.cross_attn is None):
            built = "with" if self.cross_attn is not None else "without"
            raise ValueError(f"this DecoderBlock was built {built} cross_attention, so memory must "
                             f"be {'given' if self.cross_attn is not None else 'None'}")
        if memory is None and memory_mask is not None:
            raise ValueError("memory_mask was given without memory")
        x = self.self_sub(x, lambda h: self.self_attn(h, mask=mask, cache=cache, causal=True,
                                                      need_weights=False)[0])
        if self.cross_attn is not None:
            x = self.cross_sub(x, lambda h: self.cross_attn(h, memory, mask=memory_mask,
                                                            need_weights=False)[0])
        return self.mlp_sub(x, self.mlp)

    def attention_weights(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        """The causal self-attention weights (B, n_heads, T, T) this block uses for input x."""
        h = self.self_sub.norm(x) if self.norm_position == "pre" else x
        return self.self_attn(h, mask=mask, causal=True)[1]


class Encoder(nn.Module):
    """Encoder-only stack (BERT-style): n_layers ``EncoderBlock``s, then a final LayerNorm when the
    blocks are pre-LN. forward(x (B, T, d_model), mask=None) -> (B, T, d_model). n_kv_heads as in
    ``Decoder``."""

    def __init__(self, n_layers: int, d_model: int, n_heads: int, d_ff: int | None = None,
                 dropout: float = 0.0, norm_position: str = "pre",
                 n_kv_heads: int | None = None) -> None:
        super().__init__()
        n_layers = positive_int(n_layers, "n_layers")
        self.blocks = nn.ModuleList(EncoderBlock(d_model, n_heads, d_ff, dropout, norm_position,
                                                 n_kv_heads)
                                    for _ in range(n_layers))
        self.final_norm = nn.LayerNorm(d_model) if norm_position == "pre" else nn.Identity()

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        """(B, T, d_model) -> (B, T, d_model)."""
        for block in self.blocks:
            x = block(x, mask=mask)
        return self.final_norm(x)


class Decoder(nn.Module):
    """Decoder stack: n_layers ``DecoderBlock``s, then a final LayerNorm when pre-LN.

    Without cross-attention it is the decoder-only (GPT-style) stack; with it, the decoder of an
    encoder-decoder model. forward(x (B, T, d_model), mask=None, caches=None, memory=None,
    memory_mask=None) -> (B, T, d_model); caches is None or a list of one ``KVCache`` per layer
    (``new_caches()`` makes it). n_kv_heads < n_heads gives grouped-query (1: multi-query)
    attention, whose caches are n_heads / n_kv_heads times smaller.
    """

    def __init__(self, n_layers: int, d_model: int, n_heads: int, d_ff: int | None = None,
                 dropout: float = 0.0, norm_position: str = "pre", cross_attention: bool = False,
                 n_kv_heads: int | None = None) -> None:
        super().__init__()
        n_layers = positive_int(n_layers, "n_layers")
        self.blocks = nn.ModuleList(
            DecoderBlock(d_model, n_heads, d_ff, dropout, norm_position, cross_attention,
                         n_kv_heads)
            for _ in range(n_layers))
        self.final_norm = nn.LayerNorm(d_model) if norm_position == "pre" else nn.Identity()

    def new_caches(self) -> list[KVCache]:
        """One empty ``KVCache`` per layer, for incremental decoding."""
        return [KVCache() for _ in self.blocks]

    def forward(self, x: Tensor, mask: Tensor | None = None, caches: list[KVCache] | None = None,
                memory: Tensor | None = None, memory_mask: Tensor | None = None) -> Tensor:
        """(B, T, d_model) -> (B, T, d_model)."""
        if caches is not None and len(caches) != len(self.blocks):
            raise ValueError(f"caches must hold one KVCache per layer ({len(self.blocks)}), "
                             f"got {len(caches)}")
        for i, block in enumerate(self.blocks):
            cache = None if caches is None else caches[i]
            x = block(x, mask=mask, cache=cache, memory=memory, memory_mask=memory_mask)
        return self.final_norm(x)


class EncoderDecoder(nn.Module):
    """Encoder-decoder stack (original Transformer, T5): the decoder cross-attends to the encoder's
    output. forward(src (B, S, d_model), tgt (B, T, d_model), src_mask=None, tgt_mask=None)
    -> (B, T, d_model). src_mask (e.g. ``padding_mask``) masks the source keys both in the
    encoder's self-attention and in the decoder's cross-attention. n_kv_heads (grouped-query
    attention) applies to every attention layer of both stacks.
    """

    def __init__(self, n_layers: int, d_model: int, n_heads: int, d_ff: int | None = None,
                 dropout: float = 0.0, norm_position: str = "pre",
                 n_decoder_layers: int | None = None, n_kv_heads: int | None = None) -> None:
        super().__init__()
        n_decoder_layers = n_layers if n_decoder_layers is None else n_decoder_layers
        self.encoder = Encoder(n_layers, d_model, n_heads, d_ff, dropout, norm_position, n_kv_heads)
        self.decoder = Decoder(n_decoder_layers, d_model, n_heads, d_ff, dropout, norm_position,
                               cross_attention=True, n_kv_heads=n_kv_heads)

    def encode(self, src: Tensor, src_mask: Tensor | None = None) -> Tensor:
        """(B, S, d_model) -> memory (B, S, d_model)."""
        return self.encoder(src, mask=src_mask)

    def decode(self, tgt: Tensor, memory: Tensor, src_mask: Tensor | None = None,
               tgt_mask: Tensor | None = None, caches: list[KVCache] | None = None) -> Tensor:
        """(B, T, d_model) attending causally to itself and fully to memory -> (B, T, d_model)."""
        return self.decoder(tgt, mask=tgt_mask, caches=caches, memory=memory, memory_mask=src_mask)

    def forward(self, src: Tensor, tgt: Tensor, src_mask: Tensor | None = None,
                tgt_mask: Tensor | None = None) -> Tensor:
        """Encode src once, decode tgt against it: (B, T, d_model)."""
        return self.decode(tgt, self.encode(src, src_mask), src_mask, tgt_mask)
