"""Two tiny GPTs for chains of additions, one answering directly, one through a scratchpad (`ARITHMETIC_ZOO`).

Both are the same `course_lib.models.TinyGPT` (2 layers, width 64, 4 heads, the same parameters),
trained with the same seed, batch size, schedule and number of steps on fresh batches of
`course_lib.arithmetic.ChainSum` (2 to 6 digits added modulo 10). They differ in one thing only, the
completion they are trained to write: the answer alone (``chain_sum_direct``) or the running sums
first (``chain_sum_scratchpad``, Nye et al. 2021). The scratchpad's completions are longer, so that
model is trained on more target characters per step: the card records both counts
(``target_tokens_seen``).

Each card records greedy accuracy of the final answer for every size (300 seeded problems each,
`course_lib.arithmetic.accuracy_by_size`); chance is 10%. No data file is read: every batch is drawn
from the seeded generator. Files: ``name.safetensors`` and ``name.json`` (the card holds the task;
the character tokenizer is fixed by `course_lib.arithmetic.ALPHABET`). Load them with `load_chain_sum`.

Left out: other sizes of model or chain (the configuration below is the one measured), and training
on a mix of both formats.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch

from course_lib.arithmetic import IGNORE_INDEX, ChainSum, accuracy_by_size
from course_lib.checkpoints import checkpoint_paths, load_card, read_weights, write_checkpoint
from course_lib.models import TinyGPT, TinyGPTConfig
from course_lib.training import TrainingConfig, deterministic, learning_rate, train_loop
from course_lib.validation import boolean, positive_int
from course_lib.zoo.common import Recipe, adamw

__all__ = ["ARITHMETIC_ZOO", "ArithmeticTrainConfig", "RECIPES", "load_chain_sum", "save_chain_sum",
           "train_chain_sum"]


@dataclass(frozen=True)
class ArithmeticTrainConfig(TrainingConfig):
    """A TinyGPT trained on `ChainSum` in one completion format; its card scores every size."""

    name: str = "chain_sum_direct"
    scratchpad: bool = False
    min_terms: int = 2
    max_terms: int = 6
    d_model: int = 64
    n_heads: int = 4
    n_layers: int = 2
    batch_size: int = 32
    steps: int = 4000
    learning_rate: float = 3e-3
    weight_decay: float = 0.0
    eval_problems: int = 300
    eval_seed: int = 1000

    FIELD_ORDER = ("name", "scratchpad", "min_terms", "max_terms", "d_model", "n_heads", "n_layers", "batch_size",
                   "steps", "learning_rate", "warmup_steps", "final_lr_ratio", "weight_decay", "eval_problems",
                   "seed", "eval_seed", "threads")

    def __post_init__(self) -> None:
        super().__post_init__()
        boolean(self.scratchpad, "scratchpad")
        positive_int(self.eval_problems, "eval_problems")
        if not self.weight_decay >= 0:
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay!r}")
        self.model_config(self.task())  # the task's and the model's own checks, before any training

    def task(self) -> ChainSum:
        """The task this model is trained on."""
        return ChainSum(self.scratchpad, self.min_terms, self.max_terms)

    def model_config(self, task: ChainSum) -> TinyGPTConfig:
        """The TinyGPT shape for ``task``: its alphabet, and room for the longest scratchpad sequence
        (in both formats, so that the two models have the same parameters). Decoding checks that the
        prompt and every generated character fit, so the table has a row for the last one too."""
        longest = replace(task, scratchpad=True).sequence_length
        return TinyGPTConfig(vocab_size=task.tokenizer.vocab_size, context_length=longest,
                             d_model=self.d_model, n_heads=self.n_heads, n_layers=self.n_layers)


#: The shipped pair: the same model and training, without and with the scratchpad.
ARITHMETIC_ZOO: dict[str, ArithmeticTrainConfig] = {
    "chain_sum_direct": ArithmeticTrainConfig(),
    "chain_sum_scratchpad": ArithmeticTrainConfig(name="chain_sum_scratchpad", scratchpad=True),
}


def train_chain_sum(config: ArithmeticTrainConfig = ARITHMETIC_ZOO["chain_sum_scratchpad"], progress: bool = True,
                    data_dir: Path | None = None) -> tuple[TinyGPT, ChainSum, dict[str, object]]:
    """Train a TinyGPT on chains of additions on the CPU; returns (model, task, metrics).

    metrics: ``accuracy_by_size`` (number of terms, as a string, -> greedy accuracy of the final
    answer on ``eval_problems`` seeded problems), ``final_train_loss`` (nats per target character,
    last 100 steps), ``parameters``, ``steps``, ``target_tokens_seen`` (characters the loss was
    taken on), ``train_seconds``, ``train_cpu_seconds`` (see `course_lib.zoo.gpt.train_tiny_gpt`)
    and ``threads``. ``data_dir`` is accepted for the zoo's common signature; nothing is read.
    """
    if not isinstance(config, ArithmeticTrainConfig):
        raise ValueError(f"config must be an ArithmeticTrainConfig, got {config!r}")
    task = config.task()
    with deterministic(config.threads):
        start, start_cpu = time.perf_counter(), time.process_time()
        torch.manual_seed(config.seed)
        model = TinyGPT(config.model_config(task))
        generator = torch.Generator().manual_seed(config.seed)
        seen = [0]

        def step_losses(step: int) -> dict[str, torch.Tensor]:
            inputs, targets = task.batch(config.batch_size, generator)  # (B, T), (B, T)
            seen[0] += int((targets != IGNORE_INDEX).sum())
            logits = model(inputs)  # (B, T, V)
            return {"loss": torch.nn.functional.cross_entropy(logits.flatten(0, 1), targets.flatten(),
                                                              ignore_index=IGNORE_INDEX)}

        losses = train_loop(model, adamw(model, config), step_losses, config.steps,
                            lambda step: learning_rate(step, config), progress=progress,
                            desc=f"training {config.name}")["loss"]
        train_seconds, train_cpu_seconds = time.perf_counter() - start, time.process_time() - start_cpu
        accuracy = accuracy_by_size(model, task, config.eval_problems, config.eval_seed)
    metrics = {
        "accuracy_by_size": {str(size): value for size, value in accuracy.items()},
        "final_train_loss": sum(losses[-100:]) / len(losses[-100:]),
        "parameters": model.num_parameters(),
        "steps": config.steps,
        "target_tokens_seen": seen[0],
        "train_seconds": train_seconds,
        "train_cpu_seconds": train_cpu_seconds,
        "threads": config.threads,
    }
    return model, task, metrics


def save_chain_sum(model: TinyGPT, task: ChainSum, config: ArithmeticTrainConfig, metrics: dict[str, object],
                   zoo_dir: Path | None = None) -> dict[str, Path]:
    """Write the weights and the card (configs, the task, metrics); returns their paths."""
    return write_checkpoint(model, config, metrics, zoo_dir, task=asdict(task))


def load_chain_sum(name: str = "chain_sum_scratchpad", zoo_dir: Path | None = None,
                   device: torch.device | str | None = None) -> tuple[TinyGPT, ChainSum]:
    """Load chain-sum model ``name`` (safetensors: no pickle) in eval mode, with its task."""
    card = load_card(name, zoo_dir)
    if "task" not in card or "scratchpad" not in card["task"]:
        raise ValueError(f"name must be a chain-sum model in {checkpoint_paths(name, zoo_dir)['card'].parent} "
                         f"(its card holds the task), got {name!r}")
    model = read_weights(TinyGPT(TinyGPTConfig(**card["model"])), name, zoo_dir, device)
    return model, ChainSum(**card["task"])


#: How ``python -m course_lib.zoo --retrain`` makes each of them.
RECIPES: dict[str, Recipe] = {name: Recipe(config, train_chain_sum, save_chain_sum)
                              for name, config in ARITHMETIC_ZOO.items()}
