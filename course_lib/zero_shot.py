"""Classical zero-shot learning: recognising classes never seen in training through their attributes.

Direct attribute prediction (DAP, Lampert et al. 2009): every class ``c`` has a binary attribute
signature ``s_c`` (side information, "has feathers", "can fly"), written by a person, not learned.
One probabilistic classifier per attribute is trained on examples of the *seen* classes only; an
example of an *unseen* class is given the unseen class whose signature best explains the predicted
attributes, ``argmax_c sum_m log p(a_m = s_{c,m} | x)`` (`dap_scores`). The classes at test time
never appeared in training; what transfers is the attributes, which the seen classes share.

The data are synthetic and small: `PET_ATTRIBUTES` describes the course world's ten pets with ten
yes/no attributes, and `observations` draws feature vectors ``x = M (2 a - 1) + noise`` through a
fixed random mixing matrix ``M``, where ``a`` is the class signature with each attribute flipped with
a small probability (individuals differ from their class description).

Left out: real images and features, the attribute priors and class priors of the paper's DAP,
indirect attribute prediction (IAP), embedding methods (label embeddings, CLIP's text encoder) and
generalised zero-shot learning, where seen and unseen classes compete at test time.
"""

from __future__ import annotations

import torch

from course_lib.validation import float_tensor, nonnegative_int, positive_int, probability, type_name

__all__ = ["ATTRIBUTE_NAMES", "PET_ATTRIBUTES", "signatures", "observations", "fit_attribute_classifiers",
           "dap_scores"]

#: The attributes that describe a pet, in the order of the signatures' columns.
ATTRIBUTE_NAMES = ("furry", "feathers", "reptile", "flies", "larger than a cat", "hooves", "nocturnal",
                   "kept in a cage", "ridden", "shell")

#: Each of the world's pets (`course_lib.world.PETS`) as yes/no answers to `ATTRIBUTE_NAMES`.
PET_ATTRIBUTES: dict[str, tuple[int, ...]] = {
    "cat":     (1, 0, 0, 0, 0, 0, 0, 0, 0, 0),
    "dog":     (1, 0, 0, 0, 1, 0, 0, 0, 0, 0),
    "owl":     (0, 1, 0, 1, 0, 0, 1, 0, 0, 0),
    "parrot":  (0, 1, 0, 1, 0, 0, 0, 1, 0, 0),
    "rabbit":  (1, 0, 0, 0, 0, 0, 0, 1, 0, 0),
    "turtle":  (0, 0, 1, 0, 0, 0, 0, 0, 0, 1),
    "goat":    (1, 0, 0, 0, 1, 1, 0, 0, 0, 0),
    "hamster": (1, 0, 0, 0, 0, 0, 1, 1, 0, 0),
    "horse":   (1, 0, 0, 0, 1, 1, 0, 0, 1, 0),
    "iguana":  (0, 0, 1, 0, 0, 0, 0, 0, 0, 0),
}


def signatures(classes: list[str] | tuple[str, ...]) -> torch.Tensor:
    """The attribute signatures of ``classes`` (names in `PET_ATTRIBUTES`), shape (C, A), float64 0/1."""
    if isinstance(classes, str) or not isinstance(classes, (list, tuple)) or not classes:
        raise TypeError(f"classes must be a non-empty list of pet names, got {classes!r}")
    unknown = [c for c in classes if c not in PET_ATTRIBUTES]
    if unknown:
        raise ValueError(f"classes must be pets of PET_ATTRIBUTES ({sorted(PET_ATTRIBUTES)}), got {unknown}")
    return torch.tensor([PET_ATTRIBUTES[c] for c in classes], dtype=torch.float64)  # (C, A)


def observations(classes: list[str] | tuple[str, ...], per_class: int, generator: torch.Generator, *,
                 n_features: int = 16, noise: float = 0.5, flip: float = 0.1,
                 mixing_seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``per_class`` feature vectors of every class, (C * per_class, n_features) float64, and class indices.

    Each example takes its class signature, flips every attribute with probability ``flip``, maps
    it to +-1 and through the mixing matrix ``M`` (n_features, A), drawn from ``mixing_seed`` so that
    every call (seen or unseen classes) shares it, then adds Gaussian noise of standard deviation ``noise``.
    """
    per_class = positive_int(per_class, "per_class")
    n_features = positive_int(n_features, "n_features")
    probability(flip, "flip")
    if not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator, got {type_name(generator)}")
    if not noise >= 0:
        raise ValueError(f"noise must be >= 0, got {noise!r}")
    mixing_seed = nonnegative_int(mixing_seed, "mixing_seed")
    signature = signatures(classes)  # (C, A)
    mixing = torch.randn(n_features, signature.shape[1], generator=torch.Generator().manual_seed(mixing_seed),
                         dtype=torch.float64)  # (D, A)
    labels = torch.arange(len(classes)).repeat_interleave(per_class)  # (n,)
    attributes = signature[labels]  # (n, A)
    flips = torch.rand(attributes.shape, generator=generator, dtype=torch.float64) < flip  # (n, A)
    attributes = torch.where(flips, 1 - attributes, attributes)
    x = (2 * attributes - 1) @ mixing.T  # (n, D)
    return x + noise * torch.randn(x.shape, generator=generator, dtype=torch.float64), labels


def fit_attribute_classifiers(x: torch.Tensor, attributes: torch.Tensor, steps: int = 200,
                              weight_decay: float = 1e-3) -> torch.nn.Linear:
    """One logistic regression per attribute, fitted jointly: a Linear (D -> A) whose sigmoid is p(a_m = 1 | x).

    ``x`` (n, D) are examples of seen classes, ``attributes`` (n, A) their classes' signatures (0/1).
    Fitted by full-batch L-BFGS on the mean binary cross-entropy plus ``weight_decay`` times the
    squared weights, in float64, from zero weights (so the fit is deterministic).
    """
    x = float_tensor(x, "x", ndim=2)
    attributes = float_tensor(attributes, "attributes", ndim=2)
    if len(x) != len(attributes):
        raise ValueError(f"x and attributes must have one row per example, got {len(x)} and {len(attributes)}")
    steps = positive_int(steps, "steps")
    layer = torch.nn.Linear(x.shape[1], attributes.shape[1], dtype=torch.float64)
    torch.nn.init.zeros_(layer.weight)
    torch.nn.init.zeros_(layer.bias)
    optimizer = torch.optim.LBFGS(layer.parameters(), max_iter=steps, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(layer(x), attributes)
        loss = loss + weight_decay * layer.weight.pow(2).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    return layer.requires_grad_(False)


def dap_scores(attribute_probs: torch.Tensor, class_signatures: torch.Tensor) -> torch.Tensor:
    """DAP's score of every class for every example: ``sum_m log p(a_m = s_{c,m} | x)``, shape (n, C).

    ``attribute_probs`` (n, A) are p(a_m = 1 | x); ``class_signatures`` (C, A) are 0/1. Probabilities
    are clipped to [1e-6, 1 - 1e-6] so that one confident mistake does not give minus infinity.
    """
    p = float_tensor(attribute_probs, "attribute_probs", ndim=2).clamp(1e-6, 1 - 1e-6)  # (n, A)
    s = float_tensor(class_signatures, "class_signatures", ndim=2).to(p.dtype)  # (C, A)
    if not bool(((s == 0) | (s == 1)).all()):
        raise ValueError(f"class_signatures must hold 0s and 1s, got {s.tolist()}")
    if s.shape[1] != p.shape[1]:
        raise ValueError(f"class_signatures must have {p.shape[1]} columns, one per attribute, got {s.shape[1]}")
    return p.log() @ s.T + (1 - p).log() @ (1 - s).T  # (n, C)
