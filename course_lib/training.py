"""The pieces of a training loop that every course model shares.

`optimizer_step` is one update: set the learning rate, clear old gradients, backpropagate the loss,
optionally clip the gradient norm, step the optimizer. The zoo's trainers and the sequence-to-sequence
`fit` call it, so the update is written once. Left out: schedules (each trainer passes the rate it
computed), gradient accumulation, mixed precision and distributed training.
"""

from __future__ import annotations

import math

import torch


def optimizer_step(optimizer: torch.optim.Optimizer, loss: torch.Tensor, lr: float,
                   grad_clip: float | None = None) -> None:
    """Apply one update of ``optimizer`` for the scalar ``loss`` at learning rate ``lr``.

    With ``grad_clip``, the global gradient norm of the optimizer's parameters is clipped to it first.
    A NaN or infinite loss raises instead of writing NaN into every weight.
    """
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise ValueError(f"optimizer must be a torch.optim.Optimizer, got {type(optimizer).__name__}")
    if not isinstance(loss, torch.Tensor) or loss.ndim != 0:
        raise ValueError(f"loss must be a scalar tensor, got {loss!r}")
    if not bool(torch.isfinite(loss)):
        raise ValueError(f"loss must be finite, got {loss.item()}")
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not 0 <= lr < math.inf:
        raise ValueError(f"lr must be a number in [0, inf), got {lr!r}")  # a schedule may end at 0
    if grad_clip is not None and not grad_clip > 0:
        raise ValueError(f"grad_clip must be > 0 or None, got {grad_clip!r}")
    for group in optimizer.param_groups:
        group["lr"] = lr
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if grad_clip is not None:
        params = [p for group in optimizer.param_groups for p in group["params"]]
        torch.nn.utils.clip_grad_norm_(params, grad_clip)
    optimizer.step()
