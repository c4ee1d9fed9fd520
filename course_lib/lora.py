"""LoRA: fine-tuning a frozen linear layer through a trainable low-rank update.

Low-Rank Adaptation (Hu et al. 2021, section 4.1) keeps a pretrained weight ``W`` (out, in) frozen
and learns ``Delta W = B A`` with ``A`` (r, in) and ``B`` (out, r), r much smaller than in and out::

    y = base(x) + (alpha / r) * dropout(x) @ A^T @ B^T

``A`` starts random and ``B`` at zero, so ``Delta W = 0`` and a fresh adapter changes nothing; the
scale ``alpha / r`` keeps the size of the update comparable when r changes. An adapted matrix
*adds* ``r * (in + out)`` trainable parameters; only the adapter and its optimizer states are
trained and stored per task. Unmerged, every call pays two extra thin matmuls; `LoRALinear.merge`
folds ``(alpha / r) B A`` into ``W``, after which the layer is one matmul of the base's shape, with
no extra size or latency. Because the base weights are never touched while unmerged, removing the
adapter (`remove_lora`) gives back the base model exactly.

- `LoRALinear(base, r, alpha, dropout)`: the adapted layer; ``merge()``, ``unmerge()``, an
  ``enabled`` switch, ``delta_weight()``.
- `add_lora(model, r, alpha, targets)`: wrap the ``nn.Linear`` modules named in ``targets`` and
  freeze everything else; `remove_lora(model)` puts the base modules back.
- `parameter_counts(model)` (trainable vs total) and `lora_parameter_count(in, out, r)`.

Left out: LoRA on embeddings and convolutions, several adapters per layer, rsLoRA's ``alpha/sqrt(r)``
scale, DoRA, PiSSA and other initialisations, quantized bases (QLoRA's NF4 storage is in
`course_lib.quantization`), and saving adapters separately from the model.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import NamedTuple

import torch
from torch import nn

from course_lib.validation import (
    module,
    number_in_range,
    positive_int,
    positive_number,
    type_name,
)

__all__ = [
    "LoRALinear",
    "ParameterCounts",
    "add_lora",
    "lora_parameter_count",
    "parameter_counts",
    "remove_lora",
]


class LoRALinear(nn.Module):
    """A frozen ``nn.Linear`` plus a trainable low-rank update ``(alpha / r) B A``.

    ``lora_A`` (r, in_features) is initialised like an ``nn.Linear`` weight (Kaiming-uniform, as
    PEFT and the LoRA reference code do; the paper, section 4.1, says random Gaussian) and
    ``lora_B`` (out_features, r) to zero, so the output starts equal to the base's, bit for bit.
    Both are created in the base weight's dtype and device. The base's parameters are frozen
    (``requires_grad=False``); the base module itself is kept as ``self.base``.

    Dropout acts on the adapter's input only (the base sees x unchanged). A merged layer computes
    ``base(x)`` with the update folded into the weight, which is the dropout-free (eval) output.
    """

    def __init__(self, base: nn.Linear, r: int, alpha: float, dropout: float = 0.0) -> None:
        super().__init__()
        if not isinstance(base, nn.Linear):
            raise TypeError(f"base must be a torch.nn.Linear, got {type_name(base)}")
        self.r, self.alpha, p = _check_hyperparameters(r, alpha, dropout)
        self.scaling = self.alpha / self.r
        self.base = base.requires_grad_(False)
        weight = base.weight
        self.lora_A = nn.Parameter(torch.empty(self.r, base.in_features, dtype=weight.dtype, device=weight.device))
        self.lora_B = nn.Parameter(torch.zeros(base.out_features, self.r, dtype=weight.dtype, device=weight.device))
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))  # as nn.Linear initialises its weight
        self.dropout = nn.Dropout(p)
        self._enabled = True
        self.merged = False

    @property
    def in_features(self) -> int:
        """Size of each input sample (the base's)."""
        return self.base.in_features

    @property
    def out_features(self) -> int:
        """Size of each output sample (the base's)."""
        return self.base.out_features

    @property
    def enabled(self) -> bool:
        """Whether the adapter contributes; ``False`` makes the layer compute ``base(x)`` alone."""
        return self._enabled

    @enabled.setter
    def enabled(self, value: bool) -> None:
        if not isinstance(value, bool):
            raise TypeError(f"enabled must be a bool, got {type_name(value)} {value!r}")
        if self.merged and not value:
            raise RuntimeError("cannot disable a merged adapter: its update is inside the base weight; "
                               "call unmerge() first")
        self._enabled = value

    def delta_weight(self) -> torch.Tensor:
        """The update the adapter adds to the base weight: ``(alpha / r) B @ A``, (out, in), rank <= r."""
        return self.scaling * (self.lora_B @ self.lora_A)  # (out, in)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``base(x) + (alpha / r) dropout(x) @ A^T @ B^T``: x (..., in) -> (..., out)."""
        out = self.base(x)  # (..., out)
        if self.merged or not self._enabled:
            return out
        h = self.scaling * (self.dropout(x) @ self.lora_A.T)  # (..., r): scaled where it is small
        return out + h @ self.lora_B.T  # (..., out)

    @torch.no_grad()
    def merge(self) -> None:
        """Fold the update into the base weight, ``W <- W + (alpha / r) B A``: one matmul per call.

        The base weight is changed in place. `unmerge` subtracts the same update; in floating point
        the round trip restores W to rounding (a few units in the last place), not bit for bit.
        """
        if self.merged:
            raise RuntimeError("the adapter is already merged")
        if not self._enabled:
            raise RuntimeError("cannot merge a disabled adapter: set enabled = True first")
        self.base.weight.add_(self.delta_weight())
        self.merged = True

    @torch.no_grad()
    def unmerge(self) -> None:
        """Take the update back out of the base weight, ``W <- W - (alpha / r) B A``."""
        if not self.merged:
            raise RuntimeError("the adapter is not merged")
        self.base.weight.sub_(self.delta_weight())
        self.merged = False

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, r={self.r}, "
                f"alpha={self.alpha:g}, merged={self.merged}, enabled={self._enabled}")


def _check_hyperparameters(r: int, alpha: float, dropout: float) -> tuple[int, float, float]:
    return (positive_int(r, "r"), positive_number(alpha, "alpha"),
            number_in_range(dropout, "dropout", 0.0, 1.0, high_open=True))


def _target_names(targets: str | Iterable[str]) -> tuple[str, ...]:
    if isinstance(targets, str):
        targets = (targets,)
    try:
        names = tuple(targets)
    except TypeError:
        raise TypeError(f"targets must be a str or an iterable of str, got {type_name(targets)}") from None
    for name in names:
        if not isinstance(name, str):
            raise TypeError(f"targets must hold str, got {type_name(name)} {name!r}")
    if not names or any(not name for name in names):
        raise ValueError(f"targets must name at least one module (non-empty strings), got {names!r}")
    return names


def _matches(name: str, targets: tuple[str, ...]) -> bool:
    """Whether a qualified module name ends with one of targets at a dot boundary (as PEFT matches)."""
    return any(name == t or name.endswith("." + t) for t in targets)


def _set_submodule(model: nn.Module, name: str, module: nn.Module) -> None:
    parent, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, child, module)


def add_lora(model: nn.Module, r: int, alpha: float, targets: str | Iterable[str],
             dropout: float = 0.0) -> list[str]:
    """Wrap the ``nn.Linear`` modules of ``model`` named by ``targets`` in `LoRALinear`, in place.

    A module is a target when its qualified name (as ``model.named_modules()`` gives it) equals a
    target or ends with ``"." + target``: ``"q_proj"`` matches ``"decoder.blocks.0.self_attn.q_proj"``
    but not ``"xq_proj"``. Every other parameter of the model is frozen, so only the adapters'
    ``lora_A`` and ``lora_B`` require gradients. Returns the wrapped names, in module order.

    Raises ValueError when targets match no ``nn.Linear``, when the model already has adapters, and
    when a target's weight is shared with another parameter (tied weights, such as TinyGPT's
    ``lm_head`` and ``token_embedding``): merging would change the other module too.
    """
    module(model, "model")
    names = _target_names(targets)
    _check_hyperparameters(r, alpha, dropout)  # before the model is changed
    if any(isinstance(m, LoRALinear) for m in model.modules()):
        raise ValueError("model already has LoRA adapters; call remove_lora(model) first")
    found = [(name, m) for name, m in model.named_modules() if isinstance(m, nn.Linear) and _matches(name, names)]
    if not found:
        linear = [name for name, m in model.named_modules() if isinstance(m, nn.Linear)]
        raise ValueError(f"targets must name nn.Linear modules of the model, got {names!r}, which "
                         f"match none; its linear modules are {linear[:8]}{' ...' if len(linear) > 8 else ''}")
    owners: dict[int, list[str]] = {}
    for name, p in model.named_parameters(remove_duplicate=False):
        owners.setdefault(id(p), []).append(name)
    for name, m in found:
        if len(owners[id(m.weight)]) > 1:
            raise ValueError(f"targets include {name!r}, whose weight is tied to "
                             f"{[o for o in owners[id(m.weight)] if o != name + '.weight']}: merging "
                             "its adapter would change the other module too; leave it out of targets")
    model.requires_grad_(False)
    for name, m in found:
        _set_submodule(model, name, LoRALinear(m, r, alpha, dropout))
    return [name for name, _ in found]


def remove_lora(model: nn.Module, merge: bool = False) -> list[str]:
    """Replace every `LoRALinear` of ``model`` by its base ``nn.Linear``, in place; returns their names.

    ``merge=False``: the adapter is dropped. The base module is the very object `add_lora` wrapped,
    with its weights as they were (exactly, unless the adapter was merged: it is unmerged first, to
    rounding). ``merge=True``: an enabled adapter's update is folded into the base weight first, so
    the model keeps computing what it computes now (a disabled adapter contributes nothing and is
    dropped), as plain linear layers. requires_grad flags are left as they are (frozen): call
    ``model.requires_grad_(True)`` to train the whole model again.
    """
    module(model, "model")
    if not isinstance(merge, bool):
        raise TypeError(f"merge must be a bool, got {type_name(merge)} {merge!r}")
    adapted = [(name, m) for name, m in model.named_modules() if isinstance(m, LoRALinear)]
    for name, layer in adapted:
        if merge and layer.enabled and not layer.merged:
            layer.merge()
        elif not merge and layer.merged:
            layer.unmerge()
        _set_submodule(model, name, layer.base)
    return [name for name, _ in adapted]


class ParameterCounts(NamedTuple):
    """Number of trainable and of all parameters (values) of a model, shared tensors counted once."""

    trainable: int
    total: int

    @property
    def trainable_fraction(self) -> float:
        """trainable / total (0 for a model without parameters)."""
        return self.trainable / self.total if self.total else 0.0


def parameter_counts(model: nn.Module) -> ParameterCounts:
    """Trainable (``requires_grad``) and total parameter values of ``model``."""
    module(model, "model")
    params = list(model.parameters())  # shared (tied) tensors appear once
    return ParameterCounts(sum(p.numel() for p in params if p.requires_grad), sum(p.numel() for p in params))


def lora_parameter_count(in_features: int, out_features: int, r: int) -> int:
    """Trainable parameters LoRA adds to one (out, in) matrix: ``r * (in + out)`` (A and B)."""
    in_features = positive_int(in_features, "in_features")
    out_features = positive_int(out_features, "out_features")
    return positive_int(r, "r") * (in_features + out_features)
