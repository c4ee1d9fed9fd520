"""TinyGPT: a decoder-only Transformer language model, small enough to train on a laptop CPU.

The model is GPT-2's recipe at toy scale, assembled from `course_lib.transformer`'s blocks:

    ids (B, T) -> token embedding + learned position embedding -> n_layers pre-LN decoder blocks
    (causal self-attention, GELU MLP) -> final LayerNorm -> logits = h @ wte^T  (B, T, V)

The output layer is tied to the token embedding (one (V, d) table serves both ends). Weights start
as in GPT-2's released code: N(0, 0.02) for the token table and the linear layers, N(0, 0.01) for
the position table, and the two projections that write into the residual stream scaled by
1/sqrt(2 n_layers) (Radford et al. 2019, section 2.3).

Training is parallel: one teacher-forced pass scores every position at once, the causal mask keeping
each position from seeing later ones. Generation is sequential; `TinyGPT.as_next_logits` exposes
the model to `course_lib.decoding` as a ``next_logits(ids)`` function that keeps a KV cache (one
`course_lib.attention.KVCache` per layer) and feeds only the newest token when a call extends the
sequences of the previous call, even when beam search has reordered or duplicated them.

Left out: dropout schedules, weight decay groups, mixed precision, flash attention, sliding windows
and generation past the context length (a learned position table has no row for it).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import nn

from course_lib.attention import KVCache
from course_lib.positional import LearnedPositions
from course_lib.transformer import Decoder


def _positive_int(value: object, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")


@dataclass(frozen=True)
class TinyGPTConfig:
    """The shape of a TinyGPT; ``d_ff=None`` means 4 * d_model."""

    vocab_size: int
    context_length: int
    d_model: int = 64
    n_heads: int = 4
    n_layers: int = 2
    d_ff: int | None = None
    dropout: float = 0.0

    def __post_init__(self) -> None:
        for name in ("vocab_size", "context_length", "d_model", "n_heads", "n_layers"):
            _positive_int(getattr(self, name), name)
        if self.d_ff is not None:
            _positive_int(self.d_ff, "d_ff")
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model must be divisible by n_heads, got d_model={self.d_model}, "
                             f"n_heads={self.n_heads}")

    def to_dict(self) -> dict[str, object]:
        """The config as plain JSON-able values."""
        return asdict(self)


class TinyGPT(nn.Module):
    """Decoder-only Transformer LM: forward(ids (B, T), caches=None) -> logits (B, T, V)."""

    def __init__(self, config: TinyGPTConfig) -> None:
        super().__init__()
        if not isinstance(config, TinyGPTConfig):
            raise ValueError(f"config must be a TinyGPTConfig, got {config!r}")
        self.config = config
        self.token_embedding = nn.Embedding(config.vocab_size, config.d_model)
        self.positions = LearnedPositions(config.context_length, config.d_model)
        self.decoder = Decoder(config.n_layers, config.d_model, config.n_heads, config.d_ff,
                               config.dropout, norm_position="pre")
        self.lm_head = nn.Linear(config.d_model, config.vocab_size, bias=False)
        self.lm_head.weight = self.token_embedding.weight  # weight tying: one (V, d) table
        self._init_weights()

    def _init_weights(self) -> None:
        residual_std = 0.02 / math.sqrt(2 * self.config.n_layers)
        for name, module in self.decoder.named_modules():
            if isinstance(module, nn.Linear):
                is_residual = name.endswith("out_proj") or name.endswith("fc_out")
                nn.init.normal_(module.weight, mean=0.0, std=residual_std if is_residual else 0.02)
                nn.init.zeros_(module.bias)
        nn.init.normal_(self.token_embedding.weight, mean=0.0, std=0.02)  # positions: N(0, 0.01) already

    @property
    def vocab_size(self) -> int:
        """Number of token ids the model reads and scores."""
        return self.config.vocab_size

    @property
    def context_length(self) -> int:
        """The most positions the model can attend over (rows of the position table)."""
        return self.config.context_length

    def num_parameters(self) -> int:
        """Number of distinct trainable values (the tied table counted once)."""
        return sum(p.numel() for p in self.parameters())

    def new_caches(self) -> list[KVCache]:
        """One empty KV cache per layer, for `forward(..., caches=...)`."""
        return self.decoder.new_caches()

    def forward(self, ids: torch.Tensor, caches: list[KVCache] | None = None) -> torch.Tensor:
        """Logits of the next token after every position: ids (B, T) -> (B, T, V).

        With ``caches`` (from `new_caches`), ``ids`` are the positions that follow the cached ones:
        their keys and values are appended and the result equals the matching rows of one
        teacher-forced pass over the whole sequence.
        """
        past = 0 if caches is None else len(caches[0])
        self._check_ids(ids, past)
        B, T = ids.shape
        positions = torch.arange(past, past + T, device=ids.device)  # (T,)
        x = self.token_embedding(ids) + self.positions(positions)  # (B, T, d)
        h = self.decoder(x, caches=caches)  # (B, T, d), final LayerNorm included
        return self.lm_head(h)  # (B, T, V) = h @ wte^T

    def _check_ids(self, ids: object, past: int) -> None:
        if not isinstance(ids, torch.Tensor) or ids.dtype != torch.long or ids.dim() != 2 or ids.shape[1] == 0:
            shown = f"shape {tuple(ids.shape)}, dtype {ids.dtype}" if isinstance(ids, torch.Tensor) else repr(ids)
            raise ValueError(f"ids must be a LongTensor of shape (B, T) with T >= 1, got {shown}")
        if past + ids.shape[1] > self.context_length:
            raise ValueError(f"ids has {ids.shape[1]} positions after {past} cached ones, more than the "
                             f"context_length {self.context_length}")
        low, high = int(ids.min()), int(ids.max())
        if low < 0 or high >= self.vocab_size:
            raise ValueError(f"ids must be in [0, {self.vocab_size}), got values in [{low}, {high}]")

    def as_next_logits(self, kv_cache: bool = True) -> NextTokenLogits:
        """This model as a ``next_logits(ids (B, T)) -> (B, V)`` function for `course_lib.decoding`."""
        return NextTokenLogits(self, kv_cache)


class NextTokenLogits:
    """A TinyGPT seen by the decoders: ids (B, T) -> logits of the next token (B, V), without gradients.

    With ``kv_cache=True`` it remembers the sequences of its last call and their KV caches. When a
    call's sequences each extend one of those by exactly one token (greedy or sampled decoding, or
    beam search, whose beams may be reordered and duplicated), the caches' rows are gathered to
    follow each sequence's parent and only the newest token is fed through the model. Any other call
    starts over with a full pass. With ``kv_cache=False`` every call re-encodes the whole prefix.
    ``vocab_size`` and ``context_length`` let the decoders check prompts before decoding.
    """

    def __init__(self, model: TinyGPT, kv_cache: bool = True) -> None:
        self.model = model
        self.kv_cache = kv_cache
        self.vocab_size = model.vocab_size
        self.context_length = model.context_length
        self._ids: torch.Tensor | None = None  # (B, T) the sequences the caches hold
        self._caches: list[KVCache] = []

    def _parents(self, ids: torch.Tensor) -> torch.Tensor | None:
        """For each row of ids (B, T), the row of the last call it extends by one token, or None."""
        if self._ids is None or ids.shape[1] != self._ids.shape[1] + 1:
            return None
        prefix = ids[:, :-1]  # (B, T - 1)
        if prefix.shape == self._ids.shape and torch.equal(prefix, self._ids):
            return torch.arange(ids.shape[0], device=ids.device)  # (B,) same rows, same order
        match = (prefix[:, None, :] == self._ids[None, :, :]).all(dim=-1)  # (B, B_old)
        if not bool(match.any(dim=1).all()):
            return None
        return match.int().argmax(dim=1)  # (B,) the first matching old row

    @torch.no_grad()
    def __call__(self, ids: torch.Tensor) -> torch.Tensor:
        if not self.kv_cache:
            return self.model(ids)[:, -1]  # (B, V)
        parents = self._parents(ids) if isinstance(ids, torch.Tensor) else None
        self._ids = None  # a call that fails leaves no half-updated cache behind
        if parents is None:
            self._caches = self.model.new_caches()
            logits = self.model(ids, self._caches)  # (B, T, V)
        else:
            for cache in self._caches:
                cache.k, cache.v = cache.k[parents], cache.v[parents]  # (B, Hkv, T - 1, hd)
            logits = self.model(ids[:, -1:], self._caches)  # (B, 1, V)
        self._ids = ids
        return logits[:, -1]  # (B, V)
