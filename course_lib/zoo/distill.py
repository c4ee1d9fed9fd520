"""Distilled students (`DISTILL_ZOO`, `train_student`): a small TinyGPT trained on the shipped tiny GPT.

- Teacher: the shipped ``tiny_gpt`` (`course_lib.zoo.gpt`), frozen; the student reads the teacher's
  tokenizer, so both score the same token ids.
- Student: a `course_lib.models.TinyGPT` half as wide with one layer fewer (about a quarter of the
  teacher's parameters), trained on the same windows of the course corpus as the teacher was
  (`course_lib.zoo.common.window_batches`, the same seed), for the same number of steps, on
  `course_lib.distillation.distillation_loss`: ``alpha = 0`` is plain next-token cross-entropy on
  the corpus (hard labels, no teacher), ``alpha = 1`` learns from the teacher's softened
  distribution alone (at ``temperature``), values in between mix the two. The students differ only
  in ``alpha`` and ``temperature``: same initial weights, same batches, same schedule.
- Quality, as for the teacher: every validation document scored whole, the student's total nats
  against the generator's exact total (``ratio``, >= 1 for any model), and the mean per-token
  KL(teacher || student) on the validation documents (``kl_to_teacher``).

Files per student ``name`` in ``data/zoo/``: ``name.safetensors`` and ``name.json`` (its card); the
tokenizer is the teacher's, ``tiny_gpt_tokenizer.json``. Load a student with `load_student`.

Left out: sequence-level distillation (training on the teacher's samples), matching hidden states
or attention maps, and students of another architecture or vocabulary.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import torch

from course_lib.checkpoints import checkpoint_paths, load_card, read_weights, write_checkpoint
from course_lib.datasets import load_corpus, load_generator, optimal_loss, sha256
from course_lib.distillation import distillation_loss
from course_lib.evaluation import document_nats, encode_document
from course_lib.models import TinyGPT, TinyGPTConfig
from course_lib.tokenization import BPETokenizer
from course_lib.training import TrainingConfig, deterministic, learning_rate, train_loop
from course_lib.validation import positive_number, probability, string
from course_lib.zoo.common import Recipe, adamw, corpus_hashes, token_stream, window_batches
from course_lib.zoo.gpt import load_tiny_gpt

__all__ = ["DISTILL_ZOO", "RECIPES", "DistillConfig", "kl_to_teacher", "load_student", "save_student",
           "train_student"]


@dataclass(frozen=True)
class DistillConfig(TrainingConfig):
    """A student's shape and training: what it learns from (``alpha``, ``temperature``) and for how long."""

    name: str = "student_hard"
    teacher: str = "tiny_gpt"
    d_model: int = 32
    n_heads: int = 2
    n_layers: int = 1
    d_ff: int | None = None
    alpha: float = 0.0
    temperature: float = 1.0
    steps: int = 2000
    learning_rate: float = 1e-2
    weight_decay: float = 0.0

    FIELD_ORDER = ("name", "teacher", "d_model", "n_heads", "n_layers", "d_ff", "alpha", "temperature",
                   "batch_size", "steps", "learning_rate", "warmup_steps", "final_lr_ratio", "weight_decay",
                   "seed", "threads")

    def __post_init__(self) -> None:
        super().__post_init__()
        string(self.teacher, "teacher")
        probability(self.alpha, "alpha")
        positive_number(self.temperature, "temperature")
        if not self.weight_decay >= 0:
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay!r}")

    def model_config(self, teacher: TinyGPTConfig) -> TinyGPTConfig:
        """The student's TinyGPT shape: the teacher's vocabulary and context, this config's width and depth."""
        return TinyGPTConfig(vocab_size=teacher.vocab_size, context_length=teacher.context_length,
                             d_model=self.d_model, n_heads=self.n_heads, n_layers=self.n_layers, d_ff=self.d_ff)


#: The shipped students, by name: the same student trained on the corpus's tokens or on the teacher.
DISTILL_ZOO: dict[str, DistillConfig] = {
    "student_hard": DistillConfig(name="student_hard", alpha=0.0),
    "student_soft": DistillConfig(name="student_soft", alpha=1.0),
}


@torch.no_grad()
def kl_to_teacher(student: TinyGPT, teacher: TinyGPT, tokenizer: BPETokenizer, documents: list[str]) -> float:
    """Mean per-token KL(teacher || student) in nats over ``documents``, each scored whole as in `document_nats`."""
    total, tokens = 0.0, 0
    for document in documents:
        ids = torch.tensor([encode_document(tokenizer, document)[:-1]])  # (1, L)
        log_p = torch.log_softmax(teacher(ids).double(), dim=-1)  # (1, L, V)
        log_q = torch.log_softmax(student(ids).double(), dim=-1)  # (1, L, V)
        total += float((log_p.exp() * (log_p - log_q)).sum())
        tokens += ids.shape[1]
    return total / tokens


def train_student(config: DistillConfig = DISTILL_ZOO["student_hard"], progress: bool = True,
                  data_dir: Path | None = None) -> tuple[TinyGPT, None, dict[str, object]]:
    """Train a student on the CPU; returns (model, None, metrics).

    metrics: ``val_nats`` and ``generator_nats`` (totals over the validation documents) and their
    quotient ``ratio``, per document too; the teacher's ``teacher_val_nats`` and ``teacher_ratio``
    on the same documents; ``kl_to_teacher`` (nats per token); ``parameters`` and
    ``teacher_parameters``; ``steps``, ``tokens_seen``, ``final_train_loss`` (the training
    objective, last 50 steps), ``train_seconds``, ``train_cpu_seconds``, ``threads``, and the sha256
    of the corpus files and of the teacher's weights and tokenizer.
    """
    if not isinstance(config, DistillConfig):
        raise TypeError(f"config must be a DistillConfig, got {config!r}")
    teacher_dir = None if data_dir is None else Path(data_dir) / "zoo"
    teacher, tokenizer = load_tiny_gpt(config.teacher, teacher_dir)
    teacher.requires_grad_(False)
    train_docs, val_docs = load_corpus("train", data_dir), load_corpus("val", data_dir)
    with deterministic(config.threads):
        start, start_cpu = time.perf_counter(), time.process_time()
        stream, starts = token_stream(tokenizer, train_docs)
        torch.manual_seed(config.seed)
        model = TinyGPT(config.model_config(teacher.config))
        batches = window_batches(stream, starts, config.batch_size, teacher.context_length,
                                 torch.Generator().manual_seed(config.seed))

        def step_losses(step: int) -> dict[str, torch.Tensor]:
            inputs, targets = next(batches)  # (B, T), (B, T)
            logits = model(inputs)  # (B, T, V)
            if config.alpha == 0:  # hard labels only: the teacher is not consulted
                return {"loss": torch.nn.functional.cross_entropy(logits.flatten(0, 1), targets.flatten())}
            with torch.no_grad():
                teacher_logits = teacher(inputs)  # (B, T, V)
            hard = None if config.alpha == 1 else targets
            return {"loss": distillation_loss(logits, teacher_logits, hard, config.temperature, config.alpha)}

        losses = train_loop(model, adamw(model, config), step_losses, config.steps,
                            lambda step: learning_rate(step, config), progress=progress,
                            desc=f"training {config.name}")["loss"]
        train_seconds, train_cpu_seconds = time.perf_counter() - start, time.process_time() - start_cpu
        val_nats = float(document_nats(model, tokenizer, val_docs).sum())
        teacher_nats = float(document_nats(teacher, tokenizer, val_docs).sum())
        kl = kl_to_teacher(model, teacher, tokenizer, val_docs)
    generator_nats = optimal_loss(val_docs, load_generator(data_dir)).nats_per_document * len(val_docs)
    paths = checkpoint_paths(config.teacher, teacher_dir)
    metrics = {
        "val_nats": val_nats,
        "generator_nats": generator_nats,
        "ratio": val_nats / generator_nats,
        "val_nats_per_document": val_nats / len(val_docs),
        "generator_nats_per_document": generator_nats / len(val_docs),
        "teacher_val_nats": teacher_nats,
        "teacher_ratio": teacher_nats / generator_nats,
        "kl_to_teacher": kl,
        "val_documents": len(val_docs),
        "parameters": model.num_parameters(),
        "teacher_parameters": teacher.num_parameters(),
        "steps": config.steps,
        "tokens_seen": config.steps * config.batch_size * teacher.context_length,
        "final_train_loss": sum(losses[-50:]) / len(losses[-50:]),
        "train_seconds": train_seconds,
        "train_cpu_seconds": train_cpu_seconds,
        "threads": config.threads,
        "corpus_sha256": corpus_hashes(data_dir),
        "teacher_sha256": {path.name: sha256(path) for key, path in paths.items() if key != "card"},
    }
    return model, None, metrics


def save_student(model: TinyGPT, extra: None, config: DistillConfig, metrics: dict[str, object],
                 zoo_dir: Path | None = None) -> dict[str, Path]:
    """Write the student's weights and card (into ``zoo_dir``, default data/zoo/); returns their paths."""
    return write_checkpoint(model, config, metrics, zoo_dir)


def load_student(name: str = "student_soft", zoo_dir: Path | None = None,
                 device: torch.device | str | None = None) -> tuple[TinyGPT, BPETokenizer]:
    """Load student ``name`` (safetensors, eval mode) with its teacher's tokenizer (from the same folder)."""
    card = load_card(name, zoo_dir)
    model = read_weights(TinyGPT(TinyGPTConfig(**card["model"])), name, zoo_dir, device)
    teacher = card["training"]["teacher"]
    return model, BPETokenizer.load(checkpoint_paths(teacher, zoo_dir)["tokenizer"])


#: How ``python -m course_lib.zoo --retrain`` makes each student.
RECIPES: dict[str, Recipe] = {name: Recipe(config, train_student, save_student) for name, config in DISTILL_ZOO.items()}
