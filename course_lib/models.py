"""The course's two tiny Transformers, small enough to train on a laptop CPU: TinyGPT (decoder-only,
causal language modelling) and TinyEncoder (encoder-only, BERT's masked LM and sentence-pair heads).

Both are assembled from `course_lib.transformer`'s pre-LN blocks and `course_lib.positional`'s
learned position table; neither has a Transformer of its own.

TinyGPT is GPT-2's recipe at toy scale:

    ids (B, T) -> token embedding + learned position embedding -> n_layers pre-LN decoder blocks
    (causal self-attention, GELU MLP) -> final LayerNorm -> logits = h @ wte^T  (B, T, V)

The output layer is tied to the token embedding (one (V, d) table serves both ends;
`TinyGPT.untie_output_layer` gives it a copy of its own). Weights start
as in GPT-2's released code: N(0, 0.02) for the token table and the linear layers, N(0, 0.01) for
the position table, and the two projections that write into the residual stream scaled by
1/sqrt(2 n_layers) (Radford et al. 2019, section 2.3).

Training is parallel: one teacher-forced pass scores every position at once, the causal mask keeping
each position from seeing later ones. Generation is sequential; `TinyGPT.as_next_logits` exposes
the model to `course_lib.decoding` as a ``next_logits(ids)`` function that keeps a KV cache (one
`course_lib.attention.KVCache` per layer) and feeds only the newest token when a call extends the
sequences of the previous call, even when beam search has reordered or duplicated them.

TinyEncoder is BERT's recipe (Devlin et al. 2019, section 3 and its released code) at toy scale:

    ids (B, T), segment ids (B, T) -> token + position (+ segment) embeddings -> n_layers pre-LN
    encoder blocks (bidirectional self-attention, GELU MLP; [PAD] keys masked) -> final LayerNorm
    -> h (B, T, d)
    MLM head:  Linear -> GELU -> LayerNorm -> @ wte^T + bias   (B, T, V), tied to the token table
    pair head: h[:, 0] ([CLS]) -> Linear -> tanh ("pooler") -> Linear  (B, 2), for NSP or SOP

Every position sees every other one, so the MLM logits at position i depend on the tokens after i
as much as on those before. Weights start as in BERT, N(0, sigma) for every weight matrix and
embedding table and zero biases, with BERT-base's sigma = 0.02 at width 768 kept in proportion to
1/sqrt(d_model): sigma = 0.02 sqrt(768 / d_model), 0.069 at width 64. (A plain 0.02 at width 64
leaves the attention scores so small that learning NSP stalls; `course_lib.zoo` measures it.)
BERT places the LayerNorm after each residual sum (post-LN) and normalises the summed embeddings;
here, as in TinyGPT, each sublayer normalises its input (pre-LN) and the stack ends with one
LayerNorm. Its tokenizer, `course_lib.tokenization.EncoderTokenizer`, adds BERT's four special
tokens after a byte-level BPE's ids and packs segment pairs as ``[CLS] A [SEP] B [SEP]`` with
segment ids 0 and 1.

Left out: dropout schedules, weight decay groups, mixed precision, flash attention, sliding windows,
generation past the context length (a learned position table has no row for it), and, for the
encoder, BERT's WordPiece vocabulary, whole-word masking and the fine-tuning heads.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import NamedTuple

import torch
from torch import nn

from course_lib.attention import KVCache
from course_lib.positional import LearnedPositions
from course_lib.transformer import Decoder, Encoder
from course_lib.validation import int_in_range, nonnegative_int, positive_int

__all__ = [
    "TinyGPTConfig", "TinyGPT", "NextTokenLogits", "BERT_INIT_STD", "BERT_BASE_WIDTH",
    "TinyEncoderConfig", "EncoderOutput", "TinyEncoder",
]


def _check_shape(config: TinyGPTConfig | TinyEncoderConfig) -> None:
    """The checks both configs share: positive sizes (stored as plain ints), heads dividing the width."""
    for name in ("vocab_size", "context_length", "d_model", "n_heads", "n_layers"):
        object.__setattr__(config, name, positive_int(getattr(config, name), name))
    if config.d_ff is not None:
        object.__setattr__(config, "d_ff", positive_int(config.d_ff, "d_ff"))
    if config.d_model % config.n_heads:
        raise ValueError(f"d_model must be divisible by n_heads, got d_model={config.d_model}, "
                         f"n_heads={config.n_heads}")


def _check_token_ids(ids: object, vocab_size: int, context_length: int, past: int | None = None) -> None:
    """ids must be a LongTensor (B, T), B >= 1, 1 <= (past or 0) + T <= context_length, values in [0, vocab_size)."""
    if not isinstance(ids, torch.Tensor) or ids.dtype != torch.long or ids.dim() != 2 or 0 in ids.shape:
        shown = f"shape {tuple(ids.shape)}, dtype {ids.dtype}" if isinstance(ids, torch.Tensor) else repr(ids)
        raise ValueError(f"ids must be a LongTensor of shape (B, T) with B, T >= 1, got {shown}")
    if (past or 0) + ids.shape[1] > context_length:
        after = "" if past is None else f" after {past} cached ones"
        raise ValueError(f"ids has {ids.shape[1]} positions{after}, more than the context_length {context_length}")
    low, high = int(ids.min()), int(ids.max())
    if low < 0 or high >= vocab_size:
        raise ValueError(f"ids must be in [0, {vocab_size}), got values in [{low}, {high}]")


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
        _check_shape(self)

    def to_dict(self) -> dict[str, object]:
        """The config as plain JSON-able values."""
        return asdict(self)


class TinyGPT(nn.Module):
    """Decoder-only Transformer LM: forward(ids (B, T), caches=None) -> logits (B, T, V)."""

    def __init__(self, config: TinyGPTConfig) -> None:
        super().__init__()
        if not isinstance(config, TinyGPTConfig):
            raise TypeError(f"config must be a TinyGPTConfig, got {config!r}")
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

    def untie_output_layer(self) -> TinyGPT:
        """Give the output layer its own copy of the token table (same values, a separate parameter).

        Returns the model itself. The logits are unchanged at first; the two tables then get different
        gradients: the token table only on the rows of the tokens read, the output layer on every row.
        Left out: tying them again (build a new model).
        """
        if self.lm_head.weight is not self.token_embedding.weight:
            raise ValueError("the output layer is already untied from the token table")
        self.lm_head.weight = nn.Parameter(self.token_embedding.weight.detach().clone())  # (V, d)
        return self

    def new_caches(self) -> list[KVCache]:
        """One empty KV cache per layer, for `forward(..., caches=...)`."""
        return self.decoder.new_caches()

    def forward(self, ids: torch.Tensor, caches: list[KVCache] | None = None) -> torch.Tensor:
        """Logits of the next token after every position: ids (B, T) -> (B, T, V).

        With ``caches`` (from `new_caches`), ``ids`` are the positions that follow the cached ones:
        their keys and values are appended and the result equals the matching rows of one
        teacher-forced pass over the whole sequence.
        """
        return self.lm_head(self.hidden_states(ids, caches))  # (B, T, V) = h @ wte^T

    def hidden_states(self, ids: torch.Tensor, caches: list[KVCache] | None = None) -> torch.Tensor:
        """The last layer's vectors, after the final LayerNorm, that the LM head reads: ids (B, T) -> (B, T, d).

        These are the model's features of each prefix (what a linear probe reads); ``caches`` as in
        `forward`.
        """
        if caches is not None and (not isinstance(caches, list) or len(caches) != self.config.n_layers):
            raise ValueError(f"caches must be a list of one KVCache per layer ({self.config.n_layers}), "
                             f"got {caches!r:.80}")
        past = 0 if caches is None else len(caches[0])
        _check_token_ids(ids, self.vocab_size, self.context_length, past)
        B, T = ids.shape
        positions = torch.arange(past, past + T, device=ids.device)  # (T,)
        x = self.token_embedding(ids) + self.positions(positions)  # (B, T, d)
        return self.decoder(x, caches=caches)  # (B, T, d), final LayerNorm included

    def attention_maps(self, ids: torch.Tensor) -> torch.Tensor:
        """Causal self-attention weights of every layer and head: ids (B, T) -> (B, L, H, T, T).

        Each block's weights are computed from that block's own input, as in `forward`; no
        gradients are kept.
        """
        _check_token_ids(ids, self.vocab_size, self.context_length, 0)
        with torch.no_grad():
            h = self.token_embedding(ids) + self.positions(torch.arange(ids.shape[1], device=ids.device))  # (B, T, d)
            maps = []
            for block in self.decoder.blocks:
                maps.append(block.attention_weights(h))  # (B, H, T, T)
                h = block(h)  # (B, T, d)
        return torch.stack(maps, dim=1)  # (B, L, H, T, T)

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
    The caches hold keys and values computed with the weights of the time: after any update of the
    model's weights (a training step), make a fresh ``model.as_next_logits()``, or a call that
    extends the previous one mixes old keys with new weights. It keeps a copy of the ids, so a
    caller may change its own tensor in place afterwards.
    A model in training mode with active dropout is refused (ValueError) at every call: its logits
    would change from call to call and a KV cache would mix several dropout masks; call
    ``model.eval()`` before decoding.
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
        _check_no_active_dropout(self.model)
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
        self._ids = ids.clone()  # a copy: the caller may change its tensor in place
        return logits[:, -1]  # (B, V)


def _check_no_active_dropout(model: nn.Module) -> None:
    active = [m.p for m in model.modules() if isinstance(m, nn.Dropout) and m.training and m.p > 0]
    if active:
        raise ValueError(f"the model is in training mode with dropout p={max(active)}: its logits would change "
                         f"from call to call and a KV cache would mix dropout masks; call model.eval() "
                         f"before decoding")


# --- TinyEncoder: BERT at toy scale ----------------------------------------------------------------

BERT_INIT_STD, BERT_BASE_WIDTH = 0.02, 768  # BERT-base: weights N(0, 0.02) at d_model = 768


@dataclass(frozen=True)
class TinyEncoderConfig:
    """The shape of a TinyEncoder; ``d_ff=None`` means 4 * d_model.

    ``n_segments`` rows of segment embeddings (BERT: 2, for A and B; 0: none). Keys whose id is
    ``pad_id`` are masked out of attention (None: no padding).
    """

    vocab_size: int
    context_length: int
    d_model: int = 64
    n_heads: int = 4
    n_layers: int = 2
    d_ff: int | None = None
    dropout: float = 0.0
    n_segments: int = 2
    pad_id: int | None = None

    def __post_init__(self) -> None:
        _check_shape(self)
        object.__setattr__(self, "n_segments", nonnegative_int(self.n_segments, "n_segments"))
        if self.pad_id is not None:
            object.__setattr__(self, "pad_id", int_in_range(self.pad_id, "pad_id", 0, self.vocab_size - 1))

    def to_dict(self) -> dict[str, object]:
        """The config as plain JSON-able values."""
        return asdict(self)


class EncoderOutput(NamedTuple):
    """What a TinyEncoder returns: MLM logits for every position and the pair logits from [CLS]."""

    mlm_logits: torch.Tensor  # (B, T, V)
    pair_logits: torch.Tensor  # (B, 2)


class TinyEncoder(nn.Module):
    """Encoder-only Transformer with BERT's two heads: forward(ids (B, T), segment_ids=None) -> EncoderOutput.

    ``mlm_logits`` (B, T, V) score the original token at every position (training reads them only
    where `course_lib.objectives.mlm_mask` selected a position); ``pair_logits`` (B, 2) classify the
    pair from the first position ([CLS]): for NSP, class 0 = "B follows A", 1 = "B is random"; for
    SOP, 0 = "in order", 1 = "swapped" (`course_lib.objectives`' labels).
    """

    def __init__(self, config: TinyEncoderConfig) -> None:
        super().__init__()
        if not isinstance(config, TinyEncoderConfig):
            raise TypeError(f"config must be a TinyEncoderConfig, got {config!r}")
        self.config = config
        d = config.d_model
        self.token_embedding = nn.Embedding(config.vocab_size, d)
        self.positions = LearnedPositions(config.context_length, d)
        self.segment_embedding = nn.Embedding(config.n_segments, d) if config.n_segments else None
        self.encoder = Encoder(config.n_layers, d, config.n_heads, config.d_ff, config.dropout, norm_position="pre")
        self.mlm_transform = nn.Sequential(nn.Linear(d, d), nn.GELU(), nn.LayerNorm(d))
        self.mlm_head = nn.Linear(d, config.vocab_size)  # weight tied below, bias of its own
        self.mlm_head.weight = self.token_embedding.weight  # one (V, d) table reads and scores tokens
        self.pooler = nn.Sequential(nn.Linear(d, d), nn.Tanh())
        self.pair_head = nn.Linear(d, 2)
        self._init_weights()

    def _init_weights(self) -> None:
        std = BERT_INIT_STD * math.sqrt(BERT_BASE_WIDTH / self.config.d_model)
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                nn.init.normal_(module.weight, mean=0.0, std=std)
            if isinstance(module, nn.Linear):
                nn.init.zeros_(module.bias)

    @property
    def vocab_size(self) -> int:
        """Number of token ids the model reads and scores (special tokens included)."""
        return self.config.vocab_size

    @property
    def context_length(self) -> int:
        """The most positions one sequence may have."""
        return self.config.context_length

    def num_parameters(self) -> int:
        """Number of distinct trainable values (the tied table counted once)."""
        return sum(p.numel() for p in self.parameters())

    def encode(self, ids: torch.Tensor, segment_ids: torch.Tensor | None = None) -> torch.Tensor:
        """Contextual vectors of every position: ids (B, T) -> h (B, T, d), final LayerNorm included.

        segment_ids (B, T) in [0, n_segments); None means all 0. Padding keys (``pad_id``) are masked.
        """
        self._check_inputs(ids, segment_ids)
        T = ids.shape[1]
        x = self.token_embedding(ids) + self.positions(torch.arange(T, device=ids.device))  # (B, T, d)
        if self.segment_embedding is not None:
            segments = torch.zeros_like(ids) if segment_ids is None else segment_ids  # (B, T)
            x = x + self.segment_embedding(segments)  # (B, T, d)
        mask = None if self.config.pad_id is None else (ids != self.config.pad_id)[:, None, None, :]  # (B, 1, 1, T)
        return self.encoder(x, mask=mask)  # (B, T, d)

    def mlm_logits(self, h: torch.Tensor) -> torch.Tensor:
        """Masked-LM logits from contextual vectors: h (..., d) -> (..., V) = transform(h) @ wte^T + b."""
        return self.mlm_head(self.mlm_transform(h))  # (..., V)

    def pair_logits(self, h: torch.Tensor) -> torch.Tensor:
        """Sentence-pair logits from the first ([CLS]) position: h (B, T, d) -> (B, 2)."""
        return self.pair_head(self.pooler(h[:, 0]))  # (B, 2)

    def forward(self, ids: torch.Tensor, segment_ids: torch.Tensor | None = None) -> EncoderOutput:
        """Both heads at once: ids (B, T) -> EncoderOutput(mlm_logits (B, T, V), pair_logits (B, 2))."""
        h = self.encode(ids, segment_ids)  # (B, T, d)
        return EncoderOutput(self.mlm_logits(h), self.pair_logits(h))

    def _check_inputs(self, ids: object, segment_ids: object) -> None:
        _check_token_ids(ids, self.vocab_size, self.context_length)
        if segment_ids is None:
            return
        if self.segment_embedding is None:
            raise ValueError("segment_ids were given, but this TinyEncoder has n_segments=0")
        if (not isinstance(segment_ids, torch.Tensor) or segment_ids.shape != ids.shape
                or segment_ids.dtype != torch.long):
            shown = (f"shape {tuple(segment_ids.shape)}, dtype {segment_ids.dtype}"
                     if isinstance(segment_ids, torch.Tensor) else repr(segment_ids))
            raise ValueError(f"segment_ids must be a LongTensor of the shape of ids {tuple(ids.shape)}, got {shown}")
        low, high = int(segment_ids.min()), int(segment_ids.max())
        if low < 0 or high >= self.config.n_segments:
            raise ValueError(f"segment_ids must be in [0, {self.config.n_segments}), got values in [{low}, {high}]")
