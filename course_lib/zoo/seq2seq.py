"""The recurrent encoder-decoders (`SEQ2SEQ_ZOO`, `train_seq2seq`), with and without attention.

Two GRU encoder-decoders of `course_lib.seq2seq`, one without attention and one with Bahdanau
attention, the same widths and the same 4,000 steps of fresh random batches, trained to reverse
sequences of 2 to 12 words of the shipped world (`course_lib.seq2seq.ReversalTask`). Their cards
record greedy exact-match accuracy for every length from 2 to 20, beyond the training lengths too.
Files: ``name.safetensors`` and ``name.json`` (no tokenizer: the card lists the task's words). Load
them with `load_seq2seq`.

Left out: beam search at evaluation (greedy only), and any task but reversal.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import torch

from course_lib.checkpoints import checkpoint_paths, load_card, read_weights, write_checkpoint
from course_lib.datasets import WORLD_FILE, data_file, load_world, sha256
from course_lib.seq2seq import ReversalTask, Seq2Seq, Seq2SeqConfig, accuracy_by_length, fit
from course_lib.training import TrainingConfig, deterministic, learning_rate
from course_lib.validation import positive_int
from course_lib.zoo.common import Recipe

__all__ = ["RECIPES", "SEQ2SEQ_ZOO", "Seq2SeqTrainConfig", "load_seq2seq", "save_seq2seq", "train_seq2seq"]


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


#: How ``python -m course_lib.zoo --retrain`` makes each of them.
RECIPES: dict[str, Recipe] = {name: Recipe(config, train_seq2seq, save_seq2seq)
                              for name, config in SEQ2SEQ_ZOO.items()}
