"""The model zoo: the course's tiny trained models, trained once by this script and shipped in data/zoo/.

Notebooks must run in seconds, so they load a small checkpoint instead of training. This module
holds the shipped configurations (`ZOO`, `SEQ2SEQ_ZOO`, `ENCODER_ZOO`), the recipes that train them
deterministically (`train_tiny_gpt`, `train_seq2seq`, `train_tiny_encoder`, each on
`course_lib.training.train_loop`), their `save_*` and `load_*` functions and the command line. The
files are written and read by `course_lib.checkpoints`, the models are scored by
`course_lib.evaluation`, and the encoder's data comes from `course_lib.objectives`.

The tiny GPT (`ZOO`, `train_tiny_gpt`):

- Data: the course corpus (`course_lib.datasets`), one document per line. A byte-level BPE
  (`course_lib.tokenization.BPETokenizer`) is trained on the train split; the newline is its own
  token and marks both the start and the end of a document, so the model has to predict where a
  document ends. Training windows of ``context_length + 1`` tokens start at a newline drawn at
  random (seeded) from the tokenised train split.
- Model: `course_lib.models.TinyGPT`, AdamW, linear warm-up then cosine decay of the learning rate
  (`course_lib.training.learning_rate`).
- Quality: every validation document is scored whole (`course_lib.evaluation.document_nats`), and
  the model's total negative log-likelihood in nats is compared with the generator's exact one on
  the same documents: their quotient, the card's ``ratio``, is >= 1 for any model.

Determinism: seeded generators, a fixed thread count, deterministic algorithms, CPU
(`course_lib.training.deterministic`). Retraining on the same machine reproduces the checkpoint bit
for bit; on another CPU, float rounding may differ slightly, and the metrics agree to a fraction of
a percent. Training uses one thread: at this size a second thread saved only about 15% per step
with both cores free, and made steps several times slower when another process kept the second
core busy.

The shipped configuration (`ZOO`) is small on purpose: a 2-layer, 64-wide model (137k parameters)
with a high learning rate (1e-2), 2,000 steps of 32 windows of 64 tokens, about a minute of one
core. Measured on this corpus, a 128-wide model given slightly more CPU time (1,000 steps at 5e-3)
ended further from the optimum (ratio 1.015 against 1.013): at this scale more updates beat more
width.

Files per model ``name`` in ``data/zoo/`` (`course_lib.checkpoints.checkpoint_dir`):
``name.safetensors`` (weights, tied table stored once), ``name.json`` (model and training configs,
metrics, the corpus files' sha256) and ``name_tokenizer.json``. Load them with `load_tiny_gpt`
(safetensors: no pickle, no code runs). ``python -m course_lib.zoo --retrain`` rewrites them and
prints the metrics (``--zoo-dir DIR`` writes them elsewhere).

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
560-563 (`course_lib.tokenization.EncoderTokenizer`). Weights start at BERT's N(0, 0.02) rescaled
to the width, 0.02 sqrt(768 / d_model): with a plain 0.02 at width 64, the same 2,000 steps ended
at 55% validation NSP accuracy (95% rescaled) and filled 28% of the facts (71%). Training takes
about 80 seconds of one core. The card records validation NSP accuracy, the NSP head's accuracy on
SOP pairs, MLM loss and accuracy, and how many of the world's facts it fills in
(`course_lib.evaluation`). Files: ``tiny_encoder.safetensors``, ``tiny_encoder.json``,
``tiny_encoder_tokenizer.json`` (the BPE). Load them with `load_tiny_encoder`.

Left out: GPU training (the point is a laptop), checkpoint averaging, hyper-parameter search (the
chosen configurations are in `ZOO`, `SEQ2SEQ_ZOO` and `ENCODER_ZOO`), and any other model family.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import torch

from course_lib.checkpoints import (
    checkpoint_paths,
    load_card,
    read_weights,
    write_checkpoint,
)
from course_lib.datasets import (
    SPLITS,
    WORLD_FILE,
    data_file,
    load_corpus,
    load_generator,
    load_world,
    optimal_loss,
    sha256,
)
from course_lib.evaluation import (
    NEWLINE,
    document_nats,
    evaluate_encoder,
    fact_fill_accuracy,
    fact_fills,
)
from course_lib.models import TinyEncoder, TinyEncoderConfig, TinyGPT, TinyGPTConfig
from course_lib.objectives import (
    PAIR_OBJECTIVES,
    make_pair_batch,
    mask_for_mlm,
    pretraining_losses,
    sentence_ids,
)
from course_lib.seq2seq import (
    ReversalTask,
    Seq2Seq,
    Seq2SeqConfig,
    accuracy_by_length,
    fit,
)
from course_lib.tokenization import SPECIAL_TOKENS, BPETokenizer, EncoderTokenizer
from course_lib.training import TrainingConfig, deterministic, learning_rate, train_loop
from course_lib.validation import positive_int

__all__ = ["ENCODER_ZOO", "SEQ2SEQ_ZOO", "ZOO", "EncoderTrainConfig", "Seq2SeqTrainConfig", "TrainConfig",
           "load_seq2seq", "load_tiny_encoder", "load_tiny_gpt", "main", "save_seq2seq", "save_tiny_encoder",
           "save_tiny_gpt", "train_seq2seq", "train_tiny_encoder", "train_tiny_gpt", "train_tokenizer"]


# --- the tiny GPT ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrainConfig(TrainingConfig):
    """Everything that determines a zoo model: tokenizer, model shape, optimisation, seed."""

    name: str = "tiny_gpt"
    tokenizer_vocab_size: int = 512
    context_length: int = 64
    d_model: int = 64
    n_heads: int = 4
    n_layers: int = 2
    d_ff: int | None = None
    steps: int = 2000
    learning_rate: float = 1e-2
    weight_decay: float = 0.0

    FIELD_ORDER = ("name", "tokenizer_vocab_size", "context_length", "d_model", "n_heads", "n_layers", "d_ff",
                   "batch_size", "steps", "learning_rate", "warmup_steps", "final_lr_ratio", "weight_decay",
                   "seed", "threads")

    def __post_init__(self) -> None:
        super().__post_init__()
        positive_int(self.tokenizer_vocab_size, "tokenizer_vocab_size")
        if not self.weight_decay >= 0:
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay!r}")
        self.model_config(self.tokenizer_vocab_size)  # the model's own checks, before any training

    def model_config(self, vocab_size: int) -> TinyGPTConfig:
        """The TinyGPT shape for a tokenizer of ``vocab_size`` ids."""
        return TinyGPTConfig(vocab_size=vocab_size, context_length=self.context_length, d_model=self.d_model,
                             n_heads=self.n_heads, n_layers=self.n_layers, d_ff=self.d_ff)


#: The shipped models, by name.
ZOO: dict[str, TrainConfig] = {"tiny_gpt": TrainConfig()}


def train_tokenizer(documents: Sequence[str], vocab_size: int) -> BPETokenizer:
    """A byte-level BPE (GPT-2 pattern) trained on the documents joined by newlines."""
    tokenizer = BPETokenizer()
    tokenizer.train("".join(d + NEWLINE for d in documents), vocab_size)
    return tokenizer


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


def _adamw(model: torch.nn.Module, config: TrainConfig | EncoderTrainConfig) -> torch.optim.AdamW:
    """The optimizer of the tiny GPT and the tiny encoder (its rate is set at every step by the schedule)."""
    return torch.optim.AdamW(model.parameters(), lr=config.learning_rate, betas=(0.9, 0.99),
                             weight_decay=config.weight_decay)


def _corpus_hashes(data_dir: Path | None) -> dict[str, str]:
    return {str(spec["file"]): sha256(data_file(str(spec["file"]), data_dir)) for spec in SPLITS.values()}


def train_tiny_gpt(config: TrainConfig = ZOO["tiny_gpt"], progress: bool = True,
                   data_dir: Path | None = None) -> tuple[TinyGPT, BPETokenizer, dict[str, object]]:
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
    with deterministic(config.threads):
        start, start_cpu = time.perf_counter(), time.process_time()
        tokenizer = train_tokenizer(train_docs, config.tokenizer_vocab_size)
        stream, starts = _token_stream(tokenizer, train_docs)
        torch.manual_seed(config.seed)
        model = TinyGPT(config.model_config(tokenizer.vocab_size))
        batches = _batches(stream, starts, config.batch_size, config.context_length,
                           torch.Generator().manual_seed(config.seed))

        def step_losses(step: int) -> dict[str, torch.Tensor]:
            inputs, targets = next(batches)  # (B, T), (B, T)
            logits = model(inputs)  # (B, T, V)
            return {"loss": torch.nn.functional.cross_entropy(logits.flatten(0, 1), targets.flatten())}

        losses = train_loop(model, _adamw(model, config), step_losses, config.steps,
                            lambda step: learning_rate(step, config), progress=progress,
                            desc=f"training {config.name}")["loss"]
        train_seconds, train_cpu_seconds = time.perf_counter() - start, time.process_time() - start_cpu
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


def save_tiny_gpt(model: TinyGPT, tokenizer: BPETokenizer, config: TrainConfig, metrics: dict[str, object],
                  zoo_dir: Path | None = None) -> dict[str, Path]:
    """Write the checkpoint's three files (into ``zoo_dir``, default data/zoo/); returns their paths."""
    return write_checkpoint(model, config, metrics, zoo_dir, tokenizer=tokenizer)


def load_tiny_gpt(name: str = "tiny_gpt", zoo_dir: Path | None = None,
                  device: torch.device | str | None = None) -> tuple[TinyGPT, BPETokenizer]:
    """Load zoo model ``name`` (safetensors: plain tensors, no pickle) in eval mode, with its tokenizer."""
    card = load_card(name, zoo_dir)
    model = read_weights(TinyGPT(TinyGPTConfig(**card["model"])), name, zoo_dir, device)
    return model, BPETokenizer.load(checkpoint_paths(name, zoo_dir)["tokenizer"])


# --- the recurrent encoder-decoders ----------------------------------------------------------------


@dataclass(frozen=True)
class Seq2SeqTrainConfig(TrainingConfig):
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
    grad_clip: float = 1.0
    eval_seed: int = 1000

    FIELD_ORDER = ("name", "attention", "d_embed", "d_hidden", "min_length", "max_length", "eval_max_length",
                   "eval_sequences", "batch_size", "steps", "learning_rate", "warmup_steps", "final_lr_ratio",
                   "grad_clip", "seed", "eval_seed", "threads")

    def __post_init__(self) -> None:
        super().__post_init__()
        for field in ("d_embed", "d_hidden", "min_length", "eval_sequences"):
            positive_int(getattr(self, field), field)
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
                  data_dir: Path | None = None) -> tuple[Seq2Seq, ReversalTask, dict[str, object]]:
    """Train a GRU encoder-decoder on the reversal task of the shipped world; returns (model, task, metrics).

    metrics: ``accuracy_by_length`` (source length, as a string, -> greedy exact-match accuracy on
    ``eval_sequences`` seeded sources), ``final_train_loss`` (nats per target token, last 100
    steps), ``parameters``, ``steps``, ``sequences_seen``, ``train_seconds``, ``train_cpu_seconds``
    (see `train_tiny_gpt`), ``threads`` and ``world_sha256``.
    """
    if not isinstance(config, Seq2SeqTrainConfig):
        raise ValueError(f"config must be a Seq2SeqTrainConfig, got {config!r}")
    task = ReversalTask.from_world(load_world(data_dir))
    with deterministic(config.threads):
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
        "world_sha256": sha256(data_file(WORLD_FILE, data_dir)),
    }
    return model, task, metrics


def save_seq2seq(model: Seq2Seq, task: ReversalTask, config: Seq2SeqTrainConfig, metrics: dict[str, object],
                 zoo_dir: Path | None = None) -> dict[str, Path]:
    """Write the weights and the card (configs, the task's words, metrics); returns their paths."""
    return write_checkpoint(model, config, metrics, zoo_dir, task={"words": list(task.words)})


def load_seq2seq(name: str = "seq2seq_gru_attention", zoo_dir: Path | None = None,
                 device: torch.device | str | None = None) -> tuple[Seq2Seq, ReversalTask]:
    """Load encoder-decoder ``name`` (safetensors: no pickle) in eval mode, with its task."""
    card = load_card(name, zoo_dir)
    if "task" not in card:
        raise ValueError(f"name must be a seq2seq model in {checkpoint_paths(name, zoo_dir)['card'].parent} "
                         f"(its card lists the task), got {name!r}")
    model = read_weights(Seq2Seq(Seq2SeqConfig(**card["model"])), name, zoo_dir, device)
    return model, ReversalTask(tuple(card["task"]["words"]))


# --- the tiny encoder: BERT's masked LM and a sentence-pair objective ------------------------------


@dataclass(frozen=True)
class EncoderTrainConfig(TrainingConfig):
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
    weight_decay: float = 0.0
    eval_seed: int = 1000

    FIELD_ORDER = ("name", "tokenizer_vocab_size", "context_length", "d_model", "n_heads", "n_layers", "d_ff",
                   "pair_objective", "mask_prob", "max_sentences", "batch_size", "steps", "learning_rate",
                   "warmup_steps", "final_lr_ratio", "weight_decay", "seed", "eval_seed", "threads")

    def __post_init__(self) -> None:
        super().__post_init__()
        for field in ("tokenizer_vocab_size", "context_length"):
            positive_int(getattr(self, field), field)
        if not self.weight_decay >= 0:
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay!r}")
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


def _pair_batches(tokenizer: EncoderTokenizer, documents: Sequence[Sequence[tuple[int, ...]]],
                  config: EncoderTrainConfig, generator: torch.Generator
                  ) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Endless (ids, segment_ids, labels) of ``config.batch_size`` pairs, each batch trimmed to its longest
    pair; every epoch draws fresh pairs (one per chunk of every document) in a fresh order."""
    while True:
        data = make_pair_batch(tokenizer, documents, config.pair_objective, generator, config.max_sentences,
                               config.context_length)
        order = torch.randperm(len(data.labels), generator=generator)  # (N,)
        for used in range(0, len(order) - config.batch_size + 1, config.batch_size):
            rows = order[used:used + config.batch_size]  # (B,)
            length = int((data.ids[rows] != tokenizer.pad_id).sum(dim=1).max())
            yield data.ids[rows, :length], data.segment_ids[rows, :length], data.labels[rows]  # (B, T), (B, T), (B,)


def train_tiny_encoder(config: EncoderTrainConfig = ENCODER_ZOO["tiny_encoder"], progress: bool = True,
                       data_dir: Path | None = None) -> tuple[TinyEncoder, EncoderTokenizer, dict[str, object]]:
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
    with deterministic(config.threads):
        start, start_cpu = time.perf_counter(), time.process_time()
        tokenizer = EncoderTokenizer(train_tokenizer(train_docs, config.tokenizer_vocab_size))
        documents = sentence_ids(tokenizer, train_docs)
        torch.manual_seed(config.seed)
        model = TinyEncoder(config.model_config(tokenizer.vocab_size))
        generator = torch.Generator().manual_seed(config.seed)
        batches = _pair_batches(tokenizer, documents, config, generator)

        def step_losses(step: int) -> dict[str, torch.Tensor]:
            ids, segments, labels = next(batches)  # (B, T), (B, T), (B,)
            inputs, mlm_labels = mask_for_mlm(tokenizer, ids, config.mask_prob, generator)  # (B, T) each
            mlm_loss, pair_loss = pretraining_losses(model, inputs, segments, mlm_labels, labels)
            return {"mlm": mlm_loss, "pair": pair_loss}

        losses = train_loop(model, _adamw(model, config), step_losses, config.steps,
                            lambda step: learning_rate(step, config), progress=progress,
                            desc=f"training {config.name}")
        train_seconds, train_cpu_seconds = time.perf_counter() - start, time.process_time() - start_cpu
        metrics: dict[str, object] = evaluate_encoder(model, tokenizer, val_docs, config.eval_seed, config.mask_prob,
                                                      config.max_sentences)
        generator_of_documents = load_generator(data_dir)
        fills = fact_fills(model, tokenizer, generator_of_documents.world.facts(), generator_of_documents)
    mlm_losses, pair_losses = losses["mlm"][-100:], losses["pair"][-100:]
    metrics |= {
        "val_documents": len(val_docs),
        "fact_accuracy": fact_fill_accuracy(fills),
        "fact_top5_accuracy": fact_fill_accuracy(fills, k=5),
        "facts": len(fills),
        "final_mlm_loss": sum(mlm_losses) / len(mlm_losses),
        "final_pair_loss": sum(pair_losses) / len(pair_losses),
        "parameters": model.num_parameters(),
        "steps": config.steps,
        "sequences_seen": config.steps * config.batch_size,
        "train_seconds": train_seconds,
        "train_cpu_seconds": train_cpu_seconds,
        "threads": config.threads,
        "corpus_sha256": _corpus_hashes(data_dir) | {WORLD_FILE: sha256(data_file(WORLD_FILE, data_dir))},
    }
    return model, tokenizer, metrics


def save_tiny_encoder(model: TinyEncoder, tokenizer: EncoderTokenizer, config: EncoderTrainConfig,
                      metrics: dict[str, object], zoo_dir: Path | None = None) -> dict[str, Path]:
    """Write the weights, the card (configs, special-token ids, metrics) and the BPE; returns their paths."""
    special = dict(zip(SPECIAL_TOKENS, tokenizer.special_ids))
    return write_checkpoint(model, config, metrics, zoo_dir, tokenizer=tokenizer.bpe, special_tokens=special)


def load_tiny_encoder(name: str = "tiny_encoder", zoo_dir: Path | None = None,
                      device: torch.device | str | None = None) -> tuple[TinyEncoder, EncoderTokenizer]:
    """Load encoder ``name`` (safetensors: no pickle) in eval mode, with its tokenizer."""
    card = load_card(name, zoo_dir)
    paths = checkpoint_paths(name, zoo_dir)
    if "special_tokens" not in card:
        raise ValueError(f"name must be a tiny encoder in {paths['card'].parent} (its card lists special tokens), "
                         f"got {name!r}")
    tokenizer = EncoderTokenizer(BPETokenizer.load(paths["tokenizer"]))
    if card["special_tokens"] != dict(zip(SPECIAL_TOKENS, tokenizer.special_ids)):
        raise ValueError(f"the card of {name!r} lists special ids {card['special_tokens']}, which its tokenizer "
                         f"does not give")
    return read_weights(TinyEncoder(TinyEncoderConfig(**card["model"])), name, zoo_dir, device), tokenizer


# --- the command line ------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m course_lib.zoo --retrain [--name NAME] [--zoo-dir DIR]``: retrain and rewrite checkpoints."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--retrain", action="store_true", help="train and overwrite the checkpoint(s)")
    names = sorted(ZOO) + sorted(SEQ2SEQ_ZOO) + sorted(ENCODER_ZOO)
    parser.add_argument("--name", choices=names, help="only this model (default: all)")
    parser.add_argument("--zoo-dir", type=Path, default=None,
                        help="write the checkpoints into this folder (default: zoo/ of the course data folder)")
    args = parser.parse_args(argv)
    if not args.retrain:
        parser.error("nothing to do: pass --retrain")
    for name in [args.name] if args.name else names:
        if name in SEQ2SEQ_ZOO:
            model, task, metrics = train_seq2seq(SEQ2SEQ_ZOO[name])
            paths = save_seq2seq(model, task, SEQ2SEQ_ZOO[name], metrics, args.zoo_dir)
        elif name in ENCODER_ZOO:
            model, tokenizer, metrics = train_tiny_encoder(ENCODER_ZOO[name])
            paths = save_tiny_encoder(model, tokenizer, ENCODER_ZOO[name], metrics, args.zoo_dir)
        else:
            model, tokenizer, metrics = train_tiny_gpt(ZOO[name])
            paths = save_tiny_gpt(model, tokenizer, ZOO[name], metrics, args.zoo_dir)
        print(json.dumps(metrics, indent=2))
        for path in paths.values():
            print(f"{path}  {path.stat().st_size} bytes  sha256 {sha256(path)}")


if __name__ == "__main__":
    main()
