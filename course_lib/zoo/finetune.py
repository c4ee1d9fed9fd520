"""The tiny GPT fine-tuned on a second world (`FINETUNE_ZOO`, `train_finetune`): forgetting, measured.

The base is the zoo's tiny GPT, trained on the course world (``World.generate(seed=0)``, the "old"
world). Each recipe fine-tunes it on documents of a second world with other people, cities and
facts (``World.generate(seed=1)``, the "new" world) by one method:

- ``full``: every weight trained on new-world documents only (naive fine-tuning);
- ``replay``: the same, but a share ``replay_fraction`` of every batch is old-world training windows;
- ``ewc``: new-world documents, plus the EWC penalty (`course_lib.continual.ewc_penalty`) with the
  diagonal Fisher of the base on old-world windows (each window's summed negative log-likelihood
  is one example);
- ``lora``: LoRA adapters of rank ``lora_rank`` (``alpha = lora_alpha``) on every linear layer of
  the blocks (`course_lib.lora.add_lora`; the tied embedding and output layer stay frozen), the
  base frozen.

Every ``eval_every`` steps the recipe measures (`measure_forgetting`) four numbers, so the card
holds curves over fine-tuning steps:

- ``old_excess`` and ``new_excess``: the model's nats per document above the generator's exact
  nats, on ``eval_documents`` documents of each world (the old world's validation split; new-world
  documents drawn with a fixed seed, those that fit the model's context). 0 is the optimum.
- ``old_fact_nats`` and ``new_fact_nats``: the mean nats the model spends on a fact's object after
  its prompt (``"Rozi lives in"`` -> ``" Pominport."``, `course_lib.evaluation.answer_nats`), over
  all 120 facts of each world. Under the generator the object is certain: the optimum is 0.

Files per ``name`` in ``data/zoo/``: ``name.json`` (configs, curves, metrics) and
``name.safetensors``: the whole model for ``full``, ``replay`` and ``ewc``; for ``lora`` only the
adapter's ``lora_A`` and ``lora_B`` tensors (the base is read from its own checkpoint). The
tokenizer is the base's. `load_finetuned` rebuilds either.

Left out: other continual-learning methods (distillation to the old model, model averaging, online
EWC), several tasks in sequence, and hyper-parameter searches (the shipped strengths were picked
by hand, and the lesson shows the trade-off they move along).
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import safetensors.torch
import torch

from course_lib.checkpoints import checkpoint_paths, load_card, write_checkpoint
from course_lib.continual import diagonal_fisher, ewc_penalty
from course_lib.datasets import load_corpus, load_generator, sha256
from course_lib.evaluation import answer_nats, document_nats, encode_document
from course_lib.lora import add_lora, parameter_counts
from course_lib.models import TinyGPT, TinyGPTConfig
from course_lib.tokenization import BPETokenizer
from course_lib.training import TrainingConfig, deterministic, learning_rate, train_loop
from course_lib.validation import (
    nonnegative_int,
    number_in_range,
    one_of,
    positive_int,
    positive_number,
)
from course_lib.world import DocumentGenerator, World
from course_lib.zoo.common import Recipe, corpus_hashes, token_stream, window_batches
from course_lib.zoo.gpt import load_tiny_gpt

__all__ = ["FINETUNE_ZOO", "LORA_TARGETS", "METHODS", "RECIPES", "FinetuneConfig", "ForgettingSets",
           "forgetting_sets", "load_finetuned", "measure_forgetting", "save_finetuned", "train_finetune"]

METHODS = ("full", "replay", "ewc", "lora")
LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "out_proj", "fc_in", "fc_out")
_TRAIN_SEED, _EVAL_SEED = 11, 12  # random.Random seeds of the new world's training and evaluation documents


@dataclass(frozen=True)
class FinetuneConfig(TrainingConfig):
    """One fine-tuning run of the base on the new world: the method, its knob, the schedule."""

    name: str = "finetune_full"
    base: str = "tiny_gpt"
    method: str = "full"
    new_world_seed: int = 1
    train_documents: int = 4000
    eval_documents: int = 200
    eval_every: int = 50
    steps: int = 600
    learning_rate: float = 3e-3
    warmup_steps: int = 20
    replay_fraction: float = 0.0
    ewc_strength: float = 0.0
    fisher_windows: int = 64
    lora_rank: int = 0
    lora_alpha: float = 0.0

    FIELD_ORDER = ("name", "base", "method", "new_world_seed", "train_documents", "eval_documents", "eval_every",
                   "batch_size", "steps", "learning_rate", "warmup_steps", "final_lr_ratio", "replay_fraction",
                   "ewc_strength", "fisher_windows", "lora_rank", "lora_alpha", "seed", "threads")

    def __post_init__(self) -> None:
        super().__post_init__()
        one_of(self.method, "method", METHODS)
        nonnegative_int(self.new_world_seed, "new_world_seed")
        if self.new_world_seed == 0:
            raise ValueError("new_world_seed must differ from the base's world seed 0, got 0")
        for field in ("train_documents", "eval_documents", "eval_every", "fisher_windows"):
            positive_int(getattr(self, field), field)
        knobs = {"replay": ("replay_fraction", self.replay_fraction), "ewc": ("ewc_strength", self.ewc_strength),
                 "lora": ("lora_rank", self.lora_rank)}
        for method, (field, value) in knobs.items():
            if (method == self.method) != (value != 0):
                raise ValueError(f"{field} must be set (non-zero) exactly when method is {method!r}, "
                                 f"got {field}={value!r} with method={self.method!r}")
        if self.method == "replay":
            number_in_range(self.replay_fraction, "replay_fraction", 0.0, 1.0, low_open=True, high_open=True)
        if self.method == "ewc":
            positive_number(self.ewc_strength, "ewc_strength")
        if self.method == "lora":
            positive_int(self.lora_rank, "lora_rank")
            positive_number(self.lora_alpha, "lora_alpha")
        elif self.lora_alpha != 0:
            raise ValueError(f"lora_alpha must be 0 unless method is 'lora', got {self.lora_alpha!r}")

    @property
    def replayed_rows(self) -> int:
        """Rows of every batch drawn from the old world (``round(batch_size * replay_fraction)``)."""
        return round(self.batch_size * self.replay_fraction)


def _config(name: str, **fields: object) -> FinetuneConfig:
    return FinetuneConfig(name=name, **fields)


#: The shipped fine-tunes, by name.
FINETUNE_ZOO: dict[str, FinetuneConfig] = {config.name: config for config in (
    _config("finetune_full"),
    _config("finetune_full_low_lr", learning_rate=3e-4),
    _config("finetune_replay", method="replay", replay_fraction=0.25),
    _config("finetune_ewc", method="ewc", ewc_strength=100.0),
    _config("finetune_lora_r1", method="lora", lora_rank=1, lora_alpha=2.0, learning_rate=1e-2),
    _config("finetune_lora_r4", method="lora", lora_rank=4, lora_alpha=8.0, learning_rate=1e-2),
    _config("finetune_lora_r16", method="lora", lora_rank=16, lora_alpha=32.0, learning_rate=1e-2),
    _config("finetune_lora_r4_world2", method="lora", lora_rank=4, lora_alpha=8.0, learning_rate=1e-2,
            new_world_seed=2),
)}


class ForgettingSets(NamedTuple):
    """What `measure_forgetting` scores: each world's generator, documents and fact prompts."""

    old_generator: DocumentGenerator
    new_generator: DocumentGenerator
    old_documents: list[str]
    new_documents: list[str]
    old_facts: list[tuple[str, str]]  # (prompt, answer) pairs, one per fact
    new_facts: list[tuple[str, str]]


def forgetting_sets(tokenizer: BPETokenizer, new_world_seed: int = 1, eval_documents: int = 200,
                    data_dir: Path | None = None, context_length: int = 64) -> ForgettingSets:
    """The evaluation sets of a fine-tune: the first ``eval_documents`` old-world validation documents,
    as many new-world documents (drawn with a fixed seed; those that do not fit a model of
    ``context_length`` tokens, in the base's tokenizer, are skipped) and every fact of each world as a
    prompt."""
    old_generator = load_generator(data_dir)
    new_generator = DocumentGenerator(World.generate(seed=nonnegative_int(new_world_seed, "new_world_seed")))
    eval_documents = positive_int(eval_documents, "eval_documents")
    context_length = positive_int(context_length, "context_length")
    rng, new_documents = random.Random(_EVAL_SEED), []
    while len(new_documents) < eval_documents:
        document = new_generator.sample(rng)
        if len(encode_document(tokenizer, document)) <= context_length + 1:  # it reads all but the last token
            new_documents.append(document)
    old_documents = load_corpus("val", data_dir)[:eval_documents]
    return ForgettingSets(old_generator, new_generator, old_documents, new_documents,
                          [old_generator.fact_prompt(f) for f in old_generator.world.facts()],
                          [new_generator.fact_prompt(f) for f in new_generator.world.facts()])


@torch.no_grad()
def measure_forgetting(model: TinyGPT, tokenizer: BPETokenizer, sets: ForgettingSets) -> dict[str, float]:
    """``old_excess``, ``new_excess`` (nats per document above the exact optimum) and ``old_fact_nats``,
    ``new_fact_nats`` (mean nats on a fact's object after its prompt; the optimum is 0)."""
    was_training = model.training
    model.eval()
    result = {}
    for world, generator, documents, facts in (("old", sets.old_generator, sets.old_documents, sets.old_facts),
                                               ("new", sets.new_generator, sets.new_documents, sets.new_facts)):
        exact = -sum(generator.log_prob(d) for d in documents) / len(documents)
        result[f"{world}_excess"] = float(document_nats(model, tokenizer, documents).mean()) - exact
        result[f"{world}_fact_nats"] = float(answer_nats(model, tokenizer, *zip(*facts)).mean())
    model.train(was_training)
    return result


def _window_nats(model: torch.nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """Each window's summed negative log-likelihood: one example per window, (B,)."""
    inputs, targets = batch  # (B, T), (B, T)
    nll = torch.nn.functional.cross_entropy(model(inputs).flatten(0, 1), targets.flatten(), reduction="none")
    return nll.view(targets.shape).sum(dim=1)  # (B,)


def train_finetune(config: FinetuneConfig = FINETUNE_ZOO["finetune_full"], progress: bool = True,
                   data_dir: Path | None = None) -> tuple[TinyGPT, BPETokenizer, dict[str, object]]:
    """Fine-tune the base on the new world on the CPU; returns (model, tokenizer, metrics).

    metrics: ``curve`` (``step`` and the four numbers of `measure_forgetting` every ``eval_every``
    steps, step 0 being the base), the final four, ``old_optimum`` and ``new_optimum`` (the exact
    nats per document of each evaluation set), ``trainable_parameters``, ``parameters``, ``steps``,
    ``train_seconds``, ``train_cpu_seconds``, ``threads``, ``base_sha256`` and ``corpus_sha256``.
    """
    if not isinstance(config, FinetuneConfig):
        raise ValueError(f"config must be a FinetuneConfig, got {config!r}")
    model, tokenizer = load_tiny_gpt(config.base, zoo_dir=None if data_dir is None else Path(data_dir) / "zoo")
    sets = forgetting_sets(tokenizer, config.new_world_seed, config.eval_documents, data_dir, model.context_length)
    rng = random.Random(_TRAIN_SEED)
    new_train = [sets.new_generator.sample(rng) for _ in range(config.train_documents)]
    with deterministic(config.threads):
        start, start_cpu = time.perf_counter(), time.process_time()
        new_batches = window_batches(*token_stream(tokenizer, new_train), config.batch_size,
                                     model.context_length, torch.Generator().manual_seed(config.seed))
        old_stream = token_stream(tokenizer, load_corpus("train", data_dir))
        old_batches = window_batches(*old_stream, max(1, config.replayed_rows), model.context_length,
                                     torch.Generator().manual_seed(config.seed + 1))
        penalty = None
        if config.method == "ewc":
            fisher_batches = window_batches(*old_stream, 8, model.context_length,
                                            torch.Generator().manual_seed(config.seed + 2))
            fisher = diagonal_fisher(model, [next(fisher_batches) for _ in range(-(-config.fisher_windows // 8))],
                                     _window_nats)
            anchor = {n: p.detach().clone() for n, p in model.named_parameters()}
            penalty = lambda: ewc_penalty(model, fisher, anchor, config.ewc_strength)  # noqa: E731
        if config.method == "lora":
            torch.manual_seed(config.seed)  # the adapters' A matrices are drawn from it
            add_lora(model, config.lora_rank, config.lora_alpha, LORA_TARGETS)
        else:
            model.requires_grad_(True)
        optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=config.learning_rate,
                                      betas=(0.9, 0.99), weight_decay=0.0)  # as the base was trained

        def step_losses(step: int) -> dict[str, torch.Tensor]:
            inputs, targets = next(new_batches)  # (B, T), (B, T)
            if config.method == "replay":
                old_inputs, old_targets = next(old_batches)  # (R, T)
                keep = config.batch_size - config.replayed_rows
                inputs, targets = torch.cat([inputs[:keep], old_inputs]), torch.cat([targets[:keep], old_targets])
            logits = model(inputs)  # (B, T, V)
            losses = {"loss": torch.nn.functional.cross_entropy(logits.flatten(0, 1), targets.flatten())}
            if penalty is not None:
                losses["ewc"] = penalty()
            return losses

        curve = {"step": [0], **{k: [v] for k, v in measure_forgetting(model, tokenizer, sets).items()}}
        done = 0
        while done < config.steps:
            chunk = min(config.eval_every, config.steps - done)
            train_loop(model, optimizer, lambda s, done=done: step_losses(s + done), chunk,
                       lambda s, done=done: learning_rate(s + done, config), progress=progress,
                       desc=f"training {config.name} from step {done}")
            done += chunk
            curve["step"].append(done)
            for key, value in measure_forgetting(model, tokenizer, sets).items():
                curve[key].append(value)
        train_seconds, train_cpu_seconds = time.perf_counter() - start, time.process_time() - start_cpu
    counts = parameter_counts(model)
    metrics = {
        **{key: values[-1] for key, values in curve.items() if key != "step"},
        "curve": curve,
        "old_optimum": -sum(sets.old_generator.log_prob(d) for d in sets.old_documents) / len(sets.old_documents),
        "new_optimum": -sum(sets.new_generator.log_prob(d) for d in sets.new_documents) / len(sets.new_documents),
        "trainable_parameters": counts.trainable,
        "parameters": counts.total,
        "steps": config.steps,
        "train_seconds": train_seconds,
        "train_cpu_seconds": train_cpu_seconds,
        "threads": config.threads,
        "base_sha256": sha256(checkpoint_paths(config.base, None if data_dir is None
                                               else Path(data_dir) / "zoo")["weights"]),
        "corpus_sha256": corpus_hashes(data_dir),
    }
    return model, tokenizer, metrics


def save_finetuned(model: TinyGPT, tokenizer: BPETokenizer, config: FinetuneConfig, metrics: dict[str, object],
                   zoo_dir: Path | None = None) -> dict[str, Path]:
    """Write the card and the weights (only the adapter for LoRA); returns their paths. The tokenizer
    is the base's and is not written again."""
    paths = write_checkpoint(model, config, metrics, zoo_dir)
    if config.method == "lora":  # keep only the adapter
        adapter = {n: p.detach().contiguous() for n, p in model.named_parameters() if p.requires_grad}
        safetensors.torch.save_file(adapter, str(paths["weights"]))
    return paths


def load_finetuned(name: str = "finetune_full", zoo_dir: Path | None = None,
                   device: torch.device | str | None = None) -> tuple[TinyGPT, BPETokenizer]:
    """Load fine-tune ``name`` in eval mode with the base's tokenizer. A LoRA fine-tune is its base with
    the adapters added (`course_lib.lora.add_lora`) and filled from the file (no pickle)."""
    card = load_card(name, zoo_dir)
    if "method" not in card["training"]:
        raise ValueError(f"name must be a fine-tune of the zoo, got {name!r}")
    config = FinetuneConfig(**card["training"])
    base, tokenizer = load_tiny_gpt(config.base, zoo_dir)
    weights = checkpoint_paths(name, zoo_dir)["weights"]
    if config.method == "lora":
        add_lora(base, config.lora_rank, config.lora_alpha, LORA_TARGETS)
        adapter = safetensors.torch.load_file(str(weights))
        missing, unexpected = base.load_state_dict(adapter, strict=False)
        if unexpected or any("lora_" in key for key in missing):
            raise ValueError(f"{weights} does not hold the adapter the card describes")
        return base.to(device or "cpu").eval(), tokenizer
    model = TinyGPT(TinyGPTConfig(**card["model"]))
    safetensors.torch.load_model(model, str(weights), device="cpu")
    return model.to(device or "cpu").eval(), tokenizer


#: How ``python -m course_lib.zoo --retrain`` makes each of them.
RECIPES: dict[str, Recipe] = {name: Recipe(config, train_finetune, save_finetuned)
                              for name, config in FINETUNE_ZOO.items()}
