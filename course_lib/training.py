"""The training loop every course model shares, and what goes with it: the learning-rate schedule,
the determinism switch and the fields every training configuration has.

`optimizer_step` is one update: set the learning rate, clear old gradients, backpropagate the loss,
optionally clip the gradient norm, step the optimizer. `train_loop` repeats it: at every step a
function of the step returns the named losses of a fresh batch (drawing that batch is its own
business), the update minimises their sum, and each loss is recorded. The zoo's recipes (tiny GPT,
encoder-decoders, tiny encoder, `course_lib.zoo`) and the sequence-to-sequence `fit` all run it, so
the loop is written once.

`learning_rate` is the schedule of the zoo's recipes: linear warm-up, then cosine decay to a floor.
`TrainingConfig` holds what every recipe's config has (a name, the batch size, the steps, the
schedule, a seed, a thread count) and checks it; each recipe's config adds its own fields.
`deterministic` fixes the thread count and switches on PyTorch's deterministic algorithms, so a run
on the same machine reproduces its weights bit for bit (another CPU may round differently).

Left out: gradient accumulation, mixed precision, distributed training, early stopping,
checkpointing during training and schedules other than warm-up plus cosine.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from typing import ClassVar

import torch
from tqdm.auto import tqdm

from course_lib.validation import module, nonnegative_number, positive_int, positive_number, tensor, type_name

__all__ = ["TrainingConfig", "deterministic", "learning_rate", "optimizer_step", "train_loop"]


@dataclass(frozen=True)
class TrainingConfig:
    """What every training recipe's config has: a name, sizes, a warm-up plus cosine schedule, a seed.

    Subclasses (the zoo's recipes) add their model's shape and their data's settings, and list
    their fields in `FIELD_ORDER`, the order `to_dict` writes them in.
    """

    name: str = "model"
    batch_size: int = 32
    steps: int = 1000
    learning_rate: float = 1e-3
    warmup_steps: int = 100
    final_lr_ratio: float = 0.0
    seed: int = 0
    threads: int = 1

    #: The order of the fields in `to_dict` (and so in a checkpoint's card); fields it leaves out
    #: follow in declaration order.
    FIELD_ORDER: ClassVar[tuple[str, ...]] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.isidentifier():
            raise ValueError(f"name must be an identifier-like string, got {self.name!r}")
        for field in ("batch_size", "steps", "threads"):
            positive_int(getattr(self, field), field)
        if (isinstance(self.warmup_steps, bool) or not isinstance(self.warmup_steps, int)
                or not 0 <= self.warmup_steps < self.steps):
            raise ValueError(f"warmup_steps must be in [0, steps={self.steps}), got {self.warmup_steps!r}")
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be > 0, got {self.learning_rate!r}")
        if not 0 <= self.final_lr_ratio <= 1:
            raise ValueError(f"final_lr_ratio must be in [0, 1], got {self.final_lr_ratio!r}")

    def to_dict(self) -> dict[str, object]:
        """The config as plain JSON-able values, its fields in `FIELD_ORDER`."""
        values = asdict(self)
        order = [name for name in self.FIELD_ORDER if name in values]
        return {name: values[name] for name in order + [name for name in values if name not in order]}


def learning_rate(step: int, config: TrainingConfig) -> float:
    """Linear warm-up to ``learning_rate``, then cosine decay to ``final_lr_ratio * learning_rate``.

    ``step`` counts from 0 and must be below ``config.steps`` (past it the cosine would rise again).
    """
    if isinstance(step, bool) or not isinstance(step, int) or not 0 <= step < config.steps:
        raise ValueError(f"step must be an int in [0, steps={config.steps}), got {step!r}")
    if step < config.warmup_steps:
        return config.learning_rate * (step + 1) / config.warmup_steps
    progress = (step - config.warmup_steps) / max(1, config.steps - 1 - config.warmup_steps)
    floor = config.final_lr_ratio
    return config.learning_rate * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress)))


@contextlib.contextmanager
def deterministic(threads: int) -> Iterator[None]:
    """Fixed thread count and deterministic algorithms inside, the previous settings restored after."""
    threads = positive_int(threads, "threads")
    old_threads, old_mode = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.set_num_threads(old_threads)
        torch.use_deterministic_algorithms(old_mode)

def optimizer_step(optimizer: torch.optim.Optimizer, loss: torch.Tensor, lr: float,
                   grad_clip: float | None = None) -> None:
    """Apply one update of ``optimizer`` for the scalar ``loss`` at learning rate ``lr``.

    With ``grad_clip``, the global gradient norm of the optimizer's parameters is clipped to it first.
    A NaN or infinite loss raises instead of writing NaN into every weight.
    """
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise TypeError(f"optimizer must be a torch.optim.Optimizer, got {type_name(optimizer)}")
    if tensor(loss, "loss").ndim != 0:
        raise ValueError(f"loss must be a scalar tensor, got shape {tuple(loss.shape)}")
    if not bool(torch.isfinite(loss)):
        raise ValueError(f"loss must be finite, got {loss.item()}")
    lr = nonnegative_number(lr, "lr")  # a schedule may end at 0
    if grad_clip is not None:
        grad_clip = positive_number(grad_clip, "grad_clip")
    for group in optimizer.param_groups:
        group["lr"] = lr
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if grad_clip is not None:
        params = [p for group in optimizer.param_groups for p in group["params"]]
        torch.nn.utils.clip_grad_norm_(params, grad_clip)
    optimizer.step()


def train_loop(model: torch.nn.Module, optimizer: torch.optim.Optimizer,
               step_losses: Callable[[int], dict[str, torch.Tensor]], steps: int,
               lr: Callable[[int], float], grad_clip: float | None = None, progress: bool = False,
               desc: str = "training") -> dict[str, list[float]]:
    """Train ``model`` for ``steps`` updates; returns every named loss of every step (floats).

    ``step_losses(step)`` draws step ``step``'s batch and returns its named scalar losses, e.g.
    ``{"loss": ...}`` or ``{"mlm": ..., "pair": ...}``; the update (`optimizer_step` at rate
    ``lr(step)``, gradients clipped to ``grad_clip``) minimises their sum. The model is in training
    mode during the loop and in eval mode after it. ``progress`` shows a bar named ``desc``.
    """
    module(model, "model")
    steps = positive_int(steps, "steps")
    if not callable(step_losses) or not callable(lr):
        raise TypeError(f"step_losses and lr must be functions of the step, got {step_losses!r} and {lr!r}")
    history: dict[str, list[float]] = {}
    model.train()
    bar = tqdm(range(steps), desc=desc, disable=not progress, mininterval=1.0)
    for step in bar:
        losses = step_losses(step)
        if not isinstance(losses, dict) or not losses:
            raise TypeError(f"step_losses must return a non-empty dict of named losses, got {losses!r:.80}")
        first, *rest = losses.values()
        optimizer_step(optimizer, sum(rest, first), lr(step), grad_clip)  # sum(rest, first): no "0 +"
        for name, loss in losses.items():
            history.setdefault(name, []).append(loss.item())
        if step % 50 == 0:
            bar.set_postfix({name: f"{values[-1]:.3f}" for name, values in history.items()})
    model.eval()
    return history
