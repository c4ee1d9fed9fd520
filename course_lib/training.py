"""The pieces of a training loop that every course model shares.

`optimizer_step` is one update: set the learning rate, clear old gradients, backpropagate the loss,
optionally clip the gradient norm, step the optimizer. The zoo's trainers and the sequence-to-sequence
`fit` call it, so the update is written once. Left out: schedules (each trainer passes the rate it
computed), gradient accumulation, mixed precision and distributed training.
"""

from __future__ import annotations

import torch

from course_lib.validation import nonnegative_number, positive_number, tensor, type_name

__all__ = ["optimizer_step"]


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
