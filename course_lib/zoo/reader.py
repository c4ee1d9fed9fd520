"""The tiny reader (`READER_ZOO`, `train_tiny_reader`): a tiny GPT trained to answer from passages.

The shipped tiny GPT (`course_lib.zoo.gpt`) was trained on documents alone: it never saw a passage
followed by a question about it, so retrieved passages do not change its answers, and its 64-token
context holds about three passages. The reader is the same architecture trained on
`course_lib.retrieval.ReadingTask`: prompts written by `course_lib.retrieval.build_prompt` (the
passages, then the question as the start of a sentence) and the answer that completes them, drawn
from three kinds of example:

- "read": a fact of one of ``pool_worlds`` generated worlds (seeds 1, 2, ...: other names, other
  facts), after its passage and up to ``max_distractors`` passages of other facts of that world;
- "recall": a fact of the shipped world (`course_lib.datasets.load_world`), closed book;
- "update": a fact of the shipped world changed to another value, after its new passage.

The loss is the cross-entropy of the answer's tokens only (the prompt is context, not a target).
Its own 512-id byte-level BPE is trained on 2,000 examples of the task. The card records greedy
exact-match accuracy (`course_lib.retrieval.greedy_match`) on `course_lib.retrieval.reading_benchmark`:
closed book on the shipped world's 120 facts; with the right passage among distractors in
``eval_worlds`` worlds never trained on; with only a passage about another person (a retrieval
miss: does memory survive it, or is the passage copied?); and on the shipped world's facts changed
by a passage. Files: ``tiny_reader.safetensors``, ``tiny_reader.json``,
``tiny_reader_tokenizer.json``; load them with `load_tiny_reader`.

Left out: instruction formats (the question is a sentence to complete), contexts longer than the
model's ``context_length``, and training on retrieval misses (a context with passages but none
about the question never occurs in training: how the model behaves then is what the lesson shows).
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from course_lib.checkpoints import checkpoint_paths, load_card, read_weights, write_checkpoint
from course_lib.datasets import WORLD_FILE, data_file, load_world, sha256
from course_lib.models import TinyGPT, TinyGPTConfig
from course_lib.retrieval import ReadingTask, greedy_match, reading_benchmark, reading_pool
from course_lib.tokenization import BPETokenizer
from course_lib.training import deterministic, learning_rate, train_loop
from course_lib.validation import nonnegative_int, positive_int, probability
from course_lib.zoo.common import Recipe, adamw, train_tokenizer
from course_lib.zoo.gpt import TrainConfig

__all__ = ["READER_ZOO", "RECIPES", "ReaderTrainConfig", "evaluate_reader", "load_tiny_reader", "save_tiny_reader",
           "train_tiny_reader"]

IGNORE = -100  # the target of a position whose loss is not counted (a prompt token or padding)


@dataclass(frozen=True)
class ReaderTrainConfig(TrainConfig):
    """The tiny GPT's config (`course_lib.zoo.gpt.TrainConfig`) plus the `ReadingTask` it is trained on."""

    name: str = "tiny_reader"
    tokenizer_examples: int = 2000
    context_length: int = 96
    pool_worlds: int = 1000
    max_distractors: int = 2
    read_fraction: float = 0.7
    recall_fraction: float = 0.2
    update_fraction: float = 0.1
    eval_worlds: int = 10
    steps: int = 5000
    learning_rate: float = 3e-3
    eval_seed: int = 1000

    FIELD_ORDER = ("name", "tokenizer_vocab_size", "tokenizer_examples", "context_length", "d_model", "n_heads",
                   "n_layers", "d_ff", "pool_worlds", "max_distractors", "read_fraction", "recall_fraction",
                   "update_fraction", "eval_worlds", "batch_size", "steps", "learning_rate", "warmup_steps",
                   "final_lr_ratio", "weight_decay", "seed", "eval_seed", "threads")

    def __post_init__(self) -> None:
        super().__post_init__()
        for field in ("tokenizer_examples", "pool_worlds", "eval_worlds"):
            positive_int(getattr(self, field), field)
        nonnegative_int(self.max_distractors, "max_distractors")
        nonnegative_int(self.eval_seed, "eval_seed")
        mix = self.mix()
        for kind, fraction in mix.items():
            probability(fraction, f"{kind}_fraction")
        if abs(sum(mix.values()) - 1) > 1e-9:
            raise ValueError(f"read_fraction, recall_fraction and update_fraction must sum to 1, "
                             f"got {sum(mix.values())!r}")

    def mix(self) -> dict[str, float]:
        """The probability of each kind of example, for `ReadingTask`."""
        return {"read": self.read_fraction, "recall": self.recall_fraction, "update": self.update_fraction}


#: The shipped reader, by name.
READER_ZOO: dict[str, ReaderTrainConfig] = {"tiny_reader": ReaderTrainConfig()}


def _batch(task: ReadingTask, tokenizer: BPETokenizer, rng: random.Random, config: ReaderTrainConfig
           ) -> tuple[torch.Tensor, torch.Tensor]:
    """(inputs, targets), each (B, T) with T the longest example: targets are the answer's tokens, else IGNORE."""
    rows = []
    for _ in range(config.batch_size):
        example = task.sample(rng)
        prompt, answer = tokenizer.encode(example.prompt), tokenizer.encode(example.answer)
        if len(prompt) + len(answer) - 1 > config.context_length:
            raise ValueError(f"an example of {len(prompt) + len(answer)} tokens does not fit the context_length "
                             f"{config.context_length}: {example.prompt!r}")
        rows.append((prompt, answer))
    length = max(len(p) + len(a) for p, a in rows) - 1
    inputs = torch.zeros(len(rows), length, dtype=torch.long)  # (B, T) padded with id 0, never read as a target
    targets = torch.full((len(rows), length), IGNORE, dtype=torch.long)  # (B, T)
    for i, (prompt, answer) in enumerate(rows):
        ids = prompt + answer
        inputs[i, :len(ids) - 1] = torch.tensor(ids[:-1])
        targets[i, len(prompt) - 1:len(ids) - 1] = torch.tensor(answer)
    return inputs, targets


def evaluate_reader(model: TinyGPT, tokenizer: BPETokenizer, config: ReaderTrainConfig,
                    data_dir: Path | None = None) -> dict[str, float]:
    """The card's accuracies: greedy exact match on each set of `reading_benchmark`, and how often the
    answer with only a distractor passage is the distractor's value (``distractor_copied``)."""
    benchmark = reading_benchmark(load_world(data_dir), reading_pool(config.eval_worlds, start=10_001),
                                  config.eval_seed)
    metrics = {}
    for name, examples in benchmark.items():
        hits = greedy_match(model, tokenizer, [e.prompt for e in examples], [e.answer for e in examples])
        metrics[f"{name}_accuracy"] = float(hits.mean())
        metrics[f"{name}_examples"] = len(examples)
    distractors = benchmark["distractor"]
    copied = greedy_match(model, tokenizer, [e.prompt for e in distractors],
                          [" " + e.context[0].object + "." for e in distractors])
    metrics["distractor_copied"] = float(copied.mean())
    return metrics


def train_tiny_reader(config: ReaderTrainConfig = READER_ZOO["tiny_reader"], progress: bool = True,
                      data_dir: Path | None = None) -> tuple[TinyGPT, BPETokenizer, dict[str, object]]:
    """Train the reader on the CPU; returns (model, tokenizer, metrics).

    metrics: the accuracies of `evaluate_reader`, ``final_train_loss`` (nats per answer token, last
    100 steps), ``parameters``, ``steps``, ``examples_seen``, ``train_seconds`` and
    ``train_cpu_seconds`` (as in `course_lib.zoo.gpt.train_tiny_gpt`), ``threads`` and the world
    file's sha256.
    """
    if not isinstance(config, ReaderTrainConfig):
        raise ValueError(f"config must be a ReaderTrainConfig, got {config!r}")
    world = load_world(data_dir)
    with deterministic(config.threads):
        start, start_cpu = time.perf_counter(), time.process_time()
        task = ReadingTask(world, reading_pool(config.pool_worlds), config.mix(), config.max_distractors)
        text_rng = random.Random(config.seed)
        texts = [e.prompt + e.answer for e in (task.sample(text_rng) for _ in range(config.tokenizer_examples))]
        tokenizer = train_tokenizer(texts, config.tokenizer_vocab_size)
        torch.manual_seed(config.seed)
        model = TinyGPT(config.model_config(tokenizer.vocab_size))
        rng = random.Random(config.seed + 1)

        def step_losses(step: int) -> dict[str, torch.Tensor]:
            inputs, targets = _batch(task, tokenizer, rng, config)  # (B, T), (B, T)
            logits = model(inputs)  # (B, T, V)
            return {"loss": torch.nn.functional.cross_entropy(logits.flatten(0, 1), targets.flatten(),
                                                              ignore_index=IGNORE)}

        losses = train_loop(model, adamw(model, config), step_losses, config.steps,
                            lambda step: learning_rate(step, config), progress=progress,
                            desc=f"training {config.name}")["loss"]
        train_seconds, train_cpu_seconds = time.perf_counter() - start, time.process_time() - start_cpu
        metrics: dict[str, object] = evaluate_reader(model, tokenizer, config, data_dir)
    metrics |= {
        "final_train_loss": sum(losses[-100:]) / len(losses[-100:]),
        "parameters": model.num_parameters(),
        "steps": config.steps,
        "examples_seen": config.steps * config.batch_size,
        "train_seconds": train_seconds,
        "train_cpu_seconds": train_cpu_seconds,
        "threads": config.threads,
        "world_sha256": {WORLD_FILE: sha256(data_file(WORLD_FILE, data_dir))},
    }
    return model, tokenizer, metrics


def save_tiny_reader(model: TinyGPT, tokenizer: BPETokenizer, config: ReaderTrainConfig,
                     metrics: dict[str, object], zoo_dir: Path | None = None) -> dict[str, Path]:
    """Write the weights, the card and the BPE (into ``zoo_dir``, default data/zoo/); returns their paths."""
    return write_checkpoint(model, config, metrics, zoo_dir, tokenizer=tokenizer)


def load_tiny_reader(name: str = "tiny_reader", zoo_dir: Path | None = None,
                     device: torch.device | str | None = None) -> tuple[TinyGPT, BPETokenizer]:
    """Load reader ``name`` (safetensors: no pickle) in eval mode, with its tokenizer."""
    card = load_card(name, zoo_dir)
    model = read_weights(TinyGPT(TinyGPTConfig(**card["model"])), name, zoo_dir, device)
    return model, BPETokenizer.load(checkpoint_paths(name, zoo_dir)["tokenizer"])


#: How ``python -m course_lib.zoo --retrain`` makes it.
RECIPES: dict[str, Recipe] = {name: Recipe(config, train_tiny_reader, save_tiny_reader)
                              for name, config in READER_ZOO.items()}
