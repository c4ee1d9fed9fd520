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

Left out: GPU training (the point is a laptop), checkpoint averaging, hyper-parameter search (the
chosen configuration is in `ZOO`), and any model beyond the TinyGPT family.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterator, Sequence

import safetensors.torch
import torch
from tqdm.auto import tqdm

from course_lib.datasets import DATA_DIR, SPLITS, load_corpus, load_generator, optimal_loss, sha256
from course_lib.models import TinyGPT, TinyGPTConfig
from course_lib.tokenization import BPETokenizer

ZOO_DIR = DATA_DIR / "zoo"
NEWLINE = "\n"


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
        if not isinstance(self.name, str) or not self.name.isidentifier():
            raise ValueError(f"name must be an identifier-like string, got {self.name!r}")
        for field in ("tokenizer_vocab_size", "batch_size", "steps", "threads"):
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{field} must be a positive int, got {value!r}")
        if not 0 <= self.warmup_steps < self.steps:
            raise ValueError(f"warmup_steps must be in [0, steps={self.steps}), got {self.warmup_steps!r}")
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be > 0, got {self.learning_rate!r}")
        if not 0 <= self.final_lr_ratio <= 1:
            raise ValueError(f"final_lr_ratio must be in [0, 1], got {self.final_lr_ratio!r}")

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
    if not documents:
        raise ValueError("documents must not be empty")
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


def learning_rate(step: int, config: TrainConfig) -> float:
    """Linear warm-up to ``learning_rate``, then cosine decay to ``final_lr_ratio * learning_rate``."""
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
            for group in optimizer.param_groups:
                group["lr"] = learning_rate(step, config)
            logits = model(inputs)  # (B, T, V)
            loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), targets.flatten())
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
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


def save_tiny_gpt(model: TinyGPT, tokenizer: BPETokenizer, config: TrainConfig, metrics: dict[str, object],
                  zoo_dir: Path = ZOO_DIR) -> dict[str, Path]:
    """Write the checkpoint's three files; returns their paths."""
    paths = checkpoint_paths(config.name, zoo_dir)
    Path(zoo_dir).mkdir(parents=True, exist_ok=True)
    safetensors.torch.save_model(model, str(paths["weights"]))  # the tied table is stored once
    tokenizer.save(paths["tokenizer"])
    card = {"model": model.config.to_dict(), "training": asdict(config), "metrics": metrics}
    paths["card"].write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
    return paths


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
    paths = checkpoint_paths(name, zoo_dir)
    model = TinyGPT(TinyGPTConfig(**card["model"]))
    safetensors.torch.load_model(model, str(paths["weights"]), device="cpu")
    return model.to(device or "cpu").eval(), BPETokenizer.load(paths["tokenizer"])


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m course_lib.zoo --retrain [--name NAME]``: retrain and rewrite checkpoints."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--retrain", action="store_true", help="train and overwrite the checkpoint(s)")
    parser.add_argument("--name", choices=sorted(ZOO), help="only this model (default: all)")
    args = parser.parse_args(argv)
    if not args.retrain:
        parser.error("nothing to do: pass --retrain")
    for name in [args.name] if args.name else sorted(ZOO):
        model, tokenizer, metrics = train_tiny_gpt(ZOO[name])
        paths = save_tiny_gpt(model, tokenizer, ZOO[name], metrics)
        print(json.dumps(metrics, indent=2))
        for path in paths.values():
            print(f"{path.relative_to(DATA_DIR.parent)}  {path.stat().st_size} bytes  sha256 {sha256(path)}")


if __name__ == "__main__":
    main()
