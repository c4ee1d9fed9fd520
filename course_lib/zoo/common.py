"""What the zoo's recipes share: a recipe's shape, the BPE trainer, the token stream and its windows, the
optimizer and the data files' checksums.

Left out: anything model-specific (each family's module holds its own configuration, training and loading).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from course_lib.datasets import SPLITS, data_file, sha256
from course_lib.evaluation import NEWLINE
from course_lib.tokenization import BPETokenizer
from course_lib.training import TrainingConfig

__all__ = ["Recipe", "adamw", "corpus_hashes", "token_stream", "train_tokenizer", "window_batches"]


@dataclass(frozen=True)
class Recipe:
    """How ``python -m course_lib.zoo --retrain`` makes one shipped model.

    ``train(config, progress=...)`` returns ``(model, extra, metrics)`` (``extra``: what the card or the
    files need beside the weights, such as a tokenizer or a task) and ``save(model, extra, config,
    metrics, zoo_dir)`` writes the files and returns their paths.
    """

    config: TrainingConfig
    train: Callable[..., tuple[torch.nn.Module, Any, dict[str, object]]]
    save: Callable[..., dict[str, Path]]


def train_tokenizer(documents: Sequence[str], vocab_size: int) -> BPETokenizer:
    """A byte-level BPE (GPT-2 pattern) trained on the documents joined by newlines."""
    tokenizer = BPETokenizer()
    tokenizer.train("".join(d + NEWLINE for d in documents), vocab_size)
    return tokenizer


def token_stream(tokenizer: BPETokenizer, documents: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """All documents as one stream "\\n d1 \\n d2 \\n ..." (N,) and the positions of their first newline."""
    newline = tokenizer.encode(NEWLINE)
    ids = newline + [i for d in documents for i in tokenizer.encode(d) + newline]
    stream = torch.tensor(ids, dtype=torch.long)  # (N,)
    starts = (stream == newline[0]).nonzero()[:-1, 0]  # (n_docs,) each document's leading newline
    return stream, starts


def window_batches(stream: torch.Tensor, starts: torch.Tensor, batch_size: int, length: int,
                   generator: torch.Generator) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Endless (inputs, targets), each (batch_size, length), from windows that start at a document."""
    usable = starts[starts + length + 1 <= len(stream)]  # (n,)
    offsets = torch.arange(length + 1)  # (length + 1,)
    while True:
        chosen = usable[torch.randint(len(usable), (batch_size,), generator=generator)]  # (B,)
        windows = stream[chosen[:, None] + offsets]  # (B, length + 1)
        yield windows[:, :-1], windows[:, 1:]


def adamw(model: torch.nn.Module, config: TrainingConfig) -> torch.optim.AdamW:
    """The optimizer of the tiny GPT and the tiny encoder (its rate is set at every step by the schedule)."""
    return torch.optim.AdamW(model.parameters(), lr=config.learning_rate, betas=(0.9, 0.99),
                             weight_decay=config.weight_decay)


def corpus_hashes(data_dir: Path | None) -> dict[str, str]:
    """The sha256 of each corpus split's file, by file name."""
    return {str(spec["file"]): sha256(data_file(str(spec["file"]), data_dir)) for spec in SPLITS.values()}


