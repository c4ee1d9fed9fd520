"""Token embeddings: a lookup table, the geometry of its rows, and a picture of it.

An embedding layer is a table ``E`` of shape ``(V, D)``. Looking up token ids is the same as
multiplying their one-hot rows by ``E`` (`lookup_as_matmul`); that identity is why the gradient of
the loss with respect to ``E`` is zero on every row whose token is absent from the batch. The rows
live in a space where direction carries meaning, which `cosine_similarities` and
`nearest_neighbours` measure and `project_2d` draws (PCA from `course_lib.linalg`).
`token_table_grad` is the gradient a language model's token table receives from one batch.
`ppmi_svd_embeddings` builds count-based embeddings (positive PMI of co-occurrences, then a
truncated SVD) to compare with the learned table of a trained model.

Left out: training embeddings by gradient descent (that is what `course_lib.models` does), Word2Vec
and GloVe, approximate nearest-neighbour indexes, and non-linear projections such as t-SNE or UMAP.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from course_lib.linalg import pca
from course_lib.losses import cross_entropy
from course_lib.validation import float_tensor, int_in_range, integer_tensor, module, positive_int, type_name

__all__ = [
    "lookup_as_matmul", "cosine_similarities", "nearest_neighbours", "project_2d", "cooccurrence_counts",
    "ppmi_svd_embeddings", "token_table_grad",
]


def _check_ids(ids: object, vocab_size: int, name: str = "ids") -> torch.Tensor:
    if not isinstance(ids, torch.Tensor) or ids.dtype != torch.long:
        got = f"dtype {ids.dtype}" if isinstance(ids, torch.Tensor) else type_name(ids)
        raise TypeError(f"{name} must be a LongTensor of token ids, got {got}")
    if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= vocab_size):
        raise ValueError(f"{name} must be in [0, {vocab_size}), got values in "
                         f"[{int(ids.min())}, {int(ids.max())}]")
    return ids


def lookup_as_matmul(ids: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """``one_hot(ids) @ table``: the same rows as ``table[ids]``, written as a matrix product.

    ``ids`` has any shape ``(...)``; the result is ``(..., D)``.
    """
    table = float_tensor(table, "table", ndim=2)  # (V, D)
    ids = _check_ids(ids, table.shape[0])
    one_hot = torch.nn.functional.one_hot(ids, table.shape[0]).to(table.dtype)  # (..., V)
    return one_hot @ table  # (..., D)


def cosine_similarities(table: torch.Tensor, queries: torch.Tensor) -> torch.Tensor:
    """Cosine similarity of every query ``(Q, D)`` with every row of ``table`` ``(V, D)``: ``(Q, V)``.

    A zero row has similarity 0 with everything (its direction is undefined).
    """
    table = float_tensor(table, "table", ndim=2)  # (V, D)
    queries = float_tensor(queries, "queries", ndim=2)  # (Q, D)
    if queries.shape[1] != table.shape[1]:
        raise ValueError(f"queries must have D={table.shape[1]} columns like table, got shape {tuple(queries.shape)}")
    rows = torch.nn.functional.normalize(table, dim=-1)  # (V, D) unit rows, zero rows stay zero
    unit_queries = torch.nn.functional.normalize(queries, dim=-1)  # (Q, D)
    return unit_queries @ rows.T  # (Q, V)


def nearest_neighbours(table: torch.Tensor, query: int | torch.Tensor, k: int = 5) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``k`` rows of ``table`` most similar by cosine to ``query``, most similar first.

    ``query`` is a row index (that row itself is left out of its neighbours) or a vector ``(D,)``.
    Returns ``(ids (k,), similarities (k,))``; equal similarities are ordered by lower id.
    """
    table = float_tensor(table, "table", ndim=2)  # (V, D)
    n_rows = table.shape[0]
    if isinstance(query, torch.Tensor) and query.ndim > 0:
        if query.shape != (table.shape[1],):
            raise ValueError(f"query must be a row index or a vector of shape ({table.shape[1]},), "
                             f"got shape {tuple(query.shape)}")
        vector, excluded = query.to(table.dtype), None
    else:
        excluded = int_in_range(query, "query", 0, n_rows - 1)  # a row index
        vector = table[excluded]
    if not bool(vector.any()):
        raise ValueError("query must be a non-zero vector: the cosine of a zero vector is undefined")
    k = int_in_range(k, "k", 1, n_rows - (excluded is not None))
    similarities = cosine_similarities(table, vector[None])[0]  # (V,)
    if excluded is not None:
        similarities[excluded] = float("-inf")
    order = torch.sort(similarities, descending=True, stable=True).indices[:k]  # (k,)
    return order, similarities[order]


def project_2d(vectors: torch.Tensor) -> torch.Tensor:
    """Coordinates of the rows ``(N, D)`` on their first two principal components: ``(N, 2)``.

    The sign of each axis follows `course_lib.linalg.pca`'s documented convention.
    """
    vectors = float_tensor(vectors, "vectors", ndim=2)  # (N, D)
    return pca(vectors, n_components=2).transform(vectors)  # (N, 2)


def cooccurrence_counts(sequences: Sequence[torch.Tensor], vocab_size: int, window: int = 2) -> torch.Tensor:
    """Counts ``C[w, c]`` of token ``c`` within ``window`` positions of ``w`` (both sides): ``(V, V)``.

    Each sequence is a 1-D LongTensor; windows never cross from one sequence into the next.
    """
    vocab_size = positive_int(vocab_size, "vocab_size")
    window = positive_int(window, "window")
    if isinstance(sequences, (torch.Tensor, str)):
        raise TypeError(f"sequences must be a sequence of 1-D LongTensors (wrap a single one in a list), "
                        f"got {type(sequences).__name__}")
    counts = torch.zeros(vocab_size, vocab_size, dtype=torch.float64)  # (V, V)
    for i, ids in enumerate(sequences):
        ids = _check_ids(ids, vocab_size, f"sequences[{i}]")
        if ids.dim() != 1:
            raise ValueError(f"sequences[{i}] must be a 1-D LongTensor, got shape {tuple(ids.shape)}")
        for offset in range(1, min(window, len(ids) - 1) + 1):
            left, right = ids[:-offset], ids[offset:]  # (n - offset,) each
            ones = torch.ones(len(left), dtype=torch.float64)
            counts.index_put_((left, right), ones, accumulate=True)
            counts.index_put_((right, left), ones, accumulate=True)
    return counts


def ppmi_svd_embeddings(sequences: Sequence[torch.Tensor], vocab_size: int, dim: int, window: int = 2) -> torch.Tensor:
    """Count-based embeddings ``(V, dim)``: positive PMI of co-occurrences, then a truncated SVD.

    ``PPMI[w, c] = max(0, log(C[w, c] * N / (C[w, :] * C[:, c])))`` with ``N`` the total count; the
    rows of ``U_dim * sqrt(S_dim)`` of its SVD are the embeddings (the symmetric weighting that Levy,
    Goldberg & Dagan 2015, section 3.3, found to work better than ``U * S``). Tokens never seen get a
    zero row.
    Singular vectors are defined up to sign, so each axis may flip across platforms; cosine
    similarities between rows do not change.
    """
    counts = cooccurrence_counts(sequences, vocab_size, window)  # (V, V)
    dim = int_in_range(dim, "dim", 1, vocab_size)
    total = counts.sum()
    if total == 0:
        raise ValueError("sequences contain no co-occurring pairs (every sequence is shorter than 2 tokens)")
    row, col = counts.sum(1, keepdim=True), counts.sum(0, keepdim=True)  # (V, 1), (1, V)
    pmi = torch.log(counts * total / (row * col))  # (V, V), -inf or nan where counts are 0
    ppmi = torch.where(counts > 0, pmi.clamp(min=0.0), torch.zeros_like(pmi))  # (V, V)
    U, S, _ = torch.linalg.svd(ppmi)  # (V, V), (V,)
    return (U[:, :dim] * S[:dim].sqrt()).float()  # (V, dim)


def token_table_grad(model: torch.nn.Module, batch: torch.Tensor) -> torch.Tensor:
    """Gradient of the mean next-token cross-entropy of ``batch`` with respect to ``model.token_embedding.weight``.

    ``batch`` (B, T + 1) holds token ids: the model reads ``batch[:, :-1]`` and is scored on
    ``batch[:, 1:]``. ``model`` maps ids (B, T) to logits (B, T, V) and has a ``token_embedding``
    table (V, D); when the output layer is tied to that table, the gradient includes its term too.
    No ``.grad`` of the model is touched. Left out: padding and masked positions (every position
    counts).
    """
    model = module(model, "model")
    batch = integer_tensor(batch, "batch", ndim=2)
    if batch.shape[1] < 2:
        raise ValueError(f"batch must hold at least 2 tokens per row (inputs and targets), "
                         f"got shape {tuple(batch.shape)}")
    table = getattr(model, "token_embedding", None)
    if not isinstance(table, torch.nn.Embedding):
        raise TypeError(f"model must have a token_embedding table (nn.Embedding), got {type_name(table)}")
    _check_ids(batch, table.num_embeddings, "batch")
    loss = cross_entropy(model(batch[:, :-1]), batch[:, 1:])  # mean over the B * T positions
    (grad,) = torch.autograd.grad(loss, table.weight)  # (V, D)
    return grad
