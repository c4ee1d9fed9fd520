"""Tests for course_lib.embeddings: the lookup identity, cosine neighbours, PCA projection, PPMI-SVD."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from course_lib.embeddings import (
    cooccurrence_counts,
    cosine_similarities,
    lookup_as_matmul,
    nearest_neighbours,
    ppmi_svd_embeddings,
    project_2d,
    token_table_grad,
)
from course_lib.linalg import pca
from course_lib.losses import cross_entropy
from course_lib.models import TinyGPT, TinyGPTConfig


def random_table(rows: int = 12, dim: int = 5, seed: int = 0) -> torch.Tensor:
    return torch.randn(rows, dim, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


@settings(max_examples=25, deadline=None)
@given(shape=st.lists(st.integers(1, 4), min_size=1, max_size=3), seed=st.integers(0, 1000))
def test_lookup_is_a_one_hot_matmul(shape, seed):
    table = random_table(9, 4, seed)
    ids = torch.randint(0, 9, shape, generator=torch.Generator().manual_seed(seed))
    assert torch.equal(lookup_as_matmul(ids, table), table[ids])


def test_lookup_as_matmul_has_the_embedding_gradient():
    table = random_table(6, 3).requires_grad_()
    ids = torch.tensor([[1, 4, 1], [0, 4, 4]])
    weights = random_table(6, 3, seed=1)[ids]  # (2, 3, 3) arbitrary upstream gradient
    (lookup_as_matmul(ids, table) * weights).sum().backward()
    via_matmul = table.grad.clone()
    table.grad = None
    (torch.nn.functional.embedding(ids, table) * weights).sum().backward()
    torch.testing.assert_close(via_matmul, table.grad)
    assert via_matmul[[2, 3, 5]].abs().sum() == 0  # rows of absent tokens get no gradient


def test_cosine_similarities_match_torch_and_zero_rows_give_zero():
    table, queries = random_table(), random_table(3, 5, seed=1)
    expected = torch.nn.functional.cosine_similarity(queries[:, None], table[None], dim=-1)
    torch.testing.assert_close(cosine_similarities(table, queries), expected)
    table[4] = 0.0
    assert torch.all(cosine_similarities(table, queries)[:, 4] == 0)


def test_nearest_neighbours_by_brute_force():
    table = random_table(20, 6, seed=3)
    ids, sims = nearest_neighbours(table, 7, k=4)
    brute = sorted((i for i in range(20) if i != 7),
                   key=lambda i: -float(torch.dot(table[7], table[i]) / (table[7].norm() * table[i].norm())))
    assert ids.tolist() == brute[:4]
    assert 7 not in ids.tolist()
    assert torch.all(sims[:-1] >= sims[1:])
    vector_ids, _ = nearest_neighbours(table, table[7] * 3.0, k=5)
    assert vector_ids.tolist() == [7] + brute[:4]  # a vector query keeps its own row, scale does not matter


def test_nearest_neighbours_ties_go_to_the_lower_id():
    table = torch.tensor([[1.0, 0.0], [2.0, 0.0], [0.0, 1.0], [3.0, 0.0], [0.0, 2.0]])
    ids, sims = nearest_neighbours(table, torch.tensor([1.0, 0.0]), k=3)
    assert ids.tolist() == [0, 1, 3] and sims.tolist() == [1.0, 1.0, 1.0]


def test_project_2d_is_the_top_two_principal_components():
    table = random_table(30, 8, seed=4)
    coords = project_2d(table)
    assert coords.shape == (30, 2)
    torch.testing.assert_close(coords, pca(table, 2).transform(table))
    top_two = torch.linalg.svdvals(table - table.mean(0))[:2] ** 2 / 29
    torch.testing.assert_close(coords.var(dim=0), top_two)


def test_cooccurrence_counts_worked_example():
    # "a b a c" with window 1: pairs (a,b), (b,a), (a,c), each counted both ways.
    counts = cooccurrence_counts([torch.tensor([0, 1, 0, 2])], vocab_size=3, window=1)
    assert counts.tolist() == [[0, 2, 1], [2, 0, 0], [1, 0, 0]]
    wider = cooccurrence_counts([torch.tensor([0, 1, 0, 2]), torch.tensor([2])], vocab_size=3, window=2)
    assert wider.tolist() == [[2, 2, 1], [2, 0, 1], [1, 1, 0]]  # the lone token adds nothing
    assert torch.equal(wider, wider.T)


def test_ppmi_matches_the_definition_and_interchangeable_tokens_get_the_same_embedding():
    # Tokens 1 and 2 ("cat", "dog") occur in exactly the same contexts.
    sequences = [torch.tensor(s) for s in ([0, 1, 3], [0, 2, 3], [4, 1, 5], [4, 2, 5], [0, 4, 3])]
    embeddings = ppmi_svd_embeddings(sequences, vocab_size=7, dim=4, window=1)
    assert embeddings.shape == (7, 4)
    torch.testing.assert_close(embeddings[1], embeddings[2], atol=1e-5, rtol=0)
    assert embeddings[6].abs().max() < 1e-5  # never seen: a zero row
    assert nearest_neighbours(embeddings[:6], 1, k=1)[0].tolist() == [2]
    counts = cooccurrence_counts(sequences, 7, 1)
    total = counts.sum()
    ppmi = torch.zeros(7, 7, dtype=torch.float64)
    for w in range(7):
        for c in range(7):
            if counts[w, c] > 0:
                ppmi[w, c] = max(0.0, math.log(counts[w, c] * total / (counts[w].sum() * counts[:, c].sum())))
    full = ppmi_svd_embeddings(sequences, vocab_size=7, dim=7, window=1).double()
    torch.testing.assert_close((full**2).sum(), torch.linalg.svdvals(ppmi).sum(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("call, message", [
    (lambda: lookup_as_matmul(torch.tensor([0, 9]), random_table(5, 2)),
     r"ids must be in \[0, 5\), got values in \[0, 9\]"),
    (lambda: lookup_as_matmul(torch.tensor([0]), torch.zeros(5)), r"table must have 2 dimensions, got shape \(5,\)"),
    (lambda: cosine_similarities(random_table(5, 2), random_table(3, 4)), "queries must have D=2 columns"),
    (lambda: nearest_neighbours(random_table(5, 2), 5), r"query must be an integer in \[0, 4\], got 5"),
    (lambda: nearest_neighbours(random_table(5, 2), 1, k=5), r"k must be an integer in \[1, 4\], got 5"),
    (lambda: nearest_neighbours(random_table(5, 2), torch.zeros(2)), "query must be a non-zero vector"),
    (lambda: nearest_neighbours(random_table(5, 2), torch.zeros(3)), "query must be a row index or a vector"),
    (lambda: cooccurrence_counts([torch.tensor([0, 1])], 2, window=0), "window must be a positive integer, got 0"),
    (lambda: cooccurrence_counts([torch.tensor([0, 1])], 0), "vocab_size must be a positive integer, got 0"),
    (lambda: cooccurrence_counts([torch.tensor([[0, 1], [1, 0]])], 2), r"sequences\[0\] must be a 1-D LongTensor"),
    (lambda: ppmi_svd_embeddings([torch.tensor([0, 1])], 2, dim=3), r"dim must be an integer in \[1, 2\], got 3"),
    (lambda: ppmi_svd_embeddings([torch.tensor([0])], 2, dim=1), "no co-occurring pairs"),
])
def test_bad_input_raises_a_clear_value_error(call, message):
    with pytest.raises(ValueError, match=message):
        call()


@pytest.mark.parametrize("call, message", [
    (lambda: lookup_as_matmul(torch.tensor([0.0]), random_table(5, 2)),
     "ids must be a LongTensor of token ids, got dtype"),
    (lambda: lookup_as_matmul([0, 1], random_table(5, 2)), "ids must be a LongTensor of token ids, got list"),
    (lambda: lookup_as_matmul(torch.tensor([0]), torch.zeros(5, 2, dtype=torch.long)),
     "table must be a floating-point tensor, got dtype torch.int64"),
    (lambda: cosine_similarities(random_table(5, 2), [[1.0, 0.0]]), "queries must be a torch.Tensor, got list"),
    (lambda: nearest_neighbours(random_table(5, 2), 1.0), "query must be an integer, got float 1.0"),
    (lambda: nearest_neighbours(random_table(5, 2), True), "query must be an integer, got True"),
    (lambda: nearest_neighbours(random_table(5, 2), 1, k=2.0), "k must be an integer, got float 2.0"),
    (lambda: cooccurrence_counts([torch.tensor([0]), torch.tensor([0.0])], 2), r"sequences\[1\] must be a LongTensor"),
    (lambda: cooccurrence_counts(torch.tensor([0, 1]), 2), "sequences must be a sequence of 1-D LongTensors"),
    (lambda: cooccurrence_counts([torch.tensor([0, 1])], 2.0), "vocab_size must be an integer, got float 2.0"),
])
def test_a_wrong_type_raises_a_clear_type_error(call, message):
    with pytest.raises(TypeError, match=message):
        call()


def test_numpy_integers_work_as_sizes_and_row_indices():
    table = random_table(6, 3)
    ids, sims = nearest_neighbours(table, np.int64(2), k=np.int64(3))
    expected_ids, expected_sims = nearest_neighbours(table, 2, k=3)
    assert torch.equal(ids, expected_ids) and torch.equal(sims, expected_sims)
    assert torch.equal(nearest_neighbours(table, torch.tensor(2), k=3)[0], expected_ids)  # a 0-d tensor is an index
    sequences = [torch.tensor([0, 1, 2, 1, 0, 3])]
    torch.testing.assert_close(cooccurrence_counts(sequences, np.int64(4), window=np.int32(2)),
                               cooccurrence_counts(sequences, 4, window=2))
    assert ppmi_svd_embeddings(sequences, np.int64(4), dim=np.int64(2)).shape == (4, 2)


def small_gpt(tied: bool) -> TinyGPT:
    torch.manual_seed(0)
    model = TinyGPT(TinyGPTConfig(vocab_size=30, context_length=8, d_model=16, n_heads=2, n_layers=1)).double()
    return model if tied else model.untie_output_layer()


@pytest.mark.parametrize("tied", [False, True])
def test_token_table_grad_is_backprop_of_the_mean_next_token_loss(tied):
    batch = torch.tensor([[1, 4, 4, 9, 2], [3, 1, 7, 7, 0]])  # (2, 5): 4 inputs and 4 targets per row
    model = small_gpt(tied)
    grad = token_table_grad(model, batch)  # (V, D)
    assert model.token_embedding.weight.grad is None  # the model's .grad is left alone
    cross_entropy(model(batch[:, :-1]), batch[:, 1:]).backward()  # the reference: plain backprop
    torch.testing.assert_close(grad, model.token_embedding.weight.grad)
    read = torch.zeros(30, dtype=torch.bool)
    read[batch[:, :-1].unique()] = True
    assert (grad[~read] != 0).any(dim=1).all() if tied else (grad[~read] == 0).all()
    assert (grad[read] != 0).any(dim=1).all()


@pytest.mark.parametrize("call, error, message", [
    (lambda: token_table_grad(torch.nn.Linear(2, 2), torch.zeros(1, 3, dtype=torch.long)), TypeError,
     "model must have a token_embedding table"),
    (lambda: token_table_grad("gpt", torch.zeros(1, 3, dtype=torch.long)), TypeError, "model must be a torch.nn.Module"),
    (lambda: token_table_grad(small_gpt(True), torch.zeros(1, 1, dtype=torch.long)), ValueError,
     r"batch must hold at least 2 tokens per row .* got shape \(1, 1\)"),
    (lambda: token_table_grad(small_gpt(True), torch.tensor([[1, 30]])), ValueError, r"batch must be in \[0, 30\)"),
    (lambda: token_table_grad(small_gpt(True), torch.zeros(3, dtype=torch.long)), ValueError, "batch must have 2 dim"),
    (lambda: token_table_grad(small_gpt(True), torch.zeros(1, 3)), TypeError, "batch must be an integer tensor"),
])
def test_token_table_grad_rejects_bad_input(call, error, message):
    with pytest.raises(error, match=message):
        call()
