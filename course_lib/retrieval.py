"""Retrieval-augmented generation (RAG): chunk, index, retrieve, rerank, build the prompt, generate.

A RAG system works in two stages. Offline, the documents are cut into overlapping chunks (`chunk`)
and the chunks are indexed: sparse (`BM25`, `TfidfIndex`: which words each chunk holds) or dense
(`DenseIndex`: one embedding vector per chunk). Online, the question becomes a query, the index
scores every chunk and returns the k best (`Hit`), a reranker may reorder a longer list of
candidates with a costlier scorer (`rerank`), the chunks are written into a prompt (`build_prompt`)
and a language model continues it. `RAGPipeline` runs these stages with a course model and keeps
what each stage produced. `recall_at_k` and `reciprocal_rank` measure a ranking against the ids
known to be relevant (its mean over queries is the MRR).

BM25 (Robertson et al. 1994, Okapi at TREC-3) scores a document d for the query tokens t as::

    score(q, d) = sum over t in q of  idf(t) * f(t, d) * (k1 + 1) / (f(t, d) + k1 * (1 - b + b * |d| / avgdl))

with f(t, d) the count of t in d, |d| the length of d in tokens and avgdl the mean length. k1 sets
how fast repeats of a token stop adding to the score; b how much a long document is discounted.
``idf="lucene"`` is ln(1 + (N - n + 0.5) / (n + 0.5)) for N documents of which n hold t: always
positive. ``idf="okapi"`` is the classic ln((N - n + 0.5) / (n + 0.5)), negative for a token in
more than half the documents; as the rank-bm25 package's ``BM25Okapi`` does, each negative idf is
replaced by ``epsilon`` times the mean idf of the vocabulary (the mean of the raw values, negative
ones included). A query token counts once per occurrence; a token no document holds adds nothing.
Scores equal rank-bm25's. Lucene's own ``BM25Similarity`` uses the same idf but leaves out the
factor (k1 + 1), which is the same for every document and so changes no ranking, defaults to
k1 = 1.2, and stores document lengths rounded to one byte.

The scores are a sparse matrix-vector product. Indexing computes the weight of every (token,
document) pair that occurs, once, and stores the weights by token: for each token, the documents
that hold it and its weight in each (an inverted index, a CSR matrix of shape (V, N)). Scoring a
query adds up its tokens' rows (`np.bincount`): only the documents that share a token with the
query are touched, and nothing loops over documents in Python.

`TfidfIndex` is scikit-learn's default TF-IDF: raw counts times idf ln((1 + N) / (1 + n)) + 1, each
vector scaled to unit length, scored by the cosine of query and chunk. `DenseIndex` scores by the
cosine of embeddings from any embedder (a function from a list of texts to a (n, d) tensor).
Rankings break ties by the lower id, so they are the same on every machine.

Left out: stemming, stop words and phrase queries; approximate nearest-neighbour search (HNSW,
FAISS: `DenseIndex` compares the query with every vector); learned sparse retrieval; training an
embedder; chunking along sentence or section boundaries; adding documents to a sparse index (every
idf would change: build a new one); graded relevance (nDCG).
"""

from __future__ import annotations

import math
import random
import re
import string
from collections import Counter
from collections.abc import Callable, Collection, Hashable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, TypeVar

import numpy as np
import torch
import torch.nn.functional as F

from course_lib.decoding import generate_text
from course_lib.validation import (
    callable_arg,
    float_tensor,
    int_in_range,
    nonnegative_int,
    number_in_range,
    one_of,
    positive_int,
    real,
    type_name,
)
from course_lib.world import RELATIONS, Derivation, DocumentGenerator, Fact, Sentence, World

__all__ = [
    "BM25",
    "DEFAULT_TEMPLATE",
    "DenseIndex",
    "Hit",
    "READING_KINDS",
    "RAGPipeline",
    "RAGTrace",
    "ReadingExample",
    "ReadingTask",
    "TfidfIndex",
    "build_prompt",
    "chunk",
    "fact_passages",
    "greedy_match",
    "person_passages",
    "reading_benchmark",
    "reading_example",
    "reading_pool",
    "recall_at_k",
    "reciprocal_rank",
    "reciprocal_rank_fusion",
    "rerank",
    "top_k",
    "word_tokens",
]

T = TypeVar("T")
_WORD = re.compile(r"\w+")

# --- text -> tokens -> chunks ----------------------------------------------------------------------


def word_tokens(text: str) -> list[str]:
    """The lowercased words of ``text`` (runs of letters, digits and "_"): "Rozi's pet" -> ["rozi", "s", "pet"]."""
    return _WORD.findall(_check_text(text, "text").lower())


def chunk(tokens: str | Sequence[T], size: int, overlap: int = 0) -> list[str] | list[list[T]]:
    """Cut a text or a token sequence into windows of ``size`` items, neighbours sharing ``overlap``.

    A str is cut into words (split at whitespace, punctuation kept) and each chunk is returned as
    its words joined by single spaces: sizes are then counted in words, which read naturally and do
    not depend on a tokenizer. Any other sequence (a tokenizer's ids, to count in the unit of a
    model's context) gives lists. A window starts every ``size - overlap`` items; the last one ends
    at the end of the input and may be shorter; no window lies inside the one before it.

    >>> chunk("a b c d e f g h", size=3, overlap=1)
    ['a b c', 'c d e', 'e f g', 'g h']
    """
    size = positive_int(size, "size")
    overlap = nonnegative_int(overlap, "overlap")
    if overlap >= size:
        raise ValueError(f"overlap must be smaller than size {size}, got {overlap}")
    is_text = isinstance(tokens, str)
    items = tokens.split() if is_text else _sequence(tokens, "tokens")
    if not items:
        raise ValueError(f"tokens must hold at least one {'word' if is_text else 'item'}, got {tokens!r}")
    starts = range(0, max(len(items) - overlap, 1), size - overlap)
    windows = [list(items[s:s + size]) for s in starts]
    return [" ".join(w) for w in windows] if is_text else windows


# --- ranking ---------------------------------------------------------------------------------------


class Hit(NamedTuple):
    """One retrieved item: its id (position in the index, or in the candidates of `rerank`) and score."""

    id: Any
    score: float


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """The ids (positions) of the ``k`` highest scores, best first; ties go to the lower id.

    A ``k`` above the number of scores returns them all, so ``top_k(s, len(s))`` is the full ranking.
    """
    k = positive_int(k, "k")
    scores = np.asarray(scores)
    if scores.ndim != 1:
        raise ValueError(f"scores must be 1-dimensional, got shape {scores.shape}")
    ids = np.arange(len(scores))  # (N,)
    if k < len(scores):  # keep every id that scores at least the k-th best score, then sort those
        ids = np.flatnonzero(scores >= np.partition(scores, len(scores) - k)[len(scores) - k])  # (>= k,)
    return ids[np.argsort(-scores[ids], kind="stable")][:k]  # (min(k, N),)


class _Index:
    """What every index shares: `search` from `scores`, and its size."""

    def scores(self, query: Any) -> np.ndarray:  # (N,)
        raise NotImplementedError

    def __len__(self) -> int:
        raise NotImplementedError

    def search(self, query: Any, k: int) -> list[Hit]:
        """The ``k`` best chunks for ``query``, best first (all of them if ``k`` is larger)."""
        k = positive_int(k, "k")
        scores = self.scores(query)  # (N,)
        return [Hit(int(i), float(scores[i])) for i in top_k(scores, k)]


class _Postings:
    """A sparse (V, N) matrix stored by row (CSR): row t holds the documents containing token t, a weight each."""

    def __init__(self, rows: np.ndarray, columns: np.ndarray, values: np.ndarray, shape: tuple[int, int]) -> None:
        order = np.argsort(rows, kind="stable")  # (nnz,)
        self.indptr = np.concatenate(([0], np.cumsum(np.bincount(rows, minlength=shape[0]))))  # (V + 1,)
        self.indices = columns[order]  # (nnz,) document of each stored weight
        self.data = values[order]  # (nnz,)
        self.shape = shape

    def weighted_row_sum(self, rows: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """sum_i weights[i] * row rows[i], as a dense (N,) vector: the product M^T q for a sparse q.

        The loop runs over the query's tokens; each row is a slice of stored entries, and `np.bincount`
        adds the entries of all of them into their documents.
        """
        if len(rows) == 0:
            return np.zeros(self.shape[1])  # (N,)
        spans = [slice(self.indptr[r], self.indptr[r + 1]) for r in rows]  # one per query token
        documents = np.concatenate([self.indices[s] for s in spans])  # (P,)
        values = np.concatenate([self.data[s] * w for s, w in zip(spans, weights)])  # (P,)
        return np.bincount(documents, weights=values, minlength=self.shape[1])  # (N,)


def _count_terms(documents: list[list[Hashable]]) -> tuple[dict, np.ndarray, np.ndarray, np.ndarray]:
    """The vocabulary (token -> row) and, for every distinct (token, document) pair, its row, document, count."""
    vocabulary: dict[Hashable, int] = {}
    rows, columns, counts = [], [], []
    for d, document in enumerate(documents):
        for token, count in Counter(document).items():
            rows.append(vocabulary.setdefault(token, len(vocabulary)))
            columns.append(d)
            counts.append(count)
    return vocabulary, np.array(rows), np.array(columns), np.array(counts, dtype=np.float64)


def _query_terms(vocabulary: dict, query_tokens: Any) -> tuple[np.ndarray, np.ndarray]:
    """The rows of the query's known tokens and how often each occurs in the query."""
    tokens = _sequence(query_tokens, "query_tokens")
    if not tokens:
        raise ValueError("query_tokens must hold at least one token, got []")
    counts = Counter(_hashable(t, f"query_tokens[{i}]") for i, t in enumerate(tokens))
    known = [(vocabulary[t], c) for t, c in counts.items() if t in vocabulary]
    rows = np.array([r for r, _ in known], dtype=np.int64)
    return rows, np.array([c for _, c in known], dtype=np.float64)


class BM25(_Index):
    """Okapi BM25 over tokenised chunks (see the module docstring for the formula and both idfs).

    ``corpus_tokens`` is one list of tokens per chunk (strings such as `word_tokens` gives, or token
    ids); chunk i gets id i. ``scores(query_tokens)`` gives every chunk's score, an (N,) array;
    ``search(query_tokens, k)`` the k best as `Hit`s. ``k1 >= 0``; ``b`` in [0, 1]; ``epsilon``
    (used only by ``idf="okapi"``) >= 0.
    """

    def __init__(self, corpus_tokens: Sequence[Sequence[Hashable]], k1: float = 1.5, b: float = 0.75,
                 idf: str = "lucene", epsilon: float = 0.25) -> None:
        documents = _check_corpus(corpus_tokens, "corpus_tokens")
        self.k1 = number_in_range(k1, "k1", 0, math.inf, high_open=True)
        self.b = number_in_range(b, "b", 0, 1)
        self.idf_kind = one_of(idf, "idf", ("lucene", "okapi"))
        self.epsilon = number_in_range(epsilon, "epsilon", 0, math.inf, high_open=True)
        self.vocabulary, rows, columns, tf = _count_terms(documents)
        N, V = len(documents), len(self.vocabulary)
        self.doc_lengths = np.array([len(d) for d in documents], dtype=np.float64)  # (N,)
        self.avgdl = float(self.doc_lengths.mean())
        self.doc_freqs = np.bincount(rows, minlength=V)  # (V,) n: how many chunks hold each token
        self.idf = self._idf(N, self.doc_freqs)  # (V,)
        length_norm = self.k1 * (1 - self.b + self.b * self.doc_lengths / self.avgdl)  # (N,)
        weights = self.idf[rows] * tf * (self.k1 + 1) / (tf + length_norm[columns])  # (nnz,)
        self._postings = _Postings(rows, columns, weights, (V, N))

    def _idf(self, N: int, n: np.ndarray) -> np.ndarray:
        """Each token's idf: Lucene's, or the classic one with rank-bm25's floor for negative values."""
        if self.idf_kind == "lucene":
            return np.log(1 + (N - n + 0.5) / (n + 0.5))  # (V,)
        idf = np.log((N - n + 0.5) / (n + 0.5))  # (V,)
        return np.where(idf < 0, self.epsilon * idf.mean(), idf)  # (V,)

    def __len__(self) -> int:
        return self._postings.shape[1]

    def scores(self, query_tokens: Sequence[Hashable]) -> np.ndarray:
        """Every chunk's BM25 score for the query, an (N,) float64 array (0 where no token is shared)."""
        rows, counts = _query_terms(self.vocabulary, query_tokens)  # (Q,), (Q,)
        return self._postings.weighted_row_sum(rows, counts)  # (N,)


class TfidfIndex(_Index):
    """TF-IDF vectors and cosine scores, as scikit-learn's ``TfidfVectorizer`` makes them by default.

    A chunk's vector has, for each token, count * (ln((1 + N) / (1 + n)) + 1), scaled to unit
    length; the query's vector is made the same way from its known tokens, and a score is the
    cosine of the two (0 for a query with no known token). Input as for `BM25`.
    """

    def __init__(self, corpus_tokens: Sequence[Sequence[Hashable]]) -> None:
        documents = _check_corpus(corpus_tokens, "corpus_tokens")
        self.vocabulary, rows, columns, tf = _count_terms(documents)
        N, V = len(documents), len(self.vocabulary)
        self.idf = np.log((1 + N) / (1 + np.bincount(rows, minlength=V))) + 1  # (V,)
        weights = tf * self.idf[rows]  # (nnz,)
        norms = np.sqrt(np.bincount(columns, weights=weights**2, minlength=N))  # (N,)
        self._postings = _Postings(rows, columns, weights / norms[columns], (V, N))

    def __len__(self) -> int:
        return self._postings.shape[1]

    def scores(self, query_tokens: Sequence[Hashable]) -> np.ndarray:
        """Every chunk's cosine similarity with the query, an (N,) float64 array."""
        rows, counts = _query_terms(self.vocabulary, query_tokens)  # (Q,), (Q,)
        query = counts * self.idf[rows]  # (Q,)
        norm = np.linalg.norm(query)
        if norm == 0:
            return np.zeros(len(self))
        return self._postings.weighted_row_sum(rows, query / norm)  # (N,)


class DenseIndex(_Index):
    """Dense retrieval: the cosine similarity of the query's embedding with every chunk's.

    ``embed`` maps a list of n texts to an (n, d) float tensor (any model: its output is read
    without gradients and compared in float64 on the CPU). ``add(texts)`` embeds and appends chunks
    (ids continue from the ones already there); ``scores(query)`` embeds the query text.
    """

    def __init__(self, embed: Callable[[list[str]], torch.Tensor]) -> None:
        self.embed = callable_arg(embed, "embed", "a function from a list of str to an (n, d) tensor")
        self.texts: list[str] = []
        self.vectors = torch.empty(0, 0, dtype=torch.float64)  # (N, d) unit rows

    def __len__(self) -> int:
        return len(self.texts)

    def add(self, texts: Sequence[str]) -> DenseIndex:
        """Embed ``texts`` and append them to the index; returns the index."""
        texts = _check_texts(texts, "texts")
        vectors = self._embed(texts)  # (n, d)
        if self.texts and vectors.shape[1] != self.vectors.shape[1]:
            raise ValueError(f"embed must give vectors of the index's size {self.vectors.shape[1]}, "
                             f"got {vectors.shape[1]}")
        self.vectors = torch.cat([self.vectors, vectors]) if self.texts else vectors  # (N, d)
        self.texts.extend(texts)
        return self

    def scores(self, query: str) -> np.ndarray:
        """Every chunk's cosine similarity with the query text, an (N,) float64 array."""
        if not self.texts:
            raise ValueError("the index is empty: add(texts) before scoring a query")
        q = self._embed([_check_text(query, "query")])[0]  # (d,)
        return (self.vectors @ q).numpy()  # (N,)

    def _embed(self, texts: list[str]) -> torch.Tensor:
        with torch.no_grad():
            vectors = self.embed(list(texts))
        float_tensor(vectors, "embed(texts)", ndim=2)
        if vectors.shape[0] != len(texts):
            raise ValueError(f"embed(texts) must give one row per text, {len(texts)}, got shape "
                             f"{tuple(vectors.shape)}")
        if not torch.isfinite(vectors).all():
            raise ValueError("embed(texts) must give finite values, got nan or inf")
        return F.normalize(vectors.detach().to("cpu", torch.float64), dim=-1)  # (n, d)


def rerank(query: str, candidates: Sequence[str], scorer: Callable[[str, str], float],
           k: int | None = None) -> list[Hit]:
    """The candidates reordered by ``scorer(query, candidate)``, highest first, as `Hit`s.

    A `Hit`'s id is the candidate's position in ``candidates``; ties keep the candidates' order (the
    first stage's ranking). ``k`` keeps the best ``k`` (all when None). A reranker may be too slow to
    score every chunk but can reorder a short list: a cross-encoder, a language model's likelihood.
    """
    query = _check_text(query, "query")
    texts = _check_texts(candidates, "candidates")
    scorer = callable_arg(scorer, "scorer", "a function scorer(query, candidate) -> float")
    k = len(texts) if k is None else positive_int(k, "k")
    scores = np.array([real(scorer(query, t), "scorer(query, candidate)", finite=False)
                       for t in texts])  # (n,)
    return [Hit(int(i), float(scores[i])) for i in top_k(scores, k)]


def reciprocal_rank_fusion(rankings: Sequence[Sequence[Hashable]], rank_constant: float = 60) -> list[Hit]:
    """Fuse rankings (each a list of ids, best first) by summing 1 / (rank_constant + rank) per id.

    Ranks start at 1; an id missing from a ranking adds nothing for it. Cormack, Clarke and
    Buettcher (2009) use rank_constant = 60. Only ranks count, not scores, so rankings whose scores
    are on different scales (BM25 and cosine) fuse without normalisation. Returns every id once,
    best first; ties go to the id seen first (ranking by ranking, best first).
    """
    rankings = _sequence(rankings, "rankings")
    if not rankings:
        raise ValueError("rankings must hold at least one ranking, got []")
    rank_constant = number_in_range(rank_constant, "rank_constant", 0, math.inf, high_open=True)
    fused: dict[Hashable, float] = {}
    for r, ranking in enumerate(rankings):
        for rank, i in enumerate(_check_ranking(ranking, f"rankings[{r}]"), start=1):
            fused[i] = fused.get(i, 0.0) + 1.0 / (rank_constant + rank)
    # sorted is stable: ties keep their first-seen order
    return sorted((Hit(i, s) for i, s in fused.items()), key=lambda hit: -hit.score)


# --- metrics ---------------------------------------------------------------------------------------


def recall_at_k(ranked_ids: Sequence[Hashable], relevant_ids: Collection[Hashable], k: int) -> float:
    """The fraction of the relevant ids found among the first ``k`` ranked ids (all of them if fewer)."""
    ranked = _check_ranking(ranked_ids, "ranked_ids")
    relevant = _check_relevant(relevant_ids)
    k = positive_int(k, "k")
    return len(relevant.intersection(ranked[:k])) / len(relevant)


def reciprocal_rank(ranked_ids: Sequence[Hashable], relevant_ids: Collection[Hashable]) -> float:
    """1 / the rank (from 1) of the first relevant id in the ranking; 0 if none is ranked."""
    ranked = _check_ranking(ranked_ids, "ranked_ids")
    relevant = _check_relevant(relevant_ids)
    return next((1.0 / rank for rank, i in enumerate(ranked, start=1) if i in relevant), 0.0)


# --- prompt and pipeline ---------------------------------------------------------------------------

#: Retrieved chunks, then the question as the start of a sentence the model completes: the prompt a
#: base model trained on plain text (the course's tiny GPT) can continue. An instruction-tuned model
#: would take "Context: {context}\nQuestion: {question}\nAnswer:" or its own chat format.
DEFAULT_TEMPLATE = "{context} {question}"
_SLOTS = ("context", "question")


def build_prompt(question: str, chunks: Sequence[str], template: str = DEFAULT_TEMPLATE,
                 separator: str = " ") -> str:
    """``template`` with ``{context}`` filled by the chunks (joined by ``separator``) and ``{question}``.

    The template must have both slots and no other (write a literal brace as ``{{`` or ``}}``).
    The chunks go in the order given, best first from `search`; an empty list leaves the context
    empty, the closed-book baseline.
    """
    question = _check_text(question, "question")
    chunks = _sequence(chunks, "chunks")
    for i, c in enumerate(chunks):
        if not isinstance(c, str):
            raise TypeError(f"chunks[{i}] must be a str, got {type_name(c)}")
    if not isinstance(separator, str):
        raise TypeError(f"separator must be a str, got {type_name(separator)}")
    slots = _template_slots(template)
    for slot in _SLOTS:
        if slot not in slots:
            raise ValueError(f"template must have a {{{slot}}} slot, got {template!r}")
    return template.format(context=separator.join(chunks), question=question)


@dataclass
class RAGTrace:
    """What one question went through in `RAGPipeline.query`, stage by stage."""

    question: str
    query: list[str] | str  # what the index read: word tokens (sparse) or the question itself (dense)
    hits: list[Hit]  # first-stage retrieval, best first; ids are chunk ids
    reranked: list[Hit] | None  # the hits' chunks in the reranker's order (None without a reranker)
    chunks: list[str]  # the k chunks written into the prompt, best first
    prompt: str
    answer: str  # the model's continuation of the prompt


class RAGPipeline:
    """Retrieval-augmented generation with a course language model, one visible stage at a time.

    Offline, `build_index(documents)` cuts the documents into chunks of ``chunk_size`` words
    sharing ``overlap`` (`chunk`; ``chunk_size=None`` keeps every document whole) and indexes them:
    ``retriever="bm25"`` or ``"tfidf"`` read each chunk's `word_tokens`, ``"dense"`` embeds the
    chunk texts with ``embed`` (`DenseIndex`). Online, `query(question)`: retrieve (`retrieve`:
    ``candidates`` chunks when there is a ``reranker``, else ``k``), rerank with
    ``reranker(question, chunk) -> score`` if given and keep ``k``, write the prompt
    (`build_prompt`), and generate with `course_lib.decoding.generate_text` (greedy, at most
    ``max_new_tokens`` tokens, ending before ``stop``). The offline outputs stay on the pipeline
    (``documents``, ``chunks``, ``chunk_tokens``, ``index``), the online ones in the returned
    `RAGTrace` (also kept as ``last``). ``model`` and ``tokenizer`` are as `generate_text` takes
    them, e.g. ``course_lib.zoo.load_tiny_gpt()``; prompt and answer must fit its context.
    """

    def __init__(self, model: Any, tokenizer: Any, *, retriever: str = "bm25",
                 embed: Callable[[list[str]], torch.Tensor] | None = None, k: int = 3,
                 chunk_size: int | None = None, overlap: int = 0,
                 reranker: Callable[[str, str], float] | None = None, candidates: int = 10,
                 template: str = DEFAULT_TEMPLATE, separator: str = " ", max_new_tokens: int = 8,
                 stop: str | None = ".") -> None:
        self.model, self.tokenizer = model, tokenizer
        self.retriever = one_of(retriever, "retriever", ("bm25", "tfidf", "dense"))
        if (embed is None) == (retriever == "dense"):
            raise ValueError(f"embed must be given exactly when retriever is 'dense', got retriever={retriever!r} "
                             f"and embed={'None' if embed is None else type_name(embed)}")
        self.embed = embed
        self.k = positive_int(k, "k")
        self.chunk_size = None if chunk_size is None else positive_int(chunk_size, "chunk_size")
        self.overlap = nonnegative_int(overlap, "overlap")
        if self.chunk_size is not None and self.overlap >= self.chunk_size:
            raise ValueError(f"overlap must be smaller than chunk_size {self.chunk_size}, got {self.overlap}")
        if reranker is not None:
            callable_arg(reranker, "reranker", "a function (query, chunk) -> float")
        self.reranker = reranker
        self.candidates = positive_int(candidates, "candidates")
        build_prompt("question", [], template, separator)  # checks the template's slots and separator now
        self.template, self.separator = template, separator
        self.max_new_tokens = positive_int(max_new_tokens, "max_new_tokens")
        self.stop = stop
        self.documents: list[str] = []
        self.chunks: list[str] = []
        self.chunk_tokens: list[list[str]] = []
        self.index: BM25 | TfidfIndex | DenseIndex | None = None
        self.last: RAGTrace | None = None

    def build_index(self, documents: Sequence[str]) -> RAGPipeline:
        """The offline stage: chunk ``documents``, tokenise the chunks, index them. Returns the pipeline."""
        documents = _check_texts(documents, "documents")
        if self.chunk_size is None:
            chunks = list(documents)
        else:
            chunks = [c for d in documents for c in chunk(d, self.chunk_size, self.overlap)]
        if self.retriever == "dense":
            index, chunk_tokens = DenseIndex(self.embed).add(chunks), []
        else:
            chunk_tokens = [word_tokens(c) for c in chunks]
            empty = next((i for i, t in enumerate(chunk_tokens) if not t), None)
            if empty is not None:
                raise ValueError(f"documents must give chunks with at least one word, got chunk {chunks[empty]!r}")
            index = BM25(chunk_tokens) if self.retriever == "bm25" else TfidfIndex(chunk_tokens)
        self.documents, self.chunks, self.chunk_tokens, self.index = list(documents), chunks, chunk_tokens, index
        return self

    def texts(self, ids: Sequence[int]) -> list[str]:
        """The chunks with these ids (positions in ``chunks``)."""
        result = []
        for i in _sequence(ids, "ids"):
            if isinstance(i, bool) or not isinstance(i, (int, np.integer)) or not 0 <= i < len(self.chunks):
                raise ValueError(f"ids must be chunk ids in [0, {len(self.chunks)}), got {i!r}")
            result.append(self.chunks[i])
        return result

    def retrieve(self, question: str, k: int) -> list[Hit]:
        """The first stage alone: the ``k`` best chunks for ``question``, best first."""
        return self._index().search(self._query(question), k)

    def query(self, question: str) -> RAGTrace:
        """Every online stage for ``question``; the trace is returned and kept as ``last``."""
        query = self._query(question)
        hits = self._index().search(query, self.k if self.reranker is None else max(self.k, self.candidates))
        reranked = None
        if self.reranker is not None:
            order = rerank(question, self.texts([h.id for h in hits]), self.reranker)
            reranked = [Hit(hits[h.id].id, h.score) for h in order]
        kept = (hits if reranked is None else reranked)[:self.k]
        chunks = self.texts([h.id for h in kept])
        prompt = build_prompt(question, chunks, self.template, self.separator)
        answer = generate_text(self.model, self.tokenizer, prompt, self.max_new_tokens, stop=self.stop)
        self.last = RAGTrace(question, query, hits, reranked, chunks, prompt, answer)
        return self.last

    def _index(self) -> BM25 | TfidfIndex | DenseIndex:
        if self.index is None:
            raise ValueError("the pipeline has no index yet: call build_index(documents) first")
        return self.index

    def _query(self, question: str) -> list[str] | str:
        question = _check_text(question, "question")
        return question if self.retriever == "dense" else word_tokens(question)


# --- passages from the course world ----------------------------------------------------------------


def fact_passages(world: World, template: int = 0) -> list[str]:
    """One passage per fact of ``world.facts()``, in that order: the fact as one sentence of the corpus.

    The sentence names the person. ``template=0`` is the phrasing that
    `course_lib.world.DocumentGenerator.fact_prompt` cuts into prompt and answer ("Rozi lives in
    Pominport."); ``template=1`` is the corpus's other one ("Rozi's home is in Pominport."), which
    shares fewer words with that prompt.
    """
    template = int_in_range(template, "template", 0, 1)
    writer = _writer(world)
    return [writer.render(Derivation(f.subject, (Sentence(f.relation, template, True),))) for f in world.facts()]


def person_passages(world: World) -> list[str]:
    """One passage per person of ``world.people``, in that order: their facts as one corpus document.

    Sentence j states relation ``RELATIONS[j]`` (template 0), so ``world.facts()[5 * i + j]`` is
    sentence j of passage i. As in the corpus, the first sentence names the person and the others
    say "she" or "he": a chunk that starts after the name no longer says whom it is about.
    """
    writer = _writer(world)
    return [writer.render(Derivation(p.name, tuple(Sentence(r, 0, j == 0) for j, r in enumerate(RELATIONS))))
            for p in world.people]


def _writer(world: World) -> DocumentGenerator:
    """A generator that renders 1 to 5 relation sentences: the corpus's own phrasing of a fact."""
    if not isinstance(world, World):
        raise TypeError(f"world must be a World, got {type_name(world)}")
    return DocumentGenerator(world, kinds=RELATIONS, min_sentences=1, max_sentences=len(RELATIONS))


# --- reading: questions answered from passages ----------------------------------------------------

#: The kinds of `ReadingTask` example: the answer is in a passage of a world the model has never
#: seen ("read"), in no passage but true of the shipped world ("recall", closed book), or in a passage
#: that changed one of the shipped world's facts ("update").
READING_KINDS = ("read", "recall", "update")


class ReadingExample(NamedTuple):
    """One question with its context: ``prompt`` (`build_prompt` of the passages and the question) and
    the ``answer`` that completes it (" Pominport."), the ``fact`` asked about, the ``context`` facts
    whose passages the prompt holds (best first) and the ``kind`` of example (`READING_KINDS`)."""

    prompt: str
    answer: str
    fact: Fact
    context: tuple[Fact, ...]
    kind: str


def reading_example(world: World, fact: Fact, context: Sequence[Fact], kind: str = "read") -> ReadingExample:
    """The question of ``fact`` after the passages (`fact_passages`) of the ``context`` facts, in that order.

    The question and answer are `DocumentGenerator.fact_prompt`'s cut of the fact's sentence
    ("Rozi lives in" + " Pominport."); every fact must be true in ``world``. An empty context is the
    closed-book question.
    """
    writer = _writer(world)
    kind = one_of(kind, "kind", READING_KINDS)
    context = tuple(_sequence(context, "context"))
    for i, f in enumerate((fact, *context)):
        if not isinstance(f, tuple) or len(f) != 3 or f[1] not in RELATIONS or world.person(f[0]).value(f[1]) != f[2]:
            raise ValueError(f"{'fact' if i == 0 else f'context[{i - 1}]'} must be a fact of the world, got {f!r}")
    question, answer = writer.fact_prompt(fact)
    passages = [writer.render(Derivation(f.subject, (Sentence(f.relation, 0, True),))) for f in context]
    return ReadingExample(build_prompt(question, passages), answer, Fact(*fact), context, kind)


class ReadingTask:
    """Examples that teach a language model to answer from its context when the context holds the
    answer, and from its weights about ``world`` when it is empty.

    `sample(rng)` draws one `ReadingExample` of a kind drawn with probabilities ``mix`` (over
    `READING_KINDS`):

    - "read": a world drawn from ``pool`` (worlds generated from other seeds: new names, new facts)
      and one of its facts, asked after its passage and 0 to ``max_distractors`` passages of other
      facts of that world, in random order; each distractor is, with probability 1/2, a near miss
      (the same relation about another person: what BM25 ranks next), else any other fact. The
      answer can only be read: spread over many worlds, no fact recurs often enough to be memorised.
    - "recall": one of ``world``'s facts, closed book (empty context): answered from memory.
    - "update": one of ``world``'s facts changed to another value (`World.with_fact`), asked after
      its new passage and distractors from the same updated world: the context must win over memory.

    A context that holds no passage about the question but other passages never occurs: what a
    model trained here does with one (a retrieval miss) is what the lessons measure.
    """

    def __init__(self, world: World, pool: Sequence[World], mix: dict[str, float] | None = None,
                 max_distractors: int = 2) -> None:
        _writer(world)
        self.world = world
        self.pool = tuple(_sequence(pool, "pool"))
        if not self.pool:
            raise ValueError("pool must hold at least one world, got []")
        for i, w in enumerate(self.pool):
            if not isinstance(w, World):
                raise TypeError(f"pool[{i}] must be a World, got {type_name(w)}")
        mix = {"read": 0.6, "recall": 0.3, "update": 0.1} if mix is None else dict(mix)
        for kind, weight in mix.items():
            one_of(kind, "mix key", READING_KINDS)
            number_in_range(weight, f"mix[{kind!r}]", 0, math.inf, high_open=True)
        if not sum(mix.values()) > 0:
            raise ValueError(f"mix must give some kind a positive weight, got {mix}")
        self.mix = mix
        self.max_distractors = nonnegative_int(max_distractors, "max_distractors")
        self._kinds, self._weights = list(mix), list(mix.values())

    def sample(self, rng: random.Random) -> ReadingExample:
        """One example; the same ``rng`` state gives the same example."""
        if not isinstance(rng, random.Random):
            raise TypeError(f"rng must be a random.Random, got {type_name(rng)}")
        kind = rng.choices(self._kinds, self._weights)[0]
        if kind == "recall":
            return reading_example(self.world, rng.choice(self.world.facts()), (), kind)
        if kind == "read":
            world = rng.choice(self.pool)
            fact = rng.choice(world.facts())
        else:
            old = rng.choice(self.world.facts())
            values = [v for v in _values(self.world, old.relation) if v not in (old.object, old.subject)]
            fact = Fact(old.subject, old.relation, rng.choice(values))
            world = self.world.with_fact(fact)
        n = rng.randint(0, self.max_distractors)
        n_same = sum(rng.random() < 0.5 for _ in range(n))  # near misses: the same relation, another person
        same = [f for f in world.facts() if f.relation == fact.relation and f.subject != fact.subject]
        other = [f for f in world.facts() if f.relation != fact.relation or f.subject == fact.subject and f != fact]
        context = [fact, *rng.sample(same, n_same), *rng.sample(other, n - n_same)]
        rng.shuffle(context)
        return reading_example(world, fact, context, kind)


def reading_pool(n: int, start: int = 1) -> list[World]:
    """``n`` worlds generated from the seeds ``start, start + 1, ...`` (the shipped world is seed 0)."""
    n = positive_int(n, "n")
    start = nonnegative_int(start, "start")
    return [World.generate(seed=seed) for seed in range(start, start + n)]


def reading_benchmark(world: World, held_out: Sequence[World], seed: int = 0) -> dict[str, list[ReadingExample]]:
    """Four sets of questions, seeded, that tell reading from remembering:

    - ``closed_book``: every fact of ``world``, no context;
    - ``passage``: one fact of each person of each ``held_out`` world (relations in turn), after its
      passage and two passages of other facts of that world, in random order;
    - ``distractor``: every fact of ``world`` after one passage about another person with the same
      relation and another value (what a retriever returns when it misses; ``context[0]``);
    - ``update``: every fact of ``world`` changed to another value (`World.with_fact`), after the
      new passage and two other passages of the updated world, in random order.
    """
    _writer(world)
    rng = random.Random(nonnegative_int(seed, "seed"))
    sets: dict[str, list[ReadingExample]] = {"closed_book": [], "passage": [], "distractor": [], "update": []}
    for fact in world.facts():
        sets["closed_book"].append(reading_example(world, fact, ()))
        others = [f for f in world.facts() if f.relation == fact.relation and f.subject != fact.subject
                  and f.object not in (fact.object, fact.subject)]
        sets["distractor"].append(reading_example(world, fact, (rng.choice(others),)))
        values = [v for v in _values(world, fact.relation) if v not in (fact.object, fact.subject)]
        new = Fact(fact.subject, fact.relation, rng.choice(values))
        updated = world.with_fact(new)
        sets["update"].append(_with_distractors(updated, new, 2, rng, "update"))
    for i, other in enumerate(_sequence(held_out, "held_out")):
        _writer(other)
        for j, person in enumerate(other.people):
            relation = RELATIONS[(i + j) % len(RELATIONS)]
            sets["passage"].append(_with_distractors(other, Fact(person.name, relation, person.value(relation)),
                                                     2, rng, "read"))
    return sets


def _with_distractors(world: World, fact: Fact, n: int, rng: random.Random, kind: str) -> ReadingExample:
    """``fact``'s question after its passage and ``n`` passages of other facts of ``world``, shuffled."""
    context = [fact, *rng.sample([f for f in world.facts() if f != fact], n)]
    rng.shuffle(context)
    return reading_example(world, fact, context, kind)


def greedy_match(model: Any, tokenizer: Any, prompts: Sequence[str], answers: Sequence[str]) -> np.ndarray:
    """Whether greedy decoding continues each prompt with its answer, as a bool array (one pass per batch).

    Greedy decoding writes the answer's tokens exactly when, fed the prompt and the answer (teacher
    forcing), the model's argmax at every answer position is the next answer token: so one forward
    pass over all the prompts gives what token-by-token `generate_text` would. The prompt and the
    answer are encoded separately; an answer ending with "." is matched up to and including it.
    Ties between logits go to the lower id, as in `course_lib.decoding.greedy_decode`.
    """
    prompts, answers = _check_texts(prompts, "prompts"), _check_texts(answers, "answers")
    if len(prompts) != len(answers):
        raise ValueError(f"answers must have one answer per prompt ({len(prompts)}), got {len(answers)}")
    rows = [(tokenizer.encode(p), tokenizer.encode(a)) for p, a in zip(prompts, answers)]
    length = max(len(p) + len(a) for p, a in rows) - 1
    device = next(model.parameters()).device
    ids = torch.zeros(len(rows), length, dtype=torch.long, device=device)  # (B, T) right-padded: causal, harmless
    for i, (p, a) in enumerate(rows):
        ids[i, :len(p) + len(a) - 1] = torch.tensor((p + a)[:-1])
    with torch.no_grad():
        predicted = model(ids).argmax(dim=-1).cpu()  # (B, T) argmax picks the lowest id among ties
    return np.array([predicted[i, len(p) - 1:len(p) + len(a) - 1].tolist() == a for i, (p, a) in enumerate(rows)])


def _values(world: World, relation: str) -> tuple[str, ...]:
    """The values ``relation`` can take in ``world``."""
    return {"lives_in": world.cities, "works_as": world.jobs, "has_pet": world.pets,
            "likes_colour": world.colours, "best_friend": world.names}[relation]


# --- argument checks used only here ----------------------------------------------------------------


def _check_text(text: Any, name: str) -> str:
    """``text`` if it is a str with something other than whitespace."""
    if not isinstance(text, str):
        raise TypeError(f"{name} must be a str, got {type_name(text)}")
    if not text.strip():
        raise ValueError(f"{name} must not be empty, got {text!r}")
    return text


def _check_texts(texts: Any, name: str) -> list[str]:
    """``texts`` as a non-empty list of non-empty strings."""
    if isinstance(texts, str):
        raise TypeError(f"{name} must be a list of str, got a single str")
    texts = _sequence(texts, name)
    if not texts:
        raise ValueError(f"{name} must hold at least one text, got []")
    return [_check_text(t, f"{name}[{i}]") for i, t in enumerate(texts)]


def _sequence(value: Any, name: str) -> list:
    """``value`` as a list, if it is a sequence (a list, tuple, array or tensor), never a str or a set."""
    if isinstance(value, (str, bytes)) or not isinstance(value, (Sequence, np.ndarray, torch.Tensor)):
        raise TypeError(f"{name} must be a sequence (a list, tuple or array), got {type_name(value)}")
    return value.tolist() if isinstance(value, (np.ndarray, torch.Tensor)) else list(value)


def _hashable(token: Any, name: str) -> Hashable:
    if not isinstance(token, Hashable):
        raise TypeError(f"{name} must be a hashable token (a str or an int), got {type_name(token)}")
    return token


def _check_corpus(corpus_tokens: Any, name: str) -> list[list[Hashable]]:
    """A non-empty list of non-empty token lists (a str in their place is refused: tokenise it first)."""
    documents = _sequence(corpus_tokens, name)
    if not documents:
        raise ValueError(f"{name} must hold at least one chunk, got []")
    checked = []
    for d, document in enumerate(documents):
        if isinstance(document, str):
            raise TypeError(f"{name}[{d}] must be a list of tokens (e.g. word_tokens(text)), got a str")
        tokens = _sequence(document, f"{name}[{d}]")
        if not tokens:
            raise ValueError(f"{name}[{d}] must hold at least one token, got []")
        checked.append([_hashable(t, f"{name}[{d}][{i}]") for i, t in enumerate(tokens)])
    return checked


def _check_ranking(ranked_ids: Any, name: str) -> list[Hashable]:
    """A ranking as a list of ids, each at most once."""
    ranked = [_hashable(i, f"{name}[{r}]") for r, i in enumerate(_sequence(ranked_ids, name))]
    if len(set(ranked)) != len(ranked):
        repeated = next(i for i, c in Counter(ranked).items() if c > 1)
        raise ValueError(f"{name} must list each id once, got {repeated!r} {Counter(ranked)[repeated]} times")
    return ranked


def _check_relevant(relevant_ids: Any) -> set[Hashable]:
    """The relevant ids as a non-empty set."""
    if isinstance(relevant_ids, (str, bytes)) or not isinstance(relevant_ids, (Collection, np.ndarray)):
        raise TypeError(f"relevant_ids must be a collection of ids (a set or list), got {type_name(relevant_ids)} "
                        f"{relevant_ids!r}")
    values = relevant_ids.tolist() if isinstance(relevant_ids, np.ndarray) else relevant_ids
    relevant = {_hashable(i, "relevant_ids") for i in values}
    if not relevant:
        raise ValueError("relevant_ids must hold at least one id, got an empty collection")
    return relevant


def _template_slots(template: Any) -> set[str]:
    """The slot names of a str.format template, which may only be context and question."""
    if not isinstance(template, str):
        raise TypeError(f"template must be a str, got {type_name(template)}")
    try:
        slots = {field for _, field, _, _ in string.Formatter().parse(template) if field is not None}
    except ValueError as error:
        raise ValueError(f"template must be a str.format template, got {template!r}: {error}") from None
    unknown = sorted(slots - set(_SLOTS))
    if unknown:
        raise ValueError(f"template may only have the slots {{context}} and {{question}}, got "
                         f"{{{unknown[0]}}} in {template!r}")
    return slots
