"""Mixture of experts: a feed-forward layer made of several MLPs, of which each token uses only k.

A router (one linear map, d_model -> n_experts) scores the experts for every token; the token goes
to its ``top_k`` highest-scoring experts, and its output is their outputs weighted by gates::

    logits = router(x)                              # (N, E)
    top_logits, experts = logits.topk(k)            # (N, k)
    gates = softmax(top_logits)                     # (N, k): sums to 1 over the chosen experts
    y = sum_j gates[:, j] * expert_{experts[:, j]}(x)

Routing is per token and per layer: the experts are feed-forward blocks inside one model, not whole
models chosen per query. Every expert stays in memory, but a token pays for k of them, so compute
per token follows the *active* parameters and memory the *total* (`parameter_counts`).

Gates. The softmax runs over the k chosen logits, which equals Mixtral's softmax over all experts
renormalised over the chosen ones (Jiang et al. 2024, section 2.1). Switch Transformer (Fedus et
al. 2022, section 2.1) routes to k = 1 expert and multiplies its output by the *unnormalised*
router probability p_i(x), which keeps the router in the task loss's gradient. With renormalised
gates and ``top_k=1`` the gate is always exactly 1: the router then learns only through
`load_balancing_loss`.

Capacity. With ``capacity_factor`` set, each expert processes at most
``capacity = ceil(capacity_factor * tokens * top_k / n_experts)`` token-assignments per forward
(`expert_capacity`; Switch, section 2.2, with top_k assignments per token). Assignments queue at
their expert by rank, then by token order: every token's first choice is served before any second
choice (as in GShard's top-2 gating, Lepikhin et al. 2021, Algorithm 1). An assignment over
capacity is dropped: that expert adds nothing to the token's output and the other gates are not
renormalised, so a token whose every assignment is dropped outputs zeros, and the residual
connection of the block around the layer carries it through unchanged. ``last_dropped`` counts
the dropped assignments of the last forward.

Load balance. Without a penalty a router tends to send most tokens to a few experts.
`load_balancing_loss` is Switch's auxiliary loss (Fedus et al. 2022, equations 4-6),
``n_experts * sum_i f_i * P_i``: f_i is the fraction of tokens routed to expert i (counting each of
a token's top_k assignments, as the Mixtral implementation in Hugging Face transformers does), P_i
the mean router probability of expert i. Only P carries a gradient.

`MoEGPT` is `course_lib.models.TinyGPT` with every block's MLP replaced by an `MoELayer` (its
experts sized by `MoEGPTConfig.expert_d_ff`); `MoEGPT.router_logits` returns each layer's router
logits from the last forward, for the load-balancing loss and for routing analyses.

Left out: router noise and jitter, the router z-loss (ST-MoE), shared experts and fine-grained
experts (DeepSeekMoE), expert-choice routing, auxiliary-loss-free balancing, SwiGLU experts (each
expert here is `course_lib.transformer.MLP`), and the expert parallelism across devices that
capacity exists for (here experts run one after another on one device).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from course_lib.models import TinyGPT, TinyGPTConfig
from course_lib.softmax import softmax
from course_lib.transformer import MLP
from course_lib.validation import (
    float_tensor,
    int_in_range,
    module,
    positive_int,
    positive_number,
)

__all__ = [
    "MoEFeedForward",
    "MoEGPT",
    "MoEGPTConfig",
    "MoELayer",
    "ParameterCounts",
    "expert_capacity",
    "load_balancing_loss",
    "parameter_counts",
    "top_k_routing",
]


def top_k_routing(router_logits: Tensor, top_k: int) -> tuple[Tensor, Tensor]:
    """Each token's ``top_k`` experts and their gates: ``(gates, experts)``, both (N, top_k).

    router_logits: (N, n_experts). experts: indices of the top_k largest logits, best first;
    gates: softmax over those k logits, so each row sums to 1.
    """
    float_tensor(router_logits, "router_logits", ndim=2)
    top_k = int_in_range(top_k, "top_k", 1, router_logits.shape[-1])
    top_logits, experts = router_logits.topk(top_k, dim=-1)  # (N, k), (N, k)
    return softmax(top_logits, dim=-1), experts  # (N, k) gates renormalised over the chosen


def expert_capacity(n_tokens: int, n_experts: int, top_k: int, capacity_factor: float) -> int:
    """Token-assignments one expert may process: ``ceil(capacity_factor * n_tokens * top_k / n_experts)``.

    With capacity_factor = 1 a perfectly balanced router fills every expert exactly (up to the
    rounding up); above 1 the slack absorbs imbalance, below 1 tokens are dropped even then.
    """
    n_tokens = positive_int(n_tokens, "n_tokens")
    n_experts = positive_int(n_experts, "n_experts")
    top_k = int_in_range(top_k, "top_k", 1, n_experts)
    capacity_factor = positive_number(capacity_factor, "capacity_factor")
    return math.ceil(capacity_factor * n_tokens * top_k / n_experts)


class MoELayer(nn.Module):
    """A sparse mixture-of-experts feed-forward layer: a router and ``n_experts`` MLPs.

    Each expert is ``MLP(d_model, d_hidden)`` (Linear -> GELU -> Linear); the router is
    ``Linear(d_model, n_experts, bias=False)``. ``forward(x)`` takes x (B, T, d_model) or
    (N, d_model) and returns ``(output, router_logits)``: output has x's shape, router_logits is
    (tokens, n_experts) with tokens = B * T (or N), ready for `load_balancing_loss`. See the
    module docstring for the gates and the capacity rule.
    """

    def __init__(self, d_model: int, d_hidden: int, n_experts: int, top_k: int = 2,
                 capacity_factor: float | None = None) -> None:
        super().__init__()
        self.d_model = positive_int(d_model, "d_model")
        self.n_experts = positive_int(n_experts, "n_experts")
        self.top_k = int_in_range(top_k, "top_k", 1, self.n_experts)
        self.capacity_factor = (None if capacity_factor is None
                                else positive_number(capacity_factor, "capacity_factor"))
        self.router = nn.Linear(self.d_model, self.n_experts, bias=False)
        self.experts = nn.ModuleList(MLP(self.d_model, positive_int(d_hidden, "d_hidden"))
                                     for _ in range(self.n_experts))
        self.last_dropped = 0  # token-assignments over capacity in the last forward

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """x (B, T, d_model) or (N, d_model) -> (output like x, router_logits (tokens, n_experts))."""
        float_tensor(x, "x", ndim=(2, 3))
        if x.shape[-1] != self.d_model:
            raise ValueError(f"x must have d_model = {self.d_model} features, got shape {tuple(x.shape)}")
        tokens = x.reshape(-1, self.d_model)  # (N, D)
        router_logits = self.router(tokens)  # (N, E)
        gates, experts = top_k_routing(router_logits, self.top_k)  # (N, k), (N, k)
        # One row per token-assignment, rank-major: every first choice, then every second choice.
        expert_of = experts.T.reshape(-1)  # (k N,)
        gate_of = gates.T.reshape(-1)  # (k N,)
        token_of = torch.arange(len(tokens), device=x.device).repeat(self.top_k)  # (k N,)
        kept = self._within_capacity(expert_of)  # (k N,) bool
        self.last_dropped = int((~kept).sum())
        output = torch.zeros_like(tokens)  # (N, D)
        for e, expert in enumerate(self.experts):
            rows = ((expert_of == e) & kept).nonzero().squeeze(1)  # (n_e,) this expert's assignments
            if len(rows) == 0:
                continue
            picked = token_of[rows]  # (n_e,)
            output.index_add_(0, picked, gate_of[rows, None] * expert(tokens[picked]))  # (n_e, D) added
        return output.reshape(x.shape), router_logits

    def _within_capacity(self, expert_of: Tensor) -> Tensor:
        """Which assignments (in queue order) fit within their expert's capacity: (k N,) bool."""
        if self.capacity_factor is None or len(expert_of) == 0:
            return torch.ones_like(expert_of, dtype=torch.bool)
        capacity = expert_capacity(len(expert_of) // self.top_k, self.n_experts, self.top_k,
                                   self.capacity_factor)
        one_hot = F.one_hot(expert_of, self.n_experts)  # (k N, E)
        place = (one_hot.cumsum(0) * one_hot).sum(-1) - 1  # (k N,) 0-based place in its queue
        return place < capacity


def load_balancing_loss(router_logits: Tensor, top_k: int = 1) -> Tensor:
    """Switch Transformer's auxiliary loss ``n_experts * sum_i f_i * P_i`` (Fedus et al. 2022, eqs. 4-6).

    router_logits: (tokens, n_experts). P_i = mean over tokens of softmax(router_logits)_i; f_i =
    (assignments to expert i among each token's top_k) / tokens, so sum_i f_i = top_k. With
    top_k = 1 the loss is 1 when routing is perfectly balanced (f_i = P_i = 1/n_experts) and
    n_experts when every token goes to one expert with probability 1. With top_k = k, balanced
    routing gives k (the Hugging Face Mixtral convention, which does not divide by k). f is a
    count and carries no gradient: the router learns through P. Returns a 0-d tensor.
    """
    float_tensor(router_logits, "router_logits", ndim=2)
    n_tokens, n_experts = router_logits.shape
    if n_tokens == 0:
        raise ValueError("router_logits must hold at least one token, got shape (0, n_experts)")
    _, experts = top_k_routing(router_logits, top_k)  # (N, k)
    f = F.one_hot(experts, n_experts).sum(1).mean(0, dtype=router_logits.dtype)  # (E,) assignments per token
    P = softmax(router_logits, dim=-1).mean(0)  # (E,) mean router probability
    return n_experts * (f * P).sum()


class ParameterCounts(NamedTuple):
    """Parameters a model holds (``total``) and those one token uses (``active``)."""

    total: int
    active: int


def parameter_counts(model: nn.Module) -> ParameterCounts:
    """Total and active parameters of ``model``; every `MoELayer` inside counts top_k experts as active.

    ``total`` counts every parameter (what must sit in memory); ``active`` leaves out, in each
    MoELayer, the ``n_experts - top_k`` experts a token does not visit (what one token computes
    with). A model without MoELayers has active == total.
    """
    module(model, "model")
    total = sum(p.numel() for p in model.parameters())
    idle = 0
    for layer in model.modules():
        if isinstance(layer, MoELayer):
            per_expert = sum(p.numel() for p in layer.experts[0].parameters())
            idle += (layer.n_experts - layer.top_k) * per_expert
    return ParameterCounts(total=total, active=total - idle)



@dataclass(frozen=True)
class MoEGPTConfig(TinyGPTConfig):
    """A TinyGPT shape plus its experts: ``n_experts`` MLPs of hidden width ``expert_d_ff`` per block,
    ``top_k`` of them per token, and an optional ``capacity_factor`` (see `MoELayer`)."""

    n_experts: int = 8
    top_k: int = 2
    expert_d_ff: int = 128
    capacity_factor: float | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "n_experts", positive_int(self.n_experts, "n_experts"))
        object.__setattr__(self, "top_k", int_in_range(self.top_k, "top_k", 1, self.n_experts))
        object.__setattr__(self, "expert_d_ff", positive_int(self.expert_d_ff, "expert_d_ff"))
        if self.capacity_factor is not None:
            positive_number(self.capacity_factor, "capacity_factor")


class MoEFeedForward(nn.Module):
    """An `MoELayer` in a block's MLP slot: returns only the output, and keeps the router logits.

    ``last_router_logits`` (tokens, n_experts) holds the router logits of the last forward (with
    their graph, so a load-balancing loss on them trains the router).
    """

    def __init__(self, layer: MoELayer) -> None:
        super().__init__()
        self.moe = layer
        self.last_router_logits: Tensor | None = None

    def forward(self, x: Tensor) -> Tensor:
        """(B, T, d_model) -> (B, T, d_model)."""
        output, self.last_router_logits = self.moe(x)  # (B, T, D), (B T, E)
        return output


class MoEGPT(TinyGPT):
    """TinyGPT whose feed-forward sublayers are mixtures of experts: forward(ids (B, T)) -> logits (B, T, V).

    Everything else (embeddings, attention, tied output, KV caches) is TinyGPT's. Expert weights
    start like TinyGPT's MLPs (N(0, 0.02), the output projection scaled by 1/sqrt(2 n_layers), zero
    biases); the router starts at N(0, 0.02).
    """

    def __init__(self, config: MoEGPTConfig) -> None:
        if not isinstance(config, MoEGPTConfig):
            raise TypeError(f"config must be a MoEGPTConfig, got {config!r}")
        super().__init__(config)
        residual_std = 0.02 / math.sqrt(2 * config.n_layers)
        for block in self.decoder.blocks:
            layer = MoELayer(config.d_model, config.expert_d_ff, config.n_experts, config.top_k,
                             config.capacity_factor)
            nn.init.normal_(layer.router.weight, std=0.02)
            for expert in layer.experts:
                nn.init.normal_(expert.fc_in.weight, std=0.02)
                nn.init.normal_(expert.fc_out.weight, std=residual_std)
                nn.init.zeros_(expert.fc_in.bias)
                nn.init.zeros_(expert.fc_out.bias)
            block.mlp = MoEFeedForward(layer)

    def moe_layers(self) -> list[MoELayer]:
        """The model's MoE layers, first block first."""
        return [block.mlp.moe for block in self.decoder.blocks]

    def router_logits(self) -> list[Tensor]:
        """Each layer's router logits (tokens, n_experts) from the last forward, first block first."""
        logits = [block.mlp.last_router_logits for block in self.decoder.blocks]
        if any(x is None for x in logits):
            raise ValueError("router_logits needs a forward pass first")
        return logits
