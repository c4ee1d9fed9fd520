"""The tiny GPT (`ZOO`, `train_tiny_gpt`): a decoder-only Transformer trained on the course corpus.

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

The shipped configuration (`ZOO`) is small on purpose: a 2-layer, 64-wide model (137k parameters)
with a high learning rate (1e-2), 2,000 steps of 32 windows of 64 tokens, about a minute of one
core. Measured on this corpus, a 128-wide model given slightly more CPU time (1,000 steps at 5e-3)
ended further from the optimum (ratio 1.015 against 1.013): at this scale more updates beat more
width.

Files per model ``name`` in ``data/zoo/``: ``name.safetensors`` (weights, tied table stored once),
``name.json`` (model and training configs, metrics, the corpus files' sha256) and
``name_tokenizer.json``. Load them with `load_tiny_gpt`.

Left out: any other decoder configuration (the course ships one; `TrainConfig` makes others).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import torch

from course_lib.checkpoints import checkpoint_paths, load_card, read_weights, write_checkpoint
from course_lib.datasets import load_corpus, load_generator, optimal_loss
from course_lib.evaluation import document_nats
from course_lib.models import TinyGPT, TinyGPTConfig
from course_lib.tokenization import BPETokenizer
from course_lib.training import TrainingConfig, deterministic, learning_rate, train_loop
from course_lib.validation import positive_int
from course_lib.zoo.common import Recipe, adamw, corpus_hashes, token_stream, train_tokenizer, window_batches

__all__ = ["RECIPES", "ZOO", "TrainConfig", "load_tiny_gpt", "save_tiny_gpt", "train_tiny_gpt"]


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
        stream, starts = token_stream(tokenizer, train_docs)
        torch.manual_seed(config.seed)
        model = TinyGPT(config.model_config(tokenizer.vocab_size))
        batches = window_batches(stream, starts, config.batch_size, config.context_length,
                           torch.Generator().manual_seed(config.seed))

        def step_losses(step: int) -> dict[str, torch.Tensor]:
            inputs, targets = next(batches)  # (B, T), (B, T)
            logits = model(inputs)  # (B, T, V)
            return {"loss": torch.nn.functional.cross_entropy(logits.flatten(0, 1), targets.flatten())}

        losses = train_loop(model, adamw(model, config), step_losses, config.steps,
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
        "corpus_sha256": corpus_hashes(data_dir),
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


#: How ``python -m course_lib.zoo --retrain`` makes each of them.
RECIPES: dict[str, Recipe] = {name: Recipe(config, train_tiny_gpt, save_tiny_gpt) for name, config in ZOO.items()}
