"""The in-context learner (`ICL_ZOO`, `train_icl_gpt`): a TinyGPT trained only on prompts of demonstrations.

- Data: `course_lib.icl_tasks.ThresholdTasks`. Every training sequence draws a fresh linear
  threshold task on 5 bits (never a held-out one) and shows 24 demonstrations of it,
  ``BOS x_1 x_1:y_1 ... x_24 x_24:y_24`` (a demonstration is one token; that module says why).
  Nothing is read from disk: the sequences are generated from the seed.
- Objective: at every query ``x_i``, the cross-entropy of the true answer over the two answer
  tokens (``no``, ``yes``) given everything before it, so one sequence trains the answer after 0,
  1, ..., 23 demonstrations at once (as in Garg et al. 2022). Nothing else is predicted (the inputs
  are uniform noise). With the cross-entropy over the whole vocabulary instead, the same model and
  seed were still at chance (0.693 nats) after 1,100 steps, while this loss leaves chance within
  the first few hundred.
- Model: `course_lib.models.TinyGPT` (2 layers, width 64), AdamW, warm-up then cosine decay.
- Quality, in the card's metrics: accuracy after k = 0 .. 23 demonstrations on ``eval_tasks``
  held-out tasks (one prompt each, gold labels) and on as many training-family tasks, the same
  held-out prompts with random labels, and the ideal (Bayes) learner's accuracy on the held-out
  prompts (`course_lib.icl_tasks.posterior_yes`, prior estimated from ``prior_samples`` draws).

Files per model ``name`` in ``data/zoo/``: ``name.safetensors`` (weights) and ``name.json`` (model
and training configs, the task family, metrics). Load them with `load_icl_gpt`.

Left out: any tokenizer (the tokens are the task's own ids) and other task families.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import torch

from course_lib.checkpoints import load_card, read_weights, write_checkpoint
from course_lib.icl_tasks import FunctionPrior, ThresholdTasks, accuracy_by_k, ideal_accuracy
from course_lib.models import TinyGPT, TinyGPTConfig
from course_lib.training import TrainingConfig, deterministic, learning_rate, train_loop
from course_lib.validation import positive_int
from course_lib.zoo.common import Recipe, adamw

__all__ = ["ICL_ZOO", "ICLTrainConfig", "RECIPES", "evaluate_icl", "load_icl_gpt", "save_icl_gpt", "train_icl_gpt"]


@dataclass(frozen=True)
class ICLTrainConfig(TrainingConfig):
    """Everything that determines the in-context learner: task family, prompt length, model, optimisation."""

    name: str = "icl_gpt"
    n_bits: int = 5
    held_out_modulus: int = 5
    n_pairs: int = 24
    d_model: int = 64
    n_heads: int = 4
    n_layers: int = 2
    d_ff: int | None = None
    batch_size: int = 64
    steps: int = 1500
    learning_rate: float = 3e-3
    weight_decay: float = 0.0
    eval_tasks: int = 2000
    eval_seed: int = 1234
    prior_samples: int = 200_000

    FIELD_ORDER = ("name", "n_bits", "held_out_modulus", "n_pairs", "d_model", "n_heads", "n_layers", "d_ff",
                   "batch_size", "steps", "learning_rate", "warmup_steps", "final_lr_ratio", "weight_decay",
                   "eval_tasks", "eval_seed", "prior_samples", "seed", "threads")

    def __post_init__(self) -> None:
        super().__post_init__()
        for field in ("n_pairs", "eval_tasks", "prior_samples"):
            positive_int(getattr(self, field), field)
        positive_int(self.eval_seed + 1, "eval_seed + 1")
        if not self.weight_decay >= 0:
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay!r}")
        self.model_config()  # the task's and the model's own checks, before any training

    def tasks(self) -> ThresholdTasks:
        """The task family the model is trained on."""
        return ThresholdTasks(self.n_bits, self.held_out_modulus)

    def model_config(self) -> TinyGPTConfig:
        """The TinyGPT shape: the task's vocabulary, a context of BOS and ``n_pairs`` pairs less the last label."""
        return TinyGPTConfig(vocab_size=self.tasks().vocab_size, context_length=2 * self.n_pairs,
                             d_model=self.d_model, n_heads=self.n_heads, n_layers=self.n_layers, d_ff=self.d_ff)


#: The shipped in-context learners, by name.
ICL_ZOO: dict[str, ICLTrainConfig] = {"icl_gpt": ICLTrainConfig()}


def evaluate_icl(model: TinyGPT, config: ICLTrainConfig) -> dict[str, list[float]]:
    """The card's accuracy curves (k = 0 .. n_pairs - 1), measured on prompts seeded by ``config.eval_seed``.

    ``held_out``, ``held_out_random_labels`` and ``bayes_held_out`` share the same held-out tasks;
    ``train_tasks`` uses tasks of the training family.
    """
    tasks = config.tasks()
    generator = torch.Generator().manual_seed(config.eval_seed)
    held_out = tasks.sample_tasks(config.eval_tasks, generator, held_out=True)  # (E, N)
    seen = tasks.sample_tasks(config.eval_tasks, generator, held_out=False)  # (E, N)
    prior = FunctionPrior.estimate(tasks, config.prior_samples, generator)
    state = generator.get_state()
    gold = accuracy_by_k(model, tasks, held_out, config.n_pairs, generator)  # (m,)
    generator.set_state(state)  # the Bayes learner sees exactly the prompts the model saw
    ids, truth = tasks.sequences(held_out, config.n_pairs, generator)  # (E, 1 + 2m), (E, m)
    bayes = ideal_accuracy(prior, ids, truth)  # (m,)
    random_labels = accuracy_by_k(model, tasks, held_out, config.n_pairs, generator, labels="random")
    train_tasks = accuracy_by_k(model, tasks, seen, config.n_pairs, generator)
    return {"held_out": gold.tolist(), "held_out_random_labels": random_labels.tolist(),
            "bayes_held_out": bayes.tolist(), "train_tasks": train_tasks.tolist()}


def train_icl_gpt(config: ICLTrainConfig = ICL_ZOO["icl_gpt"], progress: bool = True,
                  data_dir: Path | None = None) -> tuple[TinyGPT, ThresholdTasks, dict[str, object]]:
    """Train a TinyGPT on prompts of random threshold tasks on the CPU; returns (model, tasks, metrics).

    metrics: ``accuracy`` (the curves of `evaluate_icl`), ``final_train_loss`` (nats per answer,
    over the two answers, last 100 steps), ``parameters``, ``steps``, ``sequences_seen``, ``train_seconds`` and
    ``train_cpu_seconds`` (see `course_lib.zoo.gpt.train_tiny_gpt`), ``threads``. ``data_dir`` is
    accepted for the recipe's shape; no file is read.
    """
    if not isinstance(config, ICLTrainConfig):
        raise ValueError(f"config must be an ICLTrainConfig, got {config!r}")
    tasks = config.tasks()
    with deterministic(config.threads):
        start, start_cpu = time.perf_counter(), time.process_time()
        torch.manual_seed(config.seed)
        model = TinyGPT(config.model_config())
        generator = torch.Generator().manual_seed(config.seed)

        def step_losses(step: int) -> dict[str, torch.Tensor]:
            tables = tasks.sample_tasks(config.batch_size, generator)  # (B, N)
            ids, truth = tasks.sequences(tables, config.n_pairs, generator)  # (B, 1 + 2m), (B, m)
            logits = model(ids[:, :-1])[:, 1::2, tasks.no:tasks.yes + 1]  # (B, m, 2) no/yes at every query
            return {"loss": torch.nn.functional.cross_entropy(logits.flatten(0, 1), truth.flatten())}

        losses = train_loop(model, adamw(model, config), step_losses, config.steps,
                            lambda step: learning_rate(step, config), progress=progress,
                            desc=f"training {config.name}")["loss"]
        train_seconds, train_cpu_seconds = time.perf_counter() - start, time.process_time() - start_cpu
        accuracy = evaluate_icl(model, config)
    metrics = {
        "accuracy": accuracy,
        "final_train_loss": sum(losses[-100:]) / len(losses[-100:]),
        "parameters": model.num_parameters(),
        "steps": config.steps,
        "sequences_seen": config.steps * config.batch_size,
        "train_seconds": train_seconds,
        "train_cpu_seconds": train_cpu_seconds,
        "threads": config.threads,
    }
    return model, tasks, metrics


def save_icl_gpt(model: TinyGPT, tasks: ThresholdTasks, config: ICLTrainConfig, metrics: dict[str, object],
                 zoo_dir: Path | None = None) -> dict[str, Path]:
    """Write the weights and the card (into ``zoo_dir``, default data/zoo/); returns their paths."""
    return write_checkpoint(model, config, metrics, zoo_dir,
                            tasks={"n_bits": tasks.n_bits, "held_out_modulus": tasks.held_out_modulus})


def load_icl_gpt(name: str = "icl_gpt", zoo_dir: Path | None = None,
                 device: torch.device | str | None = None) -> tuple[TinyGPT, ThresholdTasks]:
    """Load in-context learner ``name`` (safetensors, eval mode) with its task family."""
    card = load_card(name, zoo_dir)
    model = read_weights(TinyGPT(TinyGPTConfig(**card["model"])), name, zoo_dir, device)
    return model, ThresholdTasks(**card["tasks"])


#: How ``python -m course_lib.zoo --retrain`` makes each of them.
RECIPES: dict[str, Recipe] = {name: Recipe(config, train_icl_gpt, save_icl_gpt) for name, config in ICL_ZOO.items()}
