"""The model zoo: the course's tiny trained models, trained once by this script and shipped in data/zoo/.

Notebooks must run in seconds, so they load a small checkpoint instead of training. This module
trains it, deterministically, and measures it against the best any model can do:

- Data: the course corpus (`course_lib.datasets`), one document per line. A byte-level BPE
  (`course_lib.tokenization.BPETokenizer`) is trained on the train split; the newline is its own
  token and marks both the start and the end of a document, so the model has to predict where a
  document ends. Training windows of ``context_length + 1`` tokens start at a newline drawn at
  random (seeded) from the tokenised train split.
- Model: `course_lib.models.TinyGPT`, AdamW, linear warm-up then cosine decay of the learning rate.
- Quality: every validation document is scored whole, ``"\\n" + document + "\\n"``, from its first
  token: the model's total negative log-likelihood in nats is compared with the generator's exact
  one (`course_lib.world.DocumentGenerator.log_prob`) on the same documents. Totals per document,
  not per token, because per-token numbers depend on the tokenizer; the model's total is for the
  tokenizer's own (canonical) segmentation, an upper bound on the string's loss. Back-to-back chunks
  that start mid-document would lose each document's beginning as context and inflate the loss.

Determinism: seeded generators, a fixed thread count, deterministic algorithms, CPU. Retraining on
the same machine reproduces the checkpoint bit for bit; on another CPU, float rounding may differ
slightly, and the metrics agree to a fraction of a percent. Training uses one thread: at this size a
second thread saved only about 15% per step with both cores free, and made steps several times
slower when another process kept the second core busy.

The shipped configuration (`ZOO`) is small on purpose: a 2-layer, 64-wide model (137k parameters)
with a high learning rate (1e-2), 2,000 steps of 32 windows of 64 tokens, about a minute of one
core. Measured on this corpus, a 128-wide model given slightly more CPU time (1,000 steps at 5e-3)
ended further from the optimum (ratio 1.015 against 1.013): at this scale more updates beat more
width. `python -m course_lib.zoo --retrain` prints what the shipped configuration reaches.

Files per model ``name`` in ``data/zoo/``: ``name.safetensors`` (weights, tied table stored once),
``name.json`` (model and training configs, metrics, the corpus files' sha256) and
``name_tokenizer.json``. Load them with `load_tiny_gpt` (safetensors: no pickle, no code runs).
``python -m course_lib.zoo --retrain`` rewrites them and prints the metrics.

The recurrent encoder-decoders (`SEQ2SEQ_ZOO`, `train_seq2seq`): two GRU encoder-decoders of
`course_lib.seq2seq`, one without attention and one with Bahdanau attention, the same widths and
the same 4,000 steps of fresh random batches, trained to reverse sequences of 2 to 12 words of the
shipped world (`course_lib.seq2seq.ReversalTask`). Their cards record greedy exact-match accuracy
for every length from 2 to 20, beyond the training lengths too. Files: ``name.safetensors`` and
``name.json`` (no tokenizer: the card lists the task's words). Load them with `load_seq2seq`.

The encoder (`ENCODER_ZOO`, `train_tiny_encoder`): a `course_lib.models.TinyEncoder` trained as
BERT was, masked LM (15% of positions, 80/10/10) plus next sentence prediction, on pairs of
sentence spans of the corpus documents (`course_lib.objectives`). Its own BPE has 560 ids, enough
for every object of the world's facts to be one token (the 512-id BPE of `tiny_gpt` splits ten of
the world's words), so one [MASK] asks for one fact; [CLS], [SEP], [MASK] and [PAD] follow as ids
560-563 (`EncoderTokenizer`). Weights start at BERT's N(0, 0.02) rescaled to the width,
0.02 sqrt(768 / d_model): with a plain 0.02 at width 64, the same 2,000 steps ended at 55%
validation NSP accuracy (95% rescaled) and filled 28% of the facts (71%). Training takes about 80
seconds of one core. The card records validation NSP accuracy, the NSP head's accuracy on SOP
pairs, MLM loss and accuracy, and how many of the world's facts it fills in. Files: ``tiny_encoder.safetensors``,
``tiny_encoder.json``, ``tiny_encoder_tokenizer.json`` (the BPE). Load them with `load_tiny_encoder`.

Left out: GPU training (the point is a laptop), checkpoint averaging, hyper-parameter search (the
chosen configurations are in `ZOO`, `SEQ2SEQ_ZOO` and `ENCODER_ZOO`), and any other model family.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterator, NamedTuple, Sequence

import safetensors.torch
import torch
from tqdm.auto import tqdm

from course_lib.datasets import (
    DATA_DIR,
    SPLITS,
    WORLD_FILE,
    load_corpus,
    load_generator,
    load_world,
    optimal_loss,
    sha256,
)
from course_lib.losses import IGNORE_INDEX, cross_entropy
from course_lib.models import (
    SPECIAL_TOKENS,
    EncoderTokenizer,
    TinyEncoder,
    TinyEncoderConfig,
    TinyGPT,
    TinyGPTConfig,
)
from course_lib.objectives import SegmentPair, make_nsp_pairs, make_sop_pairs, mlm_mask
from course_lib.seq2seq import (
    ReversalTask,
    Seq2Seq,
    Seq2SeqConfig,
    accuracy_by_length,
    fit,
)
from course_lib.tokenization import BPETokenizer
from course_lib.training import optimizer_step
from course_lib.validation import positive_int
from course_lib.world import DocumentGenerator, Fact

ZOO_DIR = DATA_DIR / "zoo"
NEWLINE = "\n"


def _check_training_config(config: TrainConfig | Seq2SeqTrainConfig | EncoderTrainConfig,
                           positive: Sequence[str]) -> None:
    """Validate what every training config has: a name, positive int fields, a learning-rate schedule."""
    if not isinstance(config.name, str) or not config.name.isidentifier():
        raise ValueError(f"name must be an identifier-like string, got {config.name!r}")
    for field in positive:
        positive_int(getattr(config, field), field)
    if (isinstance(config.warmup_steps, bool) or not isinstance(config.warmup_steps, int)
            or not 0 <= config.warmup_steps < config.steps):
        raise ValueError(f"warmup_steps must be in [0, steps={config.steps}), got {config.warmup_steps!r}")
    if not config.learning_rate > 0:
        raise ValueError(f"learning_rate must be > 0, got {config.learning_rate!r}")
    if not 0 <= config.final_lr_ratio <= 1:
        raise ValueError(f"final_lr_ratio must be in [0, 1], got {config.final_lr_ratio!r}")
    if not getattr(config, "weight_decay", 0.0) >= 0:
        raise ValueError(f"weight_decay must be >= 0, got {config.weight_decay!r}")


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a zoo model: tokenizer, model shape, optimisation, seed."""

    name: str = "tiny_gpt"
    tokenizer_vocab_size: int = 512
    context_length: int = 64
    d_model: int = 64
    n_heads: int = 4
    n_layers: int = 2
    d_ff: int | None = None
    batch_size: int = 32
    steps: int = 2000
    learning_rate: float = 1e-2
    warmup_steps: int = 100
    final_lr_ratio: float = 0.0
    weight_decay: float = 0.0
    seed: int = 0
    threads: int = 1

    def __post_init__(self) -> None:
        _check_training_config(self, ("tokenizer_vocab_size", "batch_size", "steps", "threads"))
        self.model_config(self.tokenizer_vocab_size)  # the model's own checks, before any training

    def model_config(self, vocab_size: int) -> TinyGPTConfig:
        """The TinyGPT shape for a tokenizer of ``vocab_size`` ids."""
        return TinyGPTConfig(vocab_size=vocab_size, context_length=self.context_length, d_model=self.d_model,
                             n_heads=self.n_heads, n_layers=self.n_layers, d_ff=self.d_ff)


#: The shipped models, by name.
ZOO: dict[str, TrainConfig] = {"tiny_gpt": TrainConfig()}


# --- data ------------------------------------------------------------------------------------------


def train_tokenizer(documents: Sequence[str], vocab_size: int) -> BPETokenizer:
    """A byte-level BPE (GPT-2 pattern) trained on the documents joined by newlines."""
    tokenizer = BPETokenizer()
    tokenizer.train("".join(d + NEWLINE for d in documents), vocab_size)
    return tokenizer


def encode_document(tokenizer: BPETokenizer, document: str) -> list[int]:
    """A document as the model scores it: ``"\\n" + document + "\\n"``, the newlines as their own tokens."""
    return tokenizer.encode(NEWLINE) + tokenizer.encode(document) + tokenizer.encode(NEWLINE)


def _token_stream(tokenizer: BPETokenizer, documents: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """All documents as one stream "\\n d1 \\n d2 \\n ..." (N,) and the positions of their first newline."""
    newline = tokenizer.encode(NEWLINE)
    ids = newline + [i for d in documents for i in tokenizer.encode(d) + newline]
    stream = torch.tensor(ids, dtype=torch.long)  # (N,)
    starts = (stream == newline[0]).nonzero()[:-1, 0]  # (n_docs,) each document's leading newline
    return stream, starts


def _batches(stream: torch.Tensor, starts: torch.Tensor, batch_size: int, length: int,
             generator: torch.Generator) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Endless (inputs, targets), each (batch_size, length), from windows that start at a document."""
    usable = starts[starts + length + 1 <= len(stream)]  # (n,)
    offsets = torch.arange(length + 1)  # (length + 1,)
    while True:
        chosen = usable[torch.randint(len(usable), (batch_size,), generator=generator)]  # (B,)
        windows = stream[chosen[:, None] + offsets]  # (B, length + 1)
        yield windows[:, :-1], windows[:, 1:]


# --- scoring ---------------------------------------------------------------------------------------


@torch.no_grad()
def document_nats(model: TinyGPT, tokenizer: BPETokenizer, documents: Sequence[str],
                  batch_size: int = 100) -> torch.Tensor:
    """Each document's total negative log-likelihood in nats, scored whole: ``(len(documents),)``.

    The model reads ``"\\n" + document`` and is scored on every following token, the closing
    newline included (`encode_document`).
    """
    if isinstance(documents, str) or not documents:
        raise ValueError(f"documents must be a non-empty sequence of str, got {documents!r:.80}")
    positive_int(batch_size, "batch_size")
    device = next(model.parameters()).device
    totals = []
    for first in range(0, len(documents), batch_size):
        encoded = [encode_document(tokenizer, d) for d in documents[first:first + batch_size]]
        longest = max(len(e) for e in encoded)
        if longest > model.context_length + 1:
            raise ValueError(f"a document has {longest} tokens, more than context_length + 1 = "
                             f"{model.context_length + 1}")
        ids = torch.zeros(len(encoded), longest, dtype=torch.long, device=device)  # (B, L) right-padded
        scored = torch.zeros(len(encoded), longest - 1, dtype=torch.bool, device=device)  # (B, L - 1)
        for row, e in enumerate(encoded):
            ids[row, :len(e)] = torch.tensor(e)
            scored[row, :len(e) - 1] = True
        log_probs = torch.log_softmax(model(ids[:, :-1]).double(), dim=-1)  # (B, L - 1, V)
        nll = -log_probs.gather(-1, ids[:, 1:, None])[..., 0]  # (B, L - 1)
        totals.append((nll * scored).sum(dim=1))  # (B,)
    return torch.cat(totals)


# --- training --------------------------------------------------------------------------------------


@contextlib.contextmanager
def _deterministic(threads: int) -> Iterator[None]:
    """Fixed thread count and deterministic algorithms inside, the previous settings restored after."""
    old_threads, old_mode = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.set_num_threads(old_threads)
        torch.use_deterministic_algorithms(old_mode)


def learning_rate(step: int, config: TrainConfig | Seq2SeqTrainConfig | EncoderTrainConfig) -> float:
    """Linear warm-up to ``learning_rate``, then cosine decay to ``final_lr_ratio * learning_rate``.

    ``step`` counts from 0 and must be below ``config.steps`` (past it the cosine would rise again).
    """
    if isinstance(step, bool) or not isinstance(step, int) or not 0 <= step < config.steps:
        raise ValueError(f"step must be an int in [0, steps={config.steps}), got {step!r}")
    if step < config.warmup_steps:
        return config.learning_rate * (step + 1) / config.warmup_steps
    progress = (step - config.warmup_steps) / max(1, config.steps - 1 - config.warmup_steps)
    floor = config.final_lr_ratio
    return config.learning_rate * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress)))


def _corpus_hashes(data_dir: Path) -> dict[str, str]:
    return {str(spec["file"]): sha256(Path(data_dir) / str(spec["file"])) for spec in SPLITS.values()}


def train_tiny_gpt(config: TrainConfig = ZOO["tiny_gpt"], progress: bool = True,
                   data_dir: Path = DATA_DIR) -> tuple[TinyGPT, BPETokenizer, dict[str, object]]:
    """Train a TinyGPT on the course corpus on the CPU; returns (model, tokenizer, metrics).

    metrics: ``val_nats`` (the model's total over the validation documents), ``generator_nats``
    (the generator's exact total on the same documents), ``ratio`` (their quotient, >= 1 up to
    noise for any model), both per document, ``train_seconds`` (wall clock, tokenizer included) and
    ``train_cpu_seconds`` (CPU time of this process: equal to the wall clock on an idle machine with
    one thread, smaller when other processes share the cores), ``steps``, ``tokens_seen``,
    ``parameters``, ``final_train_loss`` (nats per token, last 50 steps) and ``corpus_sha256``.
    """
    if not isinstance(config, TrainConfig):
        raise ValueError(f"config must be a TrainConfig, got {config!r}")
    train_docs, val_docs = load_corpus("train", data_dir), load_corpus("val", data_dir)
    with _deterministic(config.threads):
        start, start_cpu = time.perf_counter(), time.process_time()
        tokenizer = train_tokenizer(train_docs, config.tokenizer_vocab_size)
        stream, starts = _token_stream(tokenizer, train_docs)
        torch.manual_seed(config.seed)
        model = TinyGPT(config.model_config(tokenizer.vocab_size))
        optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, betas=(0.9, 0.99),
                                      weight_decay=config.weight_decay)
        batches = _batches(stream, starts, config.batch_size, config.context_length,
                           torch.Generator().manual_seed(config.seed))
        losses = []
        bar = tqdm(range(config.steps), desc=f"training {config.name}", disable=not progress, mininterval=1.0)
        for step in bar:
            inputs, targets = next(batches)  # (B, T), (B, T)
            logits = model(inputs)  # (B, T, V)
            loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), targets.flatten())
            optimizer_step(optimizer, loss, learning_rate(step, config))
            losses.append(loss.item())
            if step % 50 == 0:
                bar.set_postfix(loss=f"{loss.item():.3f}")
        train_seconds, train_cpu_seconds = time.perf_counter() - start, time.process_time() - start_cpu
        model.eval()
        val_nats = float(document_nats(model, tokenizer, val_docs).sum())
    generator_nats = optimal_loss(val_docs, load_generator(data_dir)).nats_per_document * len(val_docs)
    metrics = {
        "val_nats": val_nats,
        "generator_nats": generator_nats,
        "ratio": val_nats / generator_nats,
        "val_nats_per_document": val_nats / len(val_docs),
        "generator_nats_per_document": generator_nats / len(val_docs),
        "val_documents": len(val_docs),
        "train_seconds": train_seconds,
        "train_cpu_seconds": train_cpu_seconds,
        "threads": config.threads,
        "steps": config.steps,
        "tokens_seen": config.steps * config.batch_size * config.context_length,
        "parameters": model.num_parameters(),
        "final_train_loss": sum(losses[-50:]) / len(losses[-50:]),
        "corpus_sha256": _corpus_hashes(data_dir),
    }
    return model, tokenizer, metrics


# --- saving and loading ----------------------------------------------------------------------------


def checkpoint_paths(name: str, zoo_dir: Path = ZOO_DIR) -> dict[str, Path]:
    """The three files of zoo model ``name``: weights, card (configs and metrics), tokenizer."""
    return {"weights": Path(zoo_dir) / f"{name}.safetensors", "card": Path(zoo_dir) / f"{name}.json",
            "tokenizer": Path(zoo_dir) / f"{name}_tokenizer.json"}


def _write_checkpoint(model: torch.nn.Module, config: TrainConfig | Seq2SeqTrainConfig | EncoderTrainConfig,
                      metrics: dict[str, object], zoo_dir: Path, tokenizer: BPETokenizer | None = None,
                      **card_extra: object) -> dict[str, Path]:
    """Write the weights (safetensors; a tied table is stored once), the card (model and training
    configs, ``card_extra``, metrics) and, if given, the tokenizer; returns the paths written."""
    paths = checkpoint_paths(config.name, zoo_dir)
    if tokenizer is None:
        del paths["tokenizer"]
    Path(zoo_dir).mkdir(parents=True, exist_ok=True)
    safetensors.torch.save_model(model, str(paths["weights"]))
    if tokenizer is not None:
        tokenizer.save(paths["tokenizer"])
    card = {"model": model.config.to_dict(), "training": asdict(config), **card_extra, "metrics": metrics}
    paths["card"].write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
    return paths


def _read_weights(model: torch.nn.Module, name: str, zoo_dir: Path,
                  device: torch.device | str | None) -> torch.nn.Module:
    """Fill ``model`` from zoo model ``name``'s safetensors file (no pickle); eval mode on ``device``."""
    safetensors.torch.load_model(model, str(checkpoint_paths(name, zoo_dir)["weights"]), device="cpu")
    return model.to(device or "cpu").eval()


def save_tiny_gpt(model: TinyGPT, tokenizer: BPETokenizer, config: TrainConfig, metrics: dict[str, object],
                  zoo_dir: Path = ZOO_DIR) -> dict[str, Path]:
    """Write the checkpoint's three files; returns their paths."""
    return _write_checkpoint(model, config, metrics, zoo_dir, tokenizer=tokenizer)


def load_card(name: str = "tiny_gpt", zoo_dir: Path = ZOO_DIR) -> dict[str, object]:
    """The configs and recorded metrics of zoo model ``name``."""
    path = checkpoint_paths(name, zoo_dir)["card"]
    if not path.exists():
        raise ValueError(f"name must be a model in {zoo_dir} (run `python -m course_lib.zoo --retrain`), got {name!r}")
    return json.loads(path.read_text(encoding="utf-8"))


def load_tiny_gpt(name: str = "tiny_gpt", zoo_dir: Path = ZOO_DIR,
                  device: torch.device | str | None = None) -> tuple[TinyGPT, BPETokenizer]:
    """Load zoo model ``name`` (safetensors: plain tensors, no pickle) in eval mode, with its tokenizer."""
    card = load_card(name, zoo_dir)
    model = _read_weights(TinyGPT(TinyGPTConfig(**card["model"])), name, zoo_dir, device)
    return model, BPETokenizer.load(checkpoint_paths(name, zoo_dir)["tokenizer"])


# --- the recurrent encoder-decoders ----------------------------------------------------------------


@dataclass(frozen=True)
class Seq2SeqTrainConfig:
    """A GRU encoder-decoder trained to reverse 2..12 world words; its card scores lengths 2..20."""

    name: str = "seq2seq_gru"
    attention: bool = False
    d_embed: int = 32
    d_hidden: int = 64
    min_length: int = 2
    max_length: int = 12
    eval_max_length: int = 20
    eval_sequences: int = 200
    batch_size: int = 64
    steps: int = 4000
    learning_rate: float = 3e-3
    warmup_steps: int = 100
    final_lr_ratio: float = 0.0
    grad_clip: float = 1.0
    seed: int = 0
    eval_seed: int = 1000
    threads: int = 1

    def __post_init__(self) -> None:
        _check_training_config(self, ("d_embed", "d_hidden", "min_length", "eval_sequences", "batch_size",
                                      "steps", "threads"))
        if not self.min_length <= self.max_length <= self.eval_max_length:
            raise ValueError(f"lengths must satisfy min_length <= max_length <= eval_max_length, got "
                             f"{self.min_length}, {self.max_length}, {self.eval_max_length}")

    def model_config(self, vocab_size: int) -> Seq2SeqConfig:
        """The model shape for a task of ``vocab_size`` ids."""
        return Seq2SeqConfig(vocab_size, self.d_embed, self.d_hidden, self.attention)


#: The shipped encoder-decoders, by name: the same model and training, with and without attention.
SEQ2SEQ_ZOO: dict[str, Seq2SeqTrainConfig] = {
    "seq2seq_gru": Seq2SeqTrainConfig(),
    "seq2seq_gru_attention": Seq2SeqTrainConfig(name="seq2seq_gru_attention", attention=True),
}


def train_seq2seq(config: Seq2SeqTrainConfig = SEQ2SEQ_ZOO["seq2seq_gru"], progress: bool = True,
                  data_dir: Path = DATA_DIR) -> tuple[Seq2Seq, ReversalTask, dict[str, object]]:
    """Train a GRU encoder-decoder on the reversal task of the shipped world; returns (model, task, metrics).

    metrics: ``accuracy_by_length`` (source length, as a string, -> greedy exact-match accuracy on
    ``eval_sequences`` seeded sources), ``final_train_loss`` (nats per target token, last 100
    steps), ``parameters``, ``steps``, ``sequences_seen``, ``train_seconds``, ``train_cpu_seconds``
    (see `train_tiny_gpt`), ``threads`` and ``world_sha256``.
    """
    if not isinstance(config, Seq2SeqTrainConfig):
        raise ValueError(f"config must be a Seq2SeqTrainConfig, got {config!r}")
    task = ReversalTask.from_world(load_world(data_dir))
    with _deterministic(config.threads):
        start, start_cpu = time.perf_counter(), time.process_time()
        torch.manual_seed(config.seed)
        model = Seq2Seq(config.model_config(task.vocab_size))
        losses = fit(model, task, config.steps, config.batch_size, config.min_length, config.max_length,
                     lambda step: learning_rate(step, config), torch.Generator().manual_seed(config.seed),
                     config.grad_clip, progress)
        train_seconds, train_cpu_seconds = time.perf_counter() - start, time.process_time() - start_cpu
        accuracy = accuracy_by_length(model, task, range(config.min_length, config.eval_max_length + 1),
                                      config.eval_sequences, config.eval_seed)
    metrics = {
        "accuracy_by_length": {str(length): value for length, value in accuracy.items()},
        "final_train_loss": sum(losses[-100:]) / len(losses[-100:]),
        "parameters": model.num_parameters(),
        "steps": config.steps,
        "sequences_seen": config.steps * config.batch_size,
        "train_seconds": train_seconds,
        "train_cpu_seconds": train_cpu_seconds,
        "threads": config.threads,
        "world_sha256": sha256(Path(data_dir) / WORLD_FILE),
    }
    return model, task, metrics


def save_seq2seq(model: Seq2Seq, task: ReversalTask, config: Seq2SeqTrainConfig, metrics: dict[str, object],
                 zoo_dir: Path = ZOO_DIR) -> dict[str, Path]:
    """Write the weights and the card (configs, the task's words, metrics); returns their paths."""
    return _write_checkpoint(model, config, metrics, zoo_dir, task={"words": list(task.words)})


def load_seq2seq(name: str = "seq2seq_gru_attention", zoo_dir: Path = ZOO_DIR,
                 device: torch.device | str | None = None) -> tuple[Seq2Seq, ReversalTask]:
    """Load encoder-decoder ``name`` (safetensors: no pickle) in eval mode, with its task."""
    card = load_card(name, zoo_dir)
    if "task" not in card:
        raise ValueError(f"name must be a seq2seq model in {zoo_dir} (its card lists the task), got {name!r}")
    model = _read_weights(Seq2Seq(Seq2SeqConfig(**card["model"])), name, zoo_dir, device)
    return model, ReversalTask(tuple(card["task"]["words"]))


# --- the tiny encoder: BERT's masked LM and a sentence-pair objective ------------------------------

PAIR_OBJECTIVES = ("nsp", "sop")


@dataclass(frozen=True)
class EncoderTrainConfig:
    """A TinyEncoder trained with BERT's masked LM plus NSP (``pair_objective="nsp"``) or ALBERT's SOP."""

    name: str = "tiny_encoder"
    tokenizer_vocab_size: int = 560
    context_length: int = 64
    d_model: int = 64
    n_heads: int = 4
    n_layers: int = 2
    d_ff: int | None = None
    pair_objective: str = "nsp"
    mask_prob: float = 0.15
    max_sentences: int = 5
    batch_size: int = 64
    steps: int = 2000
    learning_rate: float = 2e-3
    warmup_steps: int = 100
    final_lr_ratio: float = 0.0
    weight_decay: float = 0.0
    seed: int = 0
    eval_seed: int = 1000
    threads: int = 1

    def __post_init__(self) -> None:
        _check_training_config(self, ("tokenizer_vocab_size", "context_length", "batch_size", "steps", "threads"))
        if self.pair_objective not in PAIR_OBJECTIVES:
            raise ValueError(f"pair_objective must be one of {PAIR_OBJECTIVES}, got {self.pair_objective!r}")
        if isinstance(self.mask_prob, bool) or not isinstance(self.mask_prob, float) or not 0 < self.mask_prob < 1:
            raise ValueError(f"mask_prob must be a float in (0, 1), got {self.mask_prob!r}")
        if isinstance(self.max_sentences, bool) or not isinstance(self.max_sentences, int) or self.max_sentences < 2:
            raise ValueError(f"max_sentences must be an int >= 2, got {self.max_sentences!r}")
        self.model_config(self.tokenizer_vocab_size + len(SPECIAL_TOKENS))  # the model's own checks

    def model_config(self, vocab_size: int) -> TinyEncoderConfig:
        """The TinyEncoder shape for an `EncoderTokenizer` of ``vocab_size`` ids (the last one, [PAD], masked)."""
        return TinyEncoderConfig(vocab_size=vocab_size, context_length=self.context_length, d_model=self.d_model,
                                 n_heads=self.n_heads, n_layers=self.n_layers, d_ff=self.d_ff,
                                 pad_id=vocab_size - 1)


#: The shipped encoder, by name: MLM plus NSP, as BERT was trained.
ENCODER_ZOO: dict[str, EncoderTrainConfig] = {"tiny_encoder": EncoderTrainConfig()}


class PairBatch(NamedTuple):
    """Packed sentence pairs: ``[CLS] A [SEP] B [SEP]`` right-padded with [PAD], and their labels."""

    ids: torch.Tensor  # (N, L)
    segment_ids: torch.Tensor  # (N, L), 0 for [CLS] A [SEP], 1 for B [SEP] (and padding)
    labels: torch.Tensor  # (N,) NSP: 0 is next, 1 random; SOP: 0 in order, 1 swapped


class FactFill(NamedTuple):
    """The encoder's fill of a fact's masked object in a one-sentence probe such as "Rozi lives in [MASK]."."""

    fact: Fact
    probe: str
    candidates: list[str]  # the k most probable tokens, best first, without their leading space
    probabilities: list[float]
    rank: int  # 1 + the number of ids the model scores above the true object


def split_sentences(document: str) -> list[str]:
    """A corpus document's sentences: it ends with "." and its sentences are joined by single spaces."""
    if not isinstance(document, str) or not document.endswith("."):
        raise ValueError(f"document must be a str that ends with '.', got {document!r:.80}")
    return [piece + "." for piece in document[:-1].split(". ")]


def sentence_ids(tokenizer: EncoderTokenizer, documents: Sequence[str]) -> list[list[tuple[int, ...]]]:
    """Every document as a list of sentences, each sentence as its token ids (`EncoderTokenizer.encode`)."""
    return [[tuple(tokenizer.encode(s)) for s in split_sentences(d)] for d in documents]


def pack_pairs(tokenizer: EncoderTokenizer, pairs: Sequence[SegmentPair], context_length: int) -> PairBatch:
    """Pack NSP or SOP pairs (`course_lib.objectives`) into a right-padded batch.

    A pair's sentences may be strings (encoded here) or token ids (`sentence_ids`); encoding a
    segment's sentences one by one gives the ids of the segment's text, since each keeps its space.
    """
    if not pairs:
        raise ValueError("pairs must not be empty")
    packed = [tokenizer.pack(_segment(tokenizer, p.first), _segment(tokenizer, p.second)) for p in pairs]
    longest = max(len(ids) for ids, _ in packed)
    if longest > context_length:
        raise ValueError(f"a pair has {longest} tokens, more than context_length {context_length}")
    ids = torch.full((len(packed), longest), tokenizer.pad_id, dtype=torch.long)  # (N, L)
    segments = torch.zeros(len(packed), longest, dtype=torch.long)  # (N, L)
    for row, (pair_ids, pair_segments) in enumerate(packed):
        ids[row, :len(pair_ids)] = torch.tensor(pair_ids)
        segments[row, :len(pair_segments)] = torch.tensor(pair_segments)
    return PairBatch(ids, segments, torch.tensor([p.label for p in pairs]))  # labels (N,)


def _segment(tokenizer: EncoderTokenizer, sentences: Sequence[str | Sequence[int]]) -> list[int]:
    return [i for s in sentences for i in (tokenizer.encode(s) if isinstance(s, str) else s)]


def make_pair_batch(tokenizer: EncoderTokenizer, documents: Sequence[Sequence[tuple[int, ...]]], objective: str,
                    generator: torch.Generator, max_sentences: int, context_length: int) -> PairBatch:
    """One NSP or SOP pair per chunk of every document (`sentence_ids` form), packed."""
    if objective not in PAIR_OBJECTIVES:
        raise ValueError(f"objective must be one of {PAIR_OBJECTIVES}, got {objective!r}")
    make = make_nsp_pairs if objective == "nsp" else make_sop_pairs
    return pack_pairs(tokenizer, make(documents, generator, max_sentences), context_length)


def mask_for_mlm(tokenizer: EncoderTokenizer, ids: torch.Tensor, p: float = 0.15,
                 generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT's 80/10/10 masking (`course_lib.objectives.mlm_mask`) of packed ids; [CLS], [SEP], [PAD] never selected."""
    specials = (tokenizer.cls_id, tokenizer.sep_id, tokenizer.pad_id)
    return mlm_mask(ids, tokenizer.vocab_size, tokenizer.mask_id, specials, p, generator)


def pretraining_losses(model: TinyEncoder, inputs: torch.Tensor, segment_ids: torch.Tensor,
                       mlm_labels: torch.Tensor, pair_labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(MLM loss, pair loss), both mean cross-entropies in nats; BERT minimises their sum.

    The MLM head runs only at the selected positions (labels != -100): the other positions carry
    no loss, so their logits need not be computed (BERT's code gathers the same positions).
    """
    h = model.encode(inputs, segment_ids)  # (B, T, d)
    selected = mlm_labels != IGNORE_INDEX  # (B, T)
    mlm_loss = cross_entropy(model.mlm_logits(h[selected]), mlm_labels[selected])  # logits (n_selected, V)
    return mlm_loss, cross_entropy(model.pair_logits(h), pair_labels)


@torch.no_grad()
def evaluate_encoder(model: TinyEncoder, tokenizer: EncoderTokenizer, documents: Sequence[str], seed: int = 1000,
                     mask_prob: float = 0.15, max_sentences: int = 5) -> dict[str, float]:
    """Validation metrics on one NSP pair and one SOP pair per document, drawn with ``seed``.

    ``nsp_accuracy`` and ``sop_accuracy``: the pair head's argmax against the labels (for a model
    trained on NSP, its "is next" read as "in order"); ``mlm_loss`` (nats) and ``mlm_accuracy``
    (top-1) at the positions BERT's masking selects in the NSP pairs, ``mlm_positions`` of them.
    """
    docs, device = sentence_ids(tokenizer, documents), next(model.parameters()).device
    generator = torch.Generator().manual_seed(seed)
    metrics: dict[str, float] = {}
    for objective in PAIR_OBJECTIVES:
        batch = make_pair_batch(tokenizer, docs, objective, generator, max_sentences, model.context_length)
        segment_ids = batch.segment_ids.to(device)  # (N, L)
        predicted = model(batch.ids.to(device), segment_ids).pair_logits.argmax(dim=-1).cpu()  # (N,)
        metrics[f"{objective}_accuracy"] = (predicted == batch.labels).double().mean().item()
        if objective == "nsp":
            inputs, labels = mask_for_mlm(tokenizer, batch.ids, mask_prob, generator)  # drawn on the CPU
            logits = model(inputs.to(device), segment_ids).mlm_logits.double().cpu()  # (N, L, V)
            selected = labels != IGNORE_INDEX  # (N, L)
            metrics["mlm_loss"] = cross_entropy(logits, labels).item()
            metrics["mlm_accuracy"] = (logits.argmax(-1)[selected] == labels[selected]).double().mean().item()
            metrics["mlm_positions"] = int(selected.sum())
    return metrics


@torch.no_grad()
def fact_fills(model: TinyEncoder, tokenizer: EncoderTokenizer, facts: Sequence[Fact],
               generator: DocumentGenerator, k: int = 5) -> list[FactFill]:
    """The encoder's top-k fills of each fact's object, masked in the sentence `fact_prompt` writes.

    Each probe is one segment, ``[CLS] Rozi lives in [MASK]. [SEP]``: the person's name is the
    only clue, so a correct fill is a fact the model has memorised. (A job's article, "a" or "an",
    stays in the probe, as in the corpus.) Every object must be one token of the tokenizer.
    """
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= tokenizer.vocab_size:
        raise ValueError(f"k must be an int in [1, {tokenizer.vocab_size}], got {k!r}")
    if not facts:
        raise ValueError("facts must not be empty")
    rows, targets = [], []
    for fact in facts:
        prompt, answer = generator.fact_prompt(fact)
        target = tokenizer.encode(fact.object)
        if len(target) != 1:
            raise ValueError(f"the object of {fact} must be one token, got {len(target)}")
        ids = tokenizer.encode(prompt + answer)
        position = len(ids) - 1 - ids[::-1].index(target[0])  # the object's token, the last one it appears at
        ids[position] = tokenizer.mask_id
        rows.append((tokenizer.pack(ids)[0], position + 1))  # + 1: [CLS] comes first
        targets.append(target[0])
    batch = torch.full((len(rows), max(len(r) for r, _ in rows)), tokenizer.pad_id, dtype=torch.long)  # (N, L)
    for i, (row, _) in enumerate(rows):
        batch[i, :len(row)] = torch.tensor(row)
    logits = model(batch.to(next(model.parameters()).device)).mlm_logits.cpu()  # (N, L, V)
    at_mask = logits[torch.arange(len(rows)), torch.tensor([p for _, p in rows])].double()  # (N, V)
    probs = torch.softmax(at_mask, dim=-1)  # (N, V)
    top = probs.topk(k, dim=-1)
    target_probs = probs[torch.arange(len(rows)), torch.tensor(targets)]  # (N,)
    ranks = 1 + (probs > target_probs[:, None]).sum(dim=-1)  # (N,)
    return [FactFill(fact, tokenizer.decode(row[1:-1]), [s.strip() for s in tokenizer.token_strings(ids)],
                     values.tolist(), int(rank))
            for fact, (row, _), ids, values, rank in zip(facts, rows, top.indices, top.values, ranks)]


def fact_fill_accuracy(fills: Sequence[FactFill], k: int = 1) -> float:
    """Fraction of the fills whose true object is among the k most probable tokens."""
    if not fills:
        raise ValueError("fills must not be empty")
    return sum(f.rank <= k for f in fills) / len(fills)


def train_tiny_encoder(config: EncoderTrainConfig = ENCODER_ZOO["tiny_encoder"], progress: bool = True,
                       data_dir: Path = DATA_DIR) -> tuple[TinyEncoder, EncoderTokenizer, dict[str, object]]:
    """Train a TinyEncoder with MLM plus the pair objective on the course corpus, on the CPU.

    Every epoch draws fresh pairs (one per document, `course_lib.objectives`), shuffles them and
    cuts batches, each trimmed to its longest pair; each batch is masked afresh (dynamic masking,
    as RoBERTa; BERT masked its data once, in 10 copies). The loss is the sum of the MLM and pair
    losses (`pretraining_losses`). Returns (model, tokenizer, metrics): `evaluate_encoder` on the
    validation documents, ``fact_accuracy`` and ``fact_top5_accuracy`` (`fact_fills` over the
    world's facts), ``final_mlm_loss`` and ``final_pair_loss`` (training, last 100 steps),
    ``parameters``, ``steps``, ``sequences_seen``, ``train_seconds`` and ``train_cpu_seconds`` (see
    `train_tiny_gpt`), ``threads``, and the sha256 of the corpus and world files.
    """
    if not isinstance(config, EncoderTrainConfig):
        raise ValueError(f"config must be an EncoderTrainConfig, got {config!r}")
    train_docs, val_docs = load_corpus("train", data_dir), load_corpus("val", data_dir)
    with _deterministic(config.threads):
        start, start_cpu = time.perf_counter(), time.process_time()
        tokenizer = EncoderTokenizer(train_tokenizer(train_docs, config.tokenizer_vocab_size))
        documents = sentence_ids(tokenizer, train_docs)
        torch.manual_seed(config.seed)
        model = TinyEncoder(config.model_config(tokenizer.vocab_size))
        optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, betas=(0.9, 0.99),
                                      weight_decay=config.weight_decay)
        generator = torch.Generator().manual_seed(config.seed)
        losses: list[tuple[float, float]] = []
        order, used = torch.zeros(0, dtype=torch.long), 0
        bar = tqdm(range(config.steps), desc=f"training {config.name}", disable=not progress, mininterval=1.0)
        for step in bar:
            if used + config.batch_size > len(order):  # a new epoch: fresh pairs, fresh order
                data = make_pair_batch(tokenizer, documents, config.pair_objective, generator,
                                       config.max_sentences, config.context_length)
                order, used = torch.randperm(len(data.labels), generator=generator), 0
            rows = order[used:used + config.batch_size]  # (B,)
            used += config.batch_size
            length = int((data.ids[rows] != tokenizer.pad_id).sum(dim=1).max())
            ids, segments = data.ids[rows, :length], data.segment_ids[rows, :length]  # (B, T)
            inputs, mlm_labels = mask_for_mlm(tokenizer, ids, config.mask_prob, generator)  # (B, T) each
            mlm_loss, pair_loss = pretraining_losses(model, inputs, segments, mlm_labels, data.labels[rows])
            optimizer_step(optimizer, mlm_loss + pair_loss, learning_rate(step, config))
            losses.append((mlm_loss.item(), pair_loss.item()))
            if step % 50 == 0:
                bar.set_postfix(mlm=f"{mlm_loss.item():.3f}", pair=f"{pair_loss.item():.3f}")
        train_seconds, train_cpu_seconds = time.perf_counter() - start, time.process_time() - start_cpu
        model.eval()
        metrics: dict[str, object] = evaluate_encoder(model, tokenizer, val_docs, config.eval_seed, config.mask_prob,
                                                      config.max_sentences)
        generator_of_documents = load_generator(data_dir)
        fills = fact_fills(model, tokenizer, generator_of_documents.world.facts(), generator_of_documents)
    last = losses[-100:]
    metrics |= {
        "val_documents": len(val_docs),
        "fact_accuracy": fact_fill_accuracy(fills),
        "fact_top5_accuracy": fact_fill_accuracy(fills, k=5),
        "facts": len(fills),
        "final_mlm_loss": sum(m for m, _ in last) / len(last),
        "final_pair_loss": sum(p for _, p in last) / len(last),
        "parameters": model.num_parameters(),
        "steps": config.steps,
        "sequences_seen": config.steps * config.batch_size,
        "train_seconds": train_seconds,
        "train_cpu_seconds": train_cpu_seconds,
        "threads": config.threads,
        "corpus_sha256": _corpus_hashes(data_dir) | {WORLD_FILE: sha256(Path(data_dir) / WORLD_FILE)},
    }
    return model, tokenizer, metrics


def save_tiny_encoder(model: TinyEncoder, tokenizer: EncoderTokenizer, config: EncoderTrainConfig,
                      metrics: dict[str, object], zoo_dir: Path = ZOO_DIR) -> dict[str, Path]:
    """Write the weights, the card (configs, special-token ids, metrics) and the BPE; returns their paths."""
    special = dict(zip(SPECIAL_TOKENS, tokenizer.special_ids))
    return _write_checkpoint(model, config, metrics, zoo_dir, tokenizer=tokenizer.bpe, special_tokens=special)


def load_tiny_encoder(name: str = "tiny_encoder", zoo_dir: Path = ZOO_DIR,
                      device: torch.device | str | None = None) -> tuple[TinyEncoder, EncoderTokenizer]:
    """Load encoder ``name`` (safetensors: no pickle) in eval mode, with its tokenizer."""
    card = load_card(name, zoo_dir)
    if "special_tokens" not in card:
        raise ValueError(f"name must be a tiny encoder in {zoo_dir} (its card lists special tokens), got {name!r}")
    paths = checkpoint_paths(name, zoo_dir)
    tokenizer = EncoderTokenizer(BPETokenizer.load(paths["tokenizer"]))
    if card["special_tokens"] != dict(zip(SPECIAL_TOKENS, tokenizer.special_ids)):
        raise ValueError(f"the card of {name!r} lists special ids {card['special_tokens']}, which its tokenizer "
                         f"does not give")
    return _read_weights(TinyEncoder(TinyEncoderConfig(**card["model"])), name, zoo_dir, device), tokenizer


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m course_lib.zoo --retrain [--name NAME]``: retrain and rewrite checkpoints."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--retrain", action="store_true", help="train and overwrite the checkpoint(s)")
    names = sorted(ZOO) + sorted(SEQ2SEQ_ZOO) + sorted(ENCODER_ZOO)
    parser.add_argument("--name", choices=names, help="only this model (default: all)")
    args = parser.parse_args(argv)
    if not args.retrain:
        parser.error("nothing to do: pass --retrain")
    for name in [args.name] if args.name else names:
        if name in SEQ2SEQ_ZOO:
            model, task, metrics = train_seq2seq(SEQ2SEQ_ZOO[name])
            paths = save_seq2seq(model, task, SEQ2SEQ_ZOO[name], metrics)
        elif name in ENCODER_ZOO:
            model, tokenizer, metrics = train_tiny_encoder(ENCODER_ZOO[name])
            paths = save_tiny_encoder(model, tokenizer, ENCODER_ZOO[name], metrics)
        else:
            model, tokenizer, metrics = train_tiny_gpt(ZOO[name])
            paths = save_tiny_gpt(model, tokenizer, ZOO[name], metrics)
        print(json.dumps(metrics, indent=2))
        for path in paths.values():
            print(f"{path.relative_to(DATA_DIR.parent)}  {path.stat().st_size} bytes  sha256 {sha256(path)}")


if __name__ == "__main__":
    main()
