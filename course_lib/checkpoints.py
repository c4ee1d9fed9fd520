"""Checkpoints on disk: a model's weights, its card and its tokenizer, written and read safely.

A checkpoint ``name`` in a folder is up to three files:

- ``name.safetensors``: the weights, plain tensors in the safetensors format (a tied table is
  stored once). Loading runs no code, unlike a pickle (``torch.save``).
- ``name.json``: the card, ``{"model": ..., "training": ..., <extras>, "metrics": ...}``: the
  model's config (``model.config.to_dict()``), the training config
  (`course_lib.training.TrainingConfig.to_dict`), whatever else the model needs to be rebuilt (a
  task's words, special-token ids) and the metrics measured after training.
- ``name_tokenizer.json``: the tokenizer, for a model that reads text (`BPETokenizer.save`).

The course ships its trained models in `checkpoint_dir()`, the ``zoo`` folder of the course data
(`course_lib.datasets.data_dir`); `course_lib.zoo` trains them and builds each model from its card.

Left out: optimizer state and resuming training, sharded or quantized weights, and versioning of
the card format (a card is read by the code of the same commit).
"""

from __future__ import annotations

import json
from pathlib import Path

import safetensors.torch
import torch

from course_lib.datasets import data_dir
from course_lib.tokenization import BPETokenizer
from course_lib.training import TrainingConfig

__all__ = ["CHECKPOINT_FOLDER", "checkpoint_dir", "checkpoint_paths", "load_card", "read_weights",
           "write_checkpoint"]

CHECKPOINT_FOLDER = "zoo"


def checkpoint_dir() -> Path:
    """The folder of the shipped checkpoints: ``zoo/`` in the course data folder (`data_dir`)."""
    return data_dir() / CHECKPOINT_FOLDER


def checkpoint_paths(name: str, folder: Path | None = None) -> dict[str, Path]:
    """The three files of checkpoint ``name`` in ``folder`` (default `checkpoint_dir`): weights, card, tokenizer."""
    folder = checkpoint_dir() if folder is None else Path(folder)
    return {"weights": folder / f"{name}.safetensors", "card": folder / f"{name}.json",
            "tokenizer": folder / f"{name}_tokenizer.json"}


def write_checkpoint(model: torch.nn.Module, config: TrainingConfig, metrics: dict[str, object],
                     folder: Path | None = None, tokenizer: BPETokenizer | None = None,
                     **card_extra: object) -> dict[str, Path]:
    """Write the weights (safetensors; a tied table is stored once), the card (model and training
    configs, ``card_extra``, metrics) and, if given, the tokenizer; returns the paths written."""
    paths = checkpoint_paths(config.name, folder)
    if tokenizer is None:
        del paths["tokenizer"]
    paths["card"].parent.mkdir(parents=True, exist_ok=True)
    safetensors.torch.save_model(model, str(paths["weights"]))
    if tokenizer is not None:
        tokenizer.save(paths["tokenizer"])
    card = {"model": model.config.to_dict(), "training": config.to_dict(), **card_extra, "metrics": metrics}
    paths["card"].write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
    return paths


def read_weights(model: torch.nn.Module, name: str, folder: Path | None = None,
                 device: torch.device | str | None = None) -> torch.nn.Module:
    """Fill ``model`` from checkpoint ``name``'s safetensors file (no pickle); eval mode on ``device``."""
    safetensors.torch.load_model(model, str(checkpoint_paths(name, folder)["weights"]), device="cpu")
    return model.to(device or "cpu").eval()


def load_card(name: str, folder: Path | None = None) -> dict[str, object]:
    """The configs and recorded metrics of checkpoint ``name`` in ``folder`` (default `checkpoint_dir`)."""
    path = checkpoint_paths(name, folder)["card"]
    if not path.exists():
        raise ValueError(f"name must be a model in {path.parent} (run `python -m course_lib.zoo --retrain`), "
                         f"got {name!r}")
    return json.loads(path.read_text(encoding="utf-8"))
