"""Tests for course_lib.zero_shot: attribute signatures, observations and DAP, against direct computations."""

from __future__ import annotations

import math

import pytest
import torch

from course_lib.world import PETS
from course_lib.zero_shot import (
    ATTRIBUTE_NAMES,
    PET_ATTRIBUTES,
    dap_scores,
    fit_attribute_classifiers,
    observations,
    signatures,
)


def test_every_pet_of_the_world_has_a_distinct_description():
    assert set(PET_ATTRIBUTES) == set(PETS)
    assert all(len(s) == len(ATTRIBUTE_NAMES) for s in PET_ATTRIBUTES.values())
    assert len(set(PET_ATTRIBUTES.values())) == len(PET_ATTRIBUTES)
    assert signatures(["goat", "cat"]).tolist() == [list(map(float, PET_ATTRIBUTES["goat"])), [1.0] + [0.0] * 9]


def test_observations_are_seeded_and_share_the_mixing_matrix():
    x, y = observations(["cat", "owl"], 5, torch.Generator().manual_seed(0), noise=0.0, flip=0.0)
    assert x.shape == (10, 16) and y.tolist() == [0] * 5 + [1] * 5
    assert torch.equal(x[0], x[4])  # no noise and no flips: every cat is the same point
    x2, _ = observations(["owl"], 2, torch.Generator().manual_seed(9), noise=0.0, flip=0.0)
    assert torch.allclose(x2[0], x[5])  # the owl maps to the same point in another call
    again, _ = observations(["cat", "owl"], 5, torch.Generator().manual_seed(0))
    assert torch.equal(again, observations(["cat", "owl"], 5, torch.Generator().manual_seed(0))[0])


def test_dap_scores_match_a_direct_sum():
    p = torch.tensor([[0.9, 0.2, 0.0], [0.5, 1.0, 0.3]], dtype=torch.float64)
    s = torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]], dtype=torch.float64)
    clipped = p.clamp(1e-6, 1 - 1e-6).tolist()
    expected = [[sum(math.log(q if bit else 1 - q) for q, bit in zip(row, sig)) for sig in s.tolist()] for row in clipped]
    assert torch.allclose(dap_scores(p, s), torch.tensor(expected, dtype=torch.float64), atol=1e-12)


def test_dap_recognises_unseen_pets_from_their_descriptions():
    unseen, seen = ["rabbit", "goat", "iguana"], [p for p in PET_ATTRIBUTES if p not in ("rabbit", "goat", "iguana")]
    generator = torch.Generator().manual_seed(0)
    x, y = observations(seen, 100, generator)
    layer = fit_attribute_classifiers(x, signatures(seen)[y])
    xu, yu = observations(unseen, 100, generator)
    accuracy = (dap_scores(torch.sigmoid(layer(xu)), signatures(unseen)).argmax(1) == yu).double().mean()
    assert accuracy > 0.75  # chance is 1/3


@pytest.mark.parametrize("call, error, match", [
    (lambda: signatures(["cat", "unicorn"]), ValueError, "unicorn"),
    (lambda: signatures("cat"), TypeError, "classes"),
    (lambda: observations(["cat"], 0, torch.Generator()), ValueError, "per_class"),
    (lambda: observations(["cat"], 2, torch.Generator(), flip=1.5), ValueError, "flip"),
    (lambda: observations(["cat"], 2, 0), TypeError, "generator"),
    (lambda: fit_attribute_classifiers(torch.zeros(3, 4, dtype=torch.float64), torch.zeros(2, 1, dtype=torch.float64)),
     ValueError, "one row per example"),
    (lambda: dap_scores(torch.zeros(2, 3, dtype=torch.float64), torch.zeros(2, 4)), ValueError, "columns"),
    (lambda: dap_scores(torch.zeros(2, 3, dtype=torch.float64), torch.full((2, 3), 0.5)), ValueError, "0s and 1s"),
])
def test_bad_input_is_named(call, error, match):
    with pytest.raises(error, match=match):
        call()
