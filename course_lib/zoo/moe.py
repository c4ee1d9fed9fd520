"""A mixture-of-experts tiny GPT (`MOE_ZOO`, `train_moe_gpt`): the shipped tiny GPT's recipe with MoE layers.

- Model: `course_lib.moe.MoEGPT`, the tiny GPT's shape (2 layers, width 64) with each block's MLP
  (hidden width 256) replaced by 8 experts of hidden width 128, 2 per token. Per token it computes
  with as many parameters as the shipped ``tiny_gpt`` (2 x 128 = 256 hidden units, plus a router),
  and it holds about 2.5 times as many: ``tiny_gpt`` is its dense twin of equal active parameters.
- Training: exactly the ``tiny_gpt`` recipe (`course_lib.zoo.gpt`: the same tokenizer, read from the
  shipped ``tiny_gpt_tokenizer.json``, the same seeded windows, steps, learning rate and schedule),
  plus Switch Transformer's load-balancing loss (`course_lib.moe.load_balancing_loss`, top_k = 2)
  of every layer, weighted by ``balance_weight`` (0.01 as in Fedus et al. 2022, section 2.2);
  ``moe_gpt_unbalanced`` is the same model trained without it (weight 0), to show what it prevents.
- Quality: the tiny GPT's measure (every validation document whole, the model's total nats over
  the generator's exact total: ``ratio``), the share of token-assignments each expert of each layer
  receives on the validation documents (``expert_load``) and the final auxiliary loss.

Files per model ``name`` in ``data/zoo/``: ``name.safetensors`` and ``name.json``; the tokenizer
is ``tiny_gpt_tokenizer.json``. Load with `load_moe_gpt`.

Left out: capacity limits during training (no token is dropped: one device holds every expert),
router z-loss and noise, and MoE models of other shapes.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import torch

from course_lib.checkpoints import checkpoint_paths, load_card, read_weights, write_checkpoint
from course_lib.datasets import load_corpus, load_generator, optimal_loss, sha256
from course_lib.evaluation import document_nats, encode_document
from course_lib.moe import MoEGPT, MoEGPTConfig, load_balancing_loss, parameter_counts
from course_lib.tokenization import BPETokenizer
from course_lib.training import TrainingConfig, deterministic, learning_rate, train_loop
from course_lib.validation import nonnegative_number, string
from course_lib.zoo.common import Recipe, adamw, corpus_hashes, token_stream, window_batches

__all__ = ["MOE_ZOO", "RECIPES", "MoETrainConfig", "expert_load", "load_moe_gpt", "save_moe_gpt", "train_moe_gpt"]


@dataclass(frozen=True)
class MoETrainConfig(TrainingConfig):
    """The MoE model's shape and its training (the tiny GPT's, plus the balance weight)."""

    name: str = "moe_gpt"
    tokenizer: str = "tiny_gpt"
    context_length: int = 64
    d_model: int = 64
    n_heads: int = 4
    n_layers: int = 2
    n_experts: int = 8
    top_k: int = 2
    expert_d_ff: int = 128
    balance_weight: float = 0.01
    steps: int = 2000
    learning_rate: float = 1e-2
    weight_decay: float = 0.0

    FIELD_ORDER = ("name", "tokenizer", "context_length", "d_model", "n_heads", "n_layers", "n_experts", "top_k",
                   "expert_d_ff", "balance_weight", "batch_size", "steps", "learning_rate", "warmup_steps",
                   "final_lr_ratio", "weight_decay", "seed", "threads")

    def __post_init__(self) -> None:
        super().__post_init__()
        string(self.tokenizer, "tokenizer")
        nonnegative_number(self.balance_weight, "balance_weight")
        nonnegative_number(self.weight_decay, "weight_decay")
        self.model_config(512)  # the model's own checks, before any training

    def model_config(self, vocab_size: int) -> MoEGPTConfig:
        """The MoEGPT shape for a tokenizer of ``vocab_size`` ids."""
        return MoEGPTConfig(vocab_size=vocab_size, context_length=self.context_length, d_model=self.d_model,
                            n_heads=self.n_heads, n_layers=self.n_layers, n_experts=self.n_experts,
                            top_k=self.top_k, expert_d_ff=self.expert_d_ff)


#: The shipped MoE models: with Switch's load-balancing loss, and the same without it.
MOE_ZOO: dict[str, MoETrainConfig] = {
    "moe_gpt": MoETrainConfig(),
    "moe_gpt_unbalanced": MoETrainConfig(name="moe_gpt_unbalanced", balance_weight=0.0),
}


@torch.no_grad()
def expert_load(model: MoEGPT, tokenizer: BPETokenizer, documents: list[str]) -> list[list[float]]:
    """Per layer, the share of token-assignments each expert receives over ``documents`` (each row sums to 1)."""
    counts = torch.zeros(len(model.moe_layers()), model.config.n_experts, dtype=torch.float64)  # (L, E)
    for document in documents:
        model(torch.tensor([encode_document(tokenizer, document)[:-1]]))
        for layer, logits in enumerate(model.router_logits()):
            experts = logits.topk(model.config.top_k, dim=-1).indices  # (tokens, k)
            counts[layer] += torch.bincount(experts.flatten(), minlength=model.config.n_experts)
    return (counts / counts.sum(-1, keepdim=True)).tolist()


def train_moe_gpt(config: MoETrainConfig = MOE_ZOO["moe_gpt"], progress: bool = True,
                  data_dir: Path | None = None) -> tuple[MoEGPT, None, dict[str, object]]:
    """Train the MoE tiny GPT on the CPU; returns (model, None, metrics).

    metrics: ``val_nats``, ``generator_nats``, ``ratio`` (as for the tiny GPT), ``expert_load``
    (per layer, each expert's share of assignments on the validation documents),
    ``final_train_loss`` (next-token loss, last 50 steps), ``final_balance_loss`` (the auxiliary
    loss summed over layers, last 50 steps: 2 per layer when perfectly balanced),
    ``parameters`` (total) and ``active_parameters`` (per token), ``steps``, ``tokens_seen``,
    ``train_seconds``, ``train_cpu_seconds``, ``threads``, and the sha256 of the corpus files and
    of the tokenizer file.
    """
    if not isinstance(config, MoETrainConfig):
        raise TypeError(f"config must be a MoETrainConfig, got {config!r}")
    zoo_dir = None if data_dir is None else Path(data_dir) / "zoo"
    tokenizer_path = checkpoint_paths(config.tokenizer, zoo_dir)["tokenizer"]
    tokenizer = BPETokenizer.load(tokenizer_path)
    train_docs, val_docs = load_corpus("train", data_dir), load_corpus("val", data_dir)
    with deterministic(config.threads):
        start, start_cpu = time.perf_counter(), time.process_time()
        stream, starts = token_stream(tokenizer, train_docs)
        torch.manual_seed(config.seed)
        model = MoEGPT(config.model_config(tokenizer.vocab_size))
        batches = window_batches(stream, starts, config.batch_size, config.context_length,
                                 torch.Generator().manual_seed(config.seed))

        def step_losses(step: int) -> dict[str, torch.Tensor]:
            inputs, targets = next(batches)  # (B, T), (B, T)
            logits = model(inputs)  # (B, T, V)
            balance = sum(load_balancing_loss(x, config.top_k) for x in model.router_logits())
            return {"loss": torch.nn.functional.cross_entropy(logits.flatten(0, 1), targets.flatten()),
                    "balance": config.balance_weight * balance}

        history = train_loop(model, adamw(model, config), step_losses, config.steps,
                             lambda step: learning_rate(step, config), progress=progress,
                             desc=f"training {config.name}")
        train_seconds, train_cpu_seconds = time.perf_counter() - start, time.process_time() - start_cpu
        val_nats = float(document_nats(model, tokenizer, val_docs).sum())
        load = expert_load(model, tokenizer, val_docs)
    generator_nats = optimal_loss(val_docs, load_generator(data_dir)).nats_per_document * len(val_docs)
    counts = parameter_counts(model)
    metrics = {
        "val_nats": val_nats,
        "generator_nats": generator_nats,
        "ratio": val_nats / generator_nats,
        "val_nats_per_document": val_nats / len(val_docs),
        "generator_nats_per_document": generator_nats / len(val_docs),
        "val_documents": len(val_docs),
        "expert_load": load,
        "final_train_loss": sum(history["loss"][-50:]) / len(history["loss"][-50:]),
        "final_balance_loss": (sum(history["balance"][-50:]) / len(history["balance"][-50:]) / config.balance_weight
                               if config.balance_weight else None),
        "parameters": counts.total,
        "active_parameters": counts.active,
        "steps": config.steps,
        "tokens_seen": config.steps * config.batch_size * config.context_length,
        "train_seconds": train_seconds,
        "train_cpu_seconds": train_cpu_seconds,
        "threads": config.threads,
        "corpus_sha256": corpus_hashes(data_dir),
        "tokenizer_sha256": {tokenizer_path.name: sha256(tokenizer_path)},
    }
    return model, None, metrics


def save_moe_gpt(model: MoEGPT, extra: None, config: MoETrainConfig, metrics: dict[str, object],
                 zoo_dir: Path | None = None) -> dict[str, Path]:
    """Write the weights and the card (into ``zoo_dir``, default data/zoo/); returns their paths."""
    return write_checkpoint(model, config, metrics, zoo_dir)


def load_moe_gpt(name: str = "moe_gpt", zoo_dir: Path | None = None,
                 device: torch.device | str | None = None) -> tuple[MoEGPT, BPETokenizer]:
    """Load MoE model ``name`` (safetensors, eval mode) with its tokenizer (from the same folder)."""
    card = load_card(name, zoo_dir)
    model = read_weights(MoEGPT(MoEGPTConfig(**card["model"])), name, zoo_dir, device)
    return model, BPETokenizer.load(checkpoint_paths(card["training"]["tokenizer"], zoo_dir)["tokenizer"])


#: How ``python -m course_lib.zoo --retrain`` makes it.
RECIPES: dict[str, Recipe] = {name: Recipe(config, train_moe_gpt, save_moe_gpt) for name, config in MOE_ZOO.items()}
