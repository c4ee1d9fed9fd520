"""Recurrent sequence-to-sequence models: a GRU encoder-decoder, with and without additive attention.

The encoder-decoder of Sutskever, Vinyals & Le (2014) and Cho et al. (2014), written with GRUs (the
gated unit Cho et al. introduced):

    source ids (B, S) -> embedding -> GRU -> states h_1..h_S (B, S, H), final state h_S (B, H)

- `GRUDecoder` (no attention): the decoder GRU starts from the final encoder state and sees nothing
  else of the source. Every source token has to pass through that one vector of H numbers: the
  single-vector bottleneck.
- `AttentionGRUDecoder`: the same decoder, and before every step it reads the source again.
  `BahdanauAttention` scores each encoder state against the previous decoder state,
  e_j = v^T tanh(W_q s + W_k h_j) (additive attention; Bahdanau, Cho & Bengio 2015), turns the
  scores into weights with a softmax over the real (unpadded) source positions, and feeds the
  weighted average of the encoder states, the context, to the GRU and to the output layer.

`Seq2Seq` puts an encoder and a decoder together. Training is teacher-forced: the decoder reads the
true previous token at every step, so `Seq2Seq.forward` scores every target position in one call
and `Seq2Seq.loss` is the mean of the per-step cross-entropies. Generation is sequential:
`Seq2Seq.greedy_decode` feeds back its own argmax until end-of-sequence. `fit` trains on fresh
random batches (the model zoo, `course_lib.zoo`, trains the shipped models with it).

The task: `ReversalTask` writes sequences of words of the course world (its people, cities, jobs,
pets and colours) and asks for them in reverse order, one token per word. Its lengths vary, its
answer is exact, and every source token must reach the output, so a fixed-size summary of the
source gets worse as the source grows.

Conventions: token ids ``PAD = 0``, ``BOS = 1`` (the first decoder input), ``EOS = 2`` (the last
target), words from id 3 on. Sources are right-padded with ``PAD`` and come with their lengths.

Left out: the bidirectional encoder and the maxout output layer of Bahdanau et al. (their decoder
also started from a projection of the backward encoder state, here the final encoder state), LSTMs
and stacked layers (Sutskever et al. used four LSTM layers), beam search, scheduled sampling, and
packed sequences (padded positions are run through the encoder and then ignored).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from course_lib.attention import padding_mask
from course_lib.softmax import softmax
from course_lib.training import train_loop
from course_lib.validation import (
    boolean,
    callable_arg,
    integer,
    nonnegative_int,
    positive_int,
    positive_number,
    type_name,
)
from course_lib.world import World

__all__ = [
    "PAD", "BOS", "EOS", "SPECIALS", "Batch", "ReversalTask", "Seq2SeqConfig", "Encoded", "GRUEncoder",
    "BahdanauAttention", "GRUDecoder", "AttentionGRUDecoder", "Decoded", "Seq2Seq", "exact_match",
    "accuracy_by_length", "fit",
]

PAD, BOS, EOS = 0, 1, 2
SPECIALS = ("<pad>", "<bos>", "<eos>")


# --- the task --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Batch:
    """A padded batch: the source and its lengths, the decoder's inputs and its targets.

    ``src`` (B, S) and ``src_lengths`` (B,); ``tgt_in`` (B, T) = BOS then the target words;
    ``tgt_out`` (B, T) = the target words then EOS. Positions past a sequence's end hold PAD.
    """

    src: Tensor
    src_lengths: Tensor
    tgt_in: Tensor
    tgt_out: Tensor

    def to(self, device: torch.device | str) -> Batch:
        """The same batch on ``device``."""
        return Batch(*(t.to(device) for t in (self.src, self.src_lengths, self.tgt_in, self.tgt_out)))


@dataclass(frozen=True)
class ReversalTask:
    """Reverse a sequence of words: "Rozi teacher Pominport" -> "Pominport teacher Rozi".

    ``words`` are the task's vocabulary; word i has token id ``3 + i`` (ids 0-2 are PAD, BOS, EOS).
    """

    words: tuple[str, ...]

    def __post_init__(self) -> None:
        if not isinstance(self.words, tuple) or not all(isinstance(w, str) for w in self.words):
            raise TypeError(f"words must be a tuple of str, got {self.words!r:.80}")
        if not self.words or len(set(self.words)) != len(self.words):
            raise ValueError(f"words must be a non-empty tuple of distinct words, got {self.words!r}")

    @classmethod
    def from_world(cls, world: World) -> ReversalTask:
        """The task on a world's names, cities, jobs, pets and colours (52 words for the shipped world)."""
        if not isinstance(world, World):
            raise TypeError(f"world must be a course_lib.world.World, got {type_name(world)}")
        return cls(world.names + world.cities + world.jobs + world.pets + world.colours)

    @property
    def vocab_size(self) -> int:
        """Number of token ids: the special tokens and the words."""
        return len(SPECIALS) + len(self.words)

    def encode(self, words: Sequence[str]) -> list[int]:
        """Token ids of a list of words."""
        index = {w: i + len(SPECIALS) for i, w in enumerate(self.words)}
        unknown = [w for w in words if w not in index]
        if unknown:
            raise ValueError(f"words must be in the task's vocabulary, got unknown words {unknown}")
        return [index[w] for w in words]

    def decode(self, ids: Sequence[int] | Tensor) -> list[str]:
        """The words of a sequence of ids, up to its first EOS (PAD and BOS skipped)."""
        names = SPECIALS + self.words
        out = []
        for i in (ids.tolist() if isinstance(ids, Tensor) else ids):
            if i == EOS:
                break
            if not 0 <= i < len(names):
                raise ValueError(f"ids must be in [0, {len(names)}), got {i}")
            if i >= len(SPECIALS):
                out.append(names[i])
        return out

    def batch(self, sources: Sequence[Sequence[int]]) -> Batch:
        """The padded batch of the given sources (lists of word ids) and their reversals."""
        if not sources or any(len(s) == 0 for s in sources):
            raise ValueError("sources must be a non-empty list of non-empty id lists")
        ids = [integer(i, f"sources[{row}][{j}]") for row, s in enumerate(sources) for j, i in enumerate(s)]
        if min(ids) < len(SPECIALS) or max(ids) >= self.vocab_size:
            raise ValueError(f"source ids must be word ids in [{len(SPECIALS)}, {self.vocab_size}), "
                             f"got values in [{min(ids)}, {max(ids)}]")
        lengths = torch.tensor([len(s) for s in sources])  # (B,)
        src = torch.full((len(sources), int(lengths.max())), PAD, dtype=torch.long)  # (B, S)
        for row, s in enumerate(sources):
            src[row, :len(s)] = torch.tensor([int(i) for i in s])
        return _reversal_batch(src, lengths)

    def sample(self, n: int, min_length: int, max_length: int, seed: int | torch.Generator) -> Batch:
        """``n`` random sources, lengths uniform in [min_length, max_length], words uniform (with repeats).

        ``seed`` is an int (a fresh generator seeded with it) or a ``torch.Generator`` to draw from.
        """
        n = positive_int(n, "n")
        min_length = positive_int(min_length, "min_length")
        max_length = positive_int(max_length, "max_length")
        if max_length < min_length:
            raise ValueError(f"max_length must be >= min_length={min_length}, got {max_length}")
        generator = seed if isinstance(seed, torch.Generator) else torch.Generator().manual_seed(
            nonnegative_int(seed, "seed"))
        lengths = torch.randint(min_length, max_length + 1, (n,), generator=generator)  # (B,)
        words = torch.randint(len(SPECIALS), self.vocab_size, (n, max_length), generator=generator)  # (B, S)
        longest = int(lengths.max())
        src = words[:, :longest].masked_fill(~_valid(lengths, longest), PAD)  # (B, S)
        return _reversal_batch(src, lengths)


def _valid(lengths: Tensor, width: int) -> Tensor:
    """(B, width) True at the positions before each row's length."""
    return padding_mask(lengths, width)[:, 0, 0]  # (B, width)


def _reversal_batch(src: Tensor, lengths: Tensor) -> Batch:
    """The batch whose targets are the sources reversed, each followed by EOS."""
    B, S = src.shape
    rows = torch.arange(B)
    backwards = (lengths[:, None] - 1 - torch.arange(S)[None, :]).clamp(min=0)  # (B, S)
    reversed_src = src.gather(1, backwards).masked_fill(~_valid(lengths, S), PAD)  # (B, S)
    tgt_out = torch.cat([reversed_src, torch.full((B, 1), PAD)], dim=1)  # (B, S + 1)
    tgt_out[rows, lengths] = EOS
    tgt_in = torch.cat([torch.full((B, 1), BOS), reversed_src], dim=1)  # (B, S + 1)
    return Batch(src, lengths, tgt_in, tgt_out)


# --- the model -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Seq2SeqConfig:
    """The shape of a `Seq2Seq`: vocabulary, embedding and GRU widths, attention or not."""

    vocab_size: int
    d_embed: int = 32
    d_hidden: int = 64
    attention: bool = False
    d_attention: int | None = None  # width of the additive attention's hidden layer; None: d_hidden

    def __post_init__(self) -> None:
        for name in ("vocab_size", "d_embed", "d_hidden"):  # stored as plain ints
            object.__setattr__(self, name, positive_int(getattr(self, name), name))
        boolean(self.attention, "attention")
        if self.d_attention is not None:
            object.__setattr__(self, "d_attention", positive_int(self.d_attention, "d_attention"))

    def to_dict(self) -> dict[str, object]:
        """The config as plain JSON-able values."""
        return asdict(self)


@dataclass(frozen=True)
class Encoded:
    """What the encoder hands the decoder: every state (B, S, H), the final one (B, H), the mask (B, S)."""

    states: Tensor
    final: Tensor
    mask: Tensor


class GRUEncoder(nn.Module):
    """Embedding and a one-layer GRU: (src (B, S), lengths (B,)) -> `Encoded`."""

    def __init__(self, vocab_size: int, d_embed: int, d_hidden: int) -> None:
        super().__init__()
        vocab_size = positive_int(vocab_size, "vocab_size")
        d_embed = positive_int(d_embed, "d_embed")
        d_hidden = positive_int(d_hidden, "d_hidden")
        self.embedding = nn.Embedding(vocab_size, d_embed, padding_idx=PAD)
        self.gru = nn.GRU(d_embed, d_hidden, batch_first=True)

    def forward(self, src: Tensor, src_lengths: Tensor) -> Encoded:
        """Encode right-padded sources; the final state of a row is its state at its last real token."""
        states, _ = self.gru(self.embedding(src))  # (B, S, H); padded steps are computed, then ignored
        rows = torch.arange(src.shape[0], device=src.device)
        final = states[rows, src_lengths - 1]  # (B, H) the state after each row's last token
        return Encoded(states, final, _valid(src_lengths, src.shape[1]))


class BahdanauAttention(nn.Module):
    """Additive attention: score_j = v^T tanh(W_q s + W_k h_j), weights = softmax over unmasked j.

    ``forward(query (B, Dq), keys (B, S, Dk), mask (B, S)) -> (context (B, Dk), weights (B, S))``.
    The context is the weighted average of the keys (the encoder states serve as keys and values).
    Masked positions get weight exactly 0. ``W_k h_j`` does not depend on the decoder step, so a
    decoder computes it once per source with `project_keys` and passes it in.
    """

    def __init__(self, d_query: int, d_key: int, d_attention: int) -> None:
        super().__init__()
        d_query = positive_int(d_query, "d_query")
        d_key = positive_int(d_key, "d_key")
        d_attention = positive_int(d_attention, "d_attention")
        self.w_query = nn.Linear(d_query, d_attention, bias=False)
        self.w_key = nn.Linear(d_key, d_attention)
        self.v = nn.Linear(d_attention, 1, bias=False)

    def project_keys(self, keys: Tensor) -> Tensor:
        """W_k h for every key: (B, S, Dk) -> (B, S, A)."""
        return self.w_key(keys)

    def forward(self, query: Tensor, keys: Tensor, mask: Tensor,
                projected_keys: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """(query (B, Dq), keys (B, S, Dk), mask (B, S), True = real) -> (context (B, Dk), weights (B, S))."""
        _check_attention_inputs(query, keys, mask)
        projected = self.project_keys(keys) if projected_keys is None else projected_keys  # (B, S, A)
        scores = self.v(torch.tanh(self.w_query(query)[:, None, :] + projected))[..., 0]  # (B, S)
        weights = softmax(scores.masked_fill(~mask, float("-inf")), dim=-1)  # (B, S), rows sum to 1
        context = (weights[:, :, None] * keys).sum(dim=1)  # (B, Dk)
        return context, weights


def _check_attention_inputs(query: Tensor, keys: Tensor, mask: Tensor) -> None:
    if query.ndim != 2 or keys.ndim != 3 or query.shape[0] != keys.shape[0]:
        raise ValueError(f"query must be (B, Dq) and keys (B, S, Dk) with the same B, got shapes "
                         f"{tuple(query.shape)} and {tuple(keys.shape)}")
    if mask.dtype != torch.bool:
        raise TypeError(f"mask must be a bool tensor, got dtype {mask.dtype}")
    if mask.shape != keys.shape[:2]:
        raise ValueError(f"mask must be a bool tensor of shape {tuple(keys.shape[:2])}, got shape "
                         f"{tuple(mask.shape)}")
    if not bool(mask.any(dim=1).all()):
        raise ValueError("mask must leave at least one source position per row")


class GRUDecoder(nn.Module):
    """The decoder without attention: its GRU starts from the final encoder state and never sees more.

    `step` advances one token; `forward` runs a whole teacher-forced sequence in one GRU call. Both
    return ``weights=None``: there is no attention to show.
    """

    def __init__(self, vocab_size: int, d_embed: int, d_hidden: int) -> None:
        super().__init__()
        vocab_size = positive_int(vocab_size, "vocab_size")
        d_embed = positive_int(d_embed, "d_embed")
        d_hidden = positive_int(d_hidden, "d_hidden")
        self.embedding = nn.Embedding(vocab_size, d_embed, padding_idx=PAD)
        self.gru = nn.GRU(d_embed, d_hidden, batch_first=True)
        self.out = nn.Linear(d_hidden, vocab_size)

    def step(self, token: Tensor, state: Tensor, encoded: Encoded) -> tuple[Tensor, Tensor, None]:
        """(token (B,), state (B, H)) -> (logits (B, V), new state (B, H), None)."""
        logits, state, _ = self.forward(token[:, None], state, encoded)  # (B, 1, V), (B, H)
        return logits[:, 0], state, None

    def forward(self, tgt_in: Tensor, state: Tensor, encoded: Encoded) -> tuple[Tensor, Tensor, None]:
        """(tgt_in (B, T), initial state (B, H)) -> (logits (B, T, V), final state (B, H), None)."""
        outputs, last = self.gru(self.embedding(tgt_in), state[None])  # (B, T, H), (1, B, H)
        return self.out(outputs), last[0], None


class AttentionGRUDecoder(nn.Module):
    """The decoder with Bahdanau attention: each step reads a fresh context from every encoder state.

    Step t: (c_t, alpha_t) = attention(s_{t-1}, h); s_t = GRU([embed(y_{t-1}); c_t], s_{t-1});
    logits = W_o [s_t; c_t].
    """

    def __init__(self, vocab_size: int, d_embed: int, d_hidden: int, d_attention: int) -> None:
        super().__init__()
        vocab_size = positive_int(vocab_size, "vocab_size")
        d_embed = positive_int(d_embed, "d_embed")
        d_hidden = positive_int(d_hidden, "d_hidden")
        self.embedding = nn.Embedding(vocab_size, d_embed, padding_idx=PAD)
        self.attention = BahdanauAttention(d_hidden, d_hidden, d_attention)
        self.cell = nn.GRUCell(d_embed + d_hidden, d_hidden)
        self.out = nn.Linear(2 * d_hidden, vocab_size)

    def step(self, token: Tensor, state: Tensor, encoded: Encoded,
             projected_keys: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """(token (B,), state (B, H)) -> (logits (B, V), new state (B, H), weights (B, S))."""
        context, weights = self.attention(state, encoded.states, encoded.mask, projected_keys)  # (B, H), (B, S)
        state = self.cell(torch.cat([self.embedding(token), context], dim=-1), state)  # (B, H)
        logits = self.out(torch.cat([state, context], dim=-1))  # (B, V)
        return logits, state, weights

    def forward(self, tgt_in: Tensor, state: Tensor, encoded: Encoded) -> tuple[Tensor, Tensor, Tensor]:
        """(tgt_in (B, T), initial state (B, H)) -> (logits (B, T, V), final state (B, H), weights (B, T, S))."""
        projected = self.attention.project_keys(encoded.states)  # (B, S, A), once per source
        all_logits, all_weights = [], []
        for t in range(tgt_in.shape[1]):
            logits, state, weights = self.step(tgt_in[:, t], state, encoded, projected)  # (B, V), (B, H), (B, S)
            all_logits.append(logits)
            all_weights.append(weights)
        return torch.stack(all_logits, dim=1), state, torch.stack(all_weights, dim=1)  # (B, T, V), (B, H), (B, T, S)


@dataclass(frozen=True)
class Decoded:
    """Greedy output: ``tokens`` (B, L) ending in EOS then PAD; ``attention`` (B, L, S) or None."""

    tokens: Tensor
    attention: Tensor | None


class Seq2Seq(nn.Module):
    """Encoder-decoder: `GRUEncoder` and `GRUDecoder`, or `AttentionGRUDecoder` if ``config.attention``."""

    def __init__(self, config: Seq2SeqConfig) -> None:
        super().__init__()
        if not isinstance(config, Seq2SeqConfig):
            raise TypeError(f"config must be a Seq2SeqConfig, got {config!r}")
        self.config = config
        V, E, H = config.vocab_size, config.d_embed, config.d_hidden
        self.encoder = GRUEncoder(V, E, H)
        self.decoder = (AttentionGRUDecoder(V, E, H, config.d_attention or H) if config.attention
                        else GRUDecoder(V, E, H))

    def num_parameters(self) -> int:
        """Number of trainable values."""
        return sum(p.numel() for p in self.parameters())

    def forward(self, src: Tensor, src_lengths: Tensor, tgt_in: Tensor) -> tuple[Tensor, Tensor | None]:
        """Teacher forcing: logits (B, T, V) for every target position, and attention (B, T, S) or None."""
        self._check_source(src, src_lengths)
        self._check_ids(tgt_in, "tgt_in", src.shape[0])
        encoded = self.encoder(src, src_lengths)
        logits, _, weights = self.decoder(tgt_in, encoded.final, encoded)  # (B, T, V)
        return logits, weights

    def loss(self, batch: Batch) -> Tensor:
        """Mean cross-entropy over the non-PAD target tokens, EOS included (nats per token)."""
        if not isinstance(batch, Batch):
            raise TypeError(f"batch must be a Batch, got {type_name(batch)}")
        self._check_ids(batch.tgt_out, "tgt_out", batch.src.shape[0])
        if batch.tgt_out.shape != batch.tgt_in.shape:
            raise ValueError(f"tgt_out must have tgt_in's shape {tuple(batch.tgt_in.shape)}, got "
                             f"{tuple(batch.tgt_out.shape)}")
        logits, _ = self(batch.src, batch.src_lengths, batch.tgt_in)  # (B, T, V)
        return F.cross_entropy(logits.flatten(0, 1), batch.tgt_out.flatten(), ignore_index=PAD)

    @torch.no_grad()
    def greedy_decode(self, src: Tensor, src_lengths: Tensor, max_length: int) -> Decoded:
        """Feed back the argmax from BOS until every row has written EOS or ``max_length`` tokens."""
        self._check_source(src, src_lengths)
        max_length = positive_int(max_length, "max_length")
        encoded = self.encoder(src, src_lengths)
        state, token = encoded.final, torch.full_like(src_lengths, BOS)  # (B, H), (B,)
        done = torch.zeros_like(src_lengths, dtype=torch.bool)  # (B,)
        tokens, weights = [], []
        keys = (self.decoder.attention.project_keys(encoded.states),) if self.config.attention else ()  # (B, S, A)
        for _ in range(max_length):
            logits, state, alpha = self.decoder.step(token, state, encoded, *keys)  # (B, V), (B, H), (B, S)
            token = logits.argmax(dim=-1).masked_fill(done, PAD)  # (B,) PAD after a row's EOS
            tokens.append(token)
            if alpha is not None:
                weights.append(alpha.masked_fill(done[:, None], 0.0))
            done = done | (token == EOS)
            if bool(done.all()):
                break
        return Decoded(torch.stack(tokens, dim=1), torch.stack(weights, dim=1) if weights else None)

    def _check_source(self, src: object, src_lengths: object) -> None:
        self._check_ids(src, "src")
        if not isinstance(src_lengths, Tensor) or src_lengths.dtype != torch.long:
            shown = f"dtype {src_lengths.dtype}" if isinstance(src_lengths, Tensor) else type_name(src_lengths)
            raise TypeError(f"src_lengths must be a LongTensor, got {shown}")
        if src_lengths.shape != (src.shape[0],):
            raise ValueError(f"src_lengths must be a LongTensor of shape ({src.shape[0]},), got shape "
                             f"{tuple(src_lengths.shape)}")
        if bool(((src_lengths < 1) | (src_lengths > src.shape[1])).any()):
            raise ValueError(f"src_lengths must be in [1, {src.shape[1]}], got {src_lengths.tolist()}")

    def _check_ids(self, ids: object, name: str, batch_size: int | None = None) -> None:
        if not isinstance(ids, Tensor) or ids.dtype != torch.long:
            shown = f"dtype {ids.dtype}" if isinstance(ids, Tensor) else type_name(ids)
            raise TypeError(f"{name} must be a LongTensor, got {shown}")
        if ids.ndim != 2 or 0 in ids.shape:
            raise ValueError(f"{name} must be a non-empty LongTensor of shape (B, T), got shape {tuple(ids.shape)}")
        if batch_size is not None and ids.shape[0] != batch_size:
            raise ValueError(f"{name} must have the source's batch size {batch_size}, got {ids.shape[0]}")
        low, high = int(ids.min()), int(ids.max())
        if low < 0 or high >= self.config.vocab_size:
            raise ValueError(f"{name} must be in [0, {self.config.vocab_size}), got values in [{low}, {high}]")


# --- scoring ---------------------------------------------------------------------------------------


def exact_match(model: Seq2Seq, batch: Batch) -> Tensor:
    """Greedy decoding of each source is its whole target, EOS included and nothing after: (B,) bool."""
    if not isinstance(batch, Batch):
        raise TypeError(f"batch must be a Batch, got {type_name(batch)}")
    T = batch.tgt_out.shape[1]
    tokens = model.greedy_decode(batch.src, batch.src_lengths, T).tokens  # (B, <= T)
    padded = F.pad(tokens, (0, T - tokens.shape[1]), value=PAD)  # (B, T)
    return (padded == batch.tgt_out).all(dim=1)


def accuracy_by_length(model: Seq2Seq, task: ReversalTask, lengths: Sequence[int], n: int,
                       seed: int) -> dict[int, float]:
    """For each length, the fraction of ``n`` random sources (seeded) that greedy decoding gets exactly right."""
    if not lengths:
        raise ValueError("lengths must not be empty")
    lengths = [positive_int(length, "lengths") for length in lengths]
    device = next(model.parameters()).device
    accuracy = {}
    for length in lengths:
        batch = task.sample(n, length, length, seed=seed + length).to(device)
        accuracy[length] = int(exact_match(model, batch).sum()) / n
    return accuracy


# --- training --------------------------------------------------------------------------------------


def fit(model: Seq2Seq, task: ReversalTask, steps: int, batch_size: int, min_length: int, max_length: int,
        learning_rate: Callable[[int], float], generator: torch.Generator, grad_clip: float = 1.0,
        progress: bool = False) -> list[float]:
    """Train with Adam for ``steps`` steps, each on a fresh batch from ``task.sample``; returns the losses.

    ``learning_rate(step)`` gives each step's rate; gradients are clipped to norm ``grad_clip``. The
    loop is `course_lib.training.train_loop`; the model is in eval mode afterwards.
    """
    if not isinstance(model, Seq2Seq) or not isinstance(task, ReversalTask):
        raise TypeError(f"model must be a Seq2Seq and task a ReversalTask, got {type_name(model)} and "
                        f"{type_name(task)}")
    if model.config.vocab_size != task.vocab_size:
        raise ValueError(f"model.config.vocab_size must equal task.vocab_size={task.vocab_size}, "
                         f"got {model.config.vocab_size}")
    steps = positive_int(steps, "steps")
    batch_size = positive_int(batch_size, "batch_size")
    callable_arg(learning_rate, "learning_rate", "a function of the step")
    if not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator, got {type_name(generator)}")
    grad_clip = positive_number(grad_clip, "grad_clip")
    device = next(model.parameters()).device
    optimizer = torch.optim.Adam(model.parameters(), lr=learning_rate(0))

    def step_losses(step: int) -> dict[str, Tensor]:
        return {"loss": model.loss(task.sample(batch_size, min_length, max_length, generator).to(device))}

    return train_loop(model, optimizer, step_losses, steps, learning_rate, grad_clip, progress,
                      "training seq2seq")["loss"]
