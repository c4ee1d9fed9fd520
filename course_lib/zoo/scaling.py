"""The measured scaling curve (`SCALING_ZOO`, `train_scaling_curve`): tiny GPTs of several sizes on the
course corpus, scored against the world's exact optimum.

Two experiments, one card (``data/zoo/scaling_curve.json``), no weights: the lessons use only the
measured losses, so the recipe stores the card and retraining reproduces it.

- **Size axis**: TinyGPTs of the widths in ``widths`` (2 layers, heads of width ``head_width``, the
  tiny GPT's 512-id BPE, context and batch), all trained on the whole train split with the same
  steps, learning rate and schedule, each from its own seeded initialisation.
- **Data axis**: the ``data_width`` model trained on only the first m training documents, for each m
  in ``data_documents``, for ``data_steps`` steps. A small training set is seen many times over, so
  the model overfits; the validation loss is taken at the step where the loss on ``dev_documents``
  documents held out from the end of the train split was lowest (early stopping on data the model
  never trains on; evaluated every ``eval_every`` steps). The n-gram models of lesson 45 are fitted
  on the same first m documents.

Every model is scored on the whole validation split (`course_lib.evaluation.document_nats`) in nats
per document and per token; the generator's exact nats on the same documents, spread over the same
tokens, are the irreducible loss (`course_lib.datasets.optimal_loss`): no model can go below it.

Left out: the weights (not stored), a learning rate tuned per size (Kaplan et al. 2020 tune it; one
rate for all sizes favours the sizes it suits), depth as a second size axis, and more than one seed
per point (the slow test retrains and compares with the card).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from course_lib.checkpoints import checkpoint_paths, load_card
from course_lib.datasets import load_corpus, load_generator, optimal_loss
from course_lib.evaluation import document_nats, encode_document
from course_lib.models import TinyGPT, TinyGPTConfig
from course_lib.tokenization import BPETokenizer
from course_lib.training import TrainingConfig, deterministic, learning_rate, train_loop
from course_lib.validation import positive_int
from course_lib.zoo.common import Recipe, adamw, corpus_hashes, token_stream, train_tokenizer, window_batches

__all__ = ["RECIPES", "SCALING_ZOO", "ScalingConfig", "load_scaling_curve", "save_scaling_curve",
           "train_scaling_curve"]


@dataclass(frozen=True)
class ScalingConfig(TrainingConfig):
    """The sizes, data sizes and shared training settings of the scaling curve."""

    name: str = "scaling_curve"
    tokenizer_vocab_size: int = 512
    context_length: int = 64
    widths: tuple[int, ...] = (16, 24, 32, 48, 64, 96)
    head_width: int = 16
    n_layers: int = 2
    steps: int = 1500
    learning_rate: float = 1e-2
    weight_decay: float = 0.0
    data_width: int = 32
    data_documents: tuple[int, ...] = (100, 300, 1000, 3000, 8200)
    data_steps: int = 800
    dev_documents: int = 500
    eval_every: int = 50

    FIELD_ORDER = ("name", "tokenizer_vocab_size", "context_length", "widths", "head_width", "n_layers",
                   "batch_size", "steps", "learning_rate", "warmup_steps", "final_lr_ratio", "weight_decay",
                   "data_width", "data_documents", "data_steps", "dev_documents", "eval_every", "seed", "threads")

    def __post_init__(self) -> None:
        super().__post_init__()
        for field in ("tokenizer_vocab_size", "context_length", "head_width", "n_layers", "data_width",
                      "data_steps", "dev_documents", "eval_every"):
            positive_int(getattr(self, field), field)
        for field in ("widths", "data_documents"):
            values = getattr(self, field)
            if not isinstance(values, (tuple, list)) or not values:
                raise ValueError(f"{field} must be a non-empty increasing tuple, got {values!r}")
            values = tuple(positive_int(value, field) for value in values)
            if list(values) != sorted(set(values)):
                raise ValueError(f"{field} must be a non-empty increasing tuple, got {values!r}")
            object.__setattr__(self, field, values)  # a card's JSON lists become tuples again
        if not self.weight_decay >= 0:
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay!r}")
        if not self.warmup_steps < self.data_steps:
            raise ValueError(f"data_steps must exceed warmup_steps={self.warmup_steps}, got {self.data_steps!r}")
        for width in (*self.widths, self.data_width):
            self.model_config(width, self.tokenizer_vocab_size)  # the model's own checks, before training

    def model_config(self, width: int, vocab_size: int) -> TinyGPTConfig:
        """The TinyGPT of width ``width``: ``width // head_width`` heads (at least one)."""
        return TinyGPTConfig(vocab_size=vocab_size, context_length=self.context_length, d_model=width,
                             n_heads=max(1, width // self.head_width), n_layers=self.n_layers)


#: The shipped curve, by name.
SCALING_ZOO: dict[str, ScalingConfig] = {"scaling_curve": ScalingConfig()}


def _non_embedding_parameters(model: TinyGPT) -> int:
    """Parameters outside the token and position tables (the count Kaplan et al. 2020 use)."""
    return sum(p.numel() for name, p in model.named_parameters()
               if not name.startswith(("token_embedding.", "positions.")))


def _train_one(config: ScalingConfig, width: int, tokenizer: BPETokenizer, documents: list[str], steps: int,
               progress: bool, dev: list[str] | None = None) -> tuple[TinyGPT, int]:
    """One model of ``width`` trained on ``documents`` for ``steps``; with ``dev``, the weights of the
    evaluation step with the lowest dev loss are restored. Returns the model (eval mode) and that step."""
    stream, starts = token_stream(tokenizer, documents)
    torch.manual_seed(config.seed)
    model = TinyGPT(config.model_config(width, tokenizer.vocab_size))
    batches = window_batches(stream, starts, config.batch_size, config.context_length,
                             torch.Generator().manual_seed(config.seed))
    schedule = ScalingConfig(**{**config.to_dict(), "steps": steps}) if steps != config.steps else config
    best = {"nats": float("inf"), "step": steps, "state": None}

    def step_losses(step: int) -> dict[str, torch.Tensor]:
        if dev is not None and step > 0 and step % config.eval_every == 0:
            model.eval()
            nats = float(document_nats(model, tokenizer, dev).sum())
            model.train()
            if nats < best["nats"]:
                best.update(nats=nats, step=step, state={k: v.clone() for k, v in model.state_dict().items()})
        inputs, targets = next(batches)  # (B, T), (B, T)
        logits = model(inputs)  # (B, T, V)
        return {"loss": torch.nn.functional.cross_entropy(logits.flatten(0, 1), targets.flatten())}

    train_loop(model, adamw(model, config), step_losses, steps, lambda step: learning_rate(step, schedule),
               progress=progress, desc=f"{config.name}: width {width}, {len(documents)} documents")
    if dev is not None and float(document_nats(model, tokenizer, dev).sum()) >= best["nats"]:
        model.load_state_dict(best["state"])
    else:
        best["step"] = steps
    return model.eval(), int(best["step"])


def train_scaling_curve(config: ScalingConfig = SCALING_ZOO["scaling_curve"], progress: bool = True,
                        data_dir: Path | None = None) -> tuple[TinyGPT, BPETokenizer, dict[str, object]]:
    """Train every model of both axes on the CPU; returns (the widest model, the tokenizer, metrics).

    metrics: ``val_tokens`` and ``generator_nats`` (the exact total on the validation split) with
    ``irreducible_nats_per_token`` (their quotient); ``sizes``, one entry per width (``width``,
    ``n_heads``, ``parameters``, ``non_embedding_parameters``, ``val_nats``, ``nats_per_token``,
    ``ratio`` to the exact total, ``tokens_seen``); ``data``, one entry per training size
    (``documents``, ``train_tokens``, ``best_step``, ``val_nats``, ``nats_per_token``, ``ratio``);
    ``steps``, ``parameters`` (of each width), ``train_seconds``, ``train_cpu_seconds``, ``threads``
    and ``corpus_sha256``.
    """
    if not isinstance(config, ScalingConfig):
        raise ValueError(f"config must be a ScalingConfig, got {config!r}")
    train_docs, val_docs = load_corpus("train", data_dir), load_corpus("val", data_dir)
    if config.data_documents[-1] + config.dev_documents > len(train_docs):
        raise ValueError(f"data_documents[-1] + dev_documents must be at most {len(train_docs)}, got "
                         f"{config.data_documents[-1]} + {config.dev_documents}")
    dev_docs = train_docs[len(train_docs) - config.dev_documents:]
    generator_nats = optimal_loss(val_docs, load_generator(data_dir)).nats_per_document * len(val_docs)
    sizes, data = [], []
    with deterministic(config.threads):
        start, start_cpu = time.perf_counter(), time.process_time()
        tokenizer = train_tokenizer(train_docs, config.tokenizer_vocab_size)
        val_tokens = sum(len(encode_document(tokenizer, d)) - 1 for d in val_docs)  # scored tokens

        def scores(model: TinyGPT) -> dict[str, float]:
            nats = float(document_nats(model, tokenizer, val_docs).sum())
            return {"val_nats": nats, "nats_per_token": nats / val_tokens, "ratio": nats / generator_nats}

        for width in config.widths:
            model, _ = _train_one(config, width, tokenizer, train_docs, config.steps, progress)
            sizes.append({"width": width, "n_heads": model.config.n_heads, "parameters": model.num_parameters(),
                          "non_embedding_parameters": _non_embedding_parameters(model), **scores(model),
                          "tokens_seen": config.steps * config.batch_size * config.context_length})
        widest = model
        for m in config.data_documents:
            model, step = _train_one(config, config.data_width, tokenizer, train_docs[:m], config.data_steps,
                                     progress, dev=dev_docs)
            train_tokens = sum(len(tokenizer.encode(d)) + 1 for d in train_docs[:m])  # each with its newline
            data.append({"documents": m, "train_tokens": train_tokens, "best_step": step, **scores(model)})
        train_seconds, train_cpu_seconds = time.perf_counter() - start, time.process_time() - start_cpu
    metrics = {
        "val_documents": len(val_docs),
        "val_tokens": val_tokens,
        "generator_nats": generator_nats,
        "irreducible_nats_per_token": generator_nats / val_tokens,
        "sizes": sizes,
        "data": data,
        "steps": config.steps,
        "parameters": [entry["parameters"] for entry in sizes],
        "train_seconds": train_seconds,
        "train_cpu_seconds": train_cpu_seconds,
        "threads": config.threads,
        "corpus_sha256": corpus_hashes(data_dir),
    }
    return widest, tokenizer, metrics


def save_scaling_curve(model: TinyGPT, tokenizer: BPETokenizer, config: ScalingConfig,
                       metrics: dict[str, object], zoo_dir: Path | None = None) -> dict[str, Path]:
    """Write the card only (configs and measured losses; no weights: the lessons do not use them)."""
    path = checkpoint_paths(config.name, zoo_dir)["card"]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"training": config.to_dict(), "metrics": metrics}, indent=2) + "\n",
                    encoding="utf-8")
    return {"card": path}


def load_scaling_curve(name: str = "scaling_curve", zoo_dir: Path | None = None) -> dict[str, object]:
    """The card of the scaling curve ``name``: ``{"training": config, "metrics": measured losses}``."""
    return load_card(name, zoo_dir)


#: How ``python -m course_lib.zoo --retrain`` makes it.
RECIPES: dict[str, Recipe] = {name: Recipe(config, train_scaling_curve, save_scaling_curve)
                              for name, config in SCALING_ZOO.items()}
