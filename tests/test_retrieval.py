"""Tests for course_lib.retrieval: BM25 against a direct loop over the formula and rank-bm25's numbers,
TF-IDF against scikit-learn's worked example, dense retrieval, reranking, fusion, the metrics on
hand-made rankings, prompts, the pipeline with the tiny GPT, the world's passages, bad input."""

from __future__ import annotations

import itertools
import math
import random
from collections import Counter

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from course_lib.datasets import load_generator, load_world
from course_lib.decoding import generate_text
from course_lib.retrieval import (
    BM25,
    DEFAULT_TEMPLATE,
    READING_KINDS,
    DenseIndex,
    Hit,
    RAGPipeline,
    ReadingTask,
    TfidfIndex,
    build_prompt,
    chunk,
    fact_passages,
    greedy_match,
    person_passages,
    reading_benchmark,
    reading_example,
    reading_pool,
    recall_at_k,
    reciprocal_rank,
    reciprocal_rank_fusion,
    rerank,
    top_k,
    word_tokens,
)
from course_lib.world import RELATIONS, Fact
from course_lib.zoo import load_tiny_gpt

# rank-bm25's test corpus (tests/_helpers.py, SIMPLE_CORPUS)
SMALL = [["the", "cat", "sat"], ["the", "dog", "ran", "fast"], ["a", "cat", "and", "a", "dog"],
         ["the", "cat", "sat", "on", "the", "mat"]]


def bm25_loop(corpus, query, k1=1.5, b=0.75, idf="lucene", epsilon=0.25):
    """BM25 written out term by term and document by document, straight from the formula."""
    N = len(corpus)
    avgdl = sum(len(d) for d in corpus) / N
    vocabulary = sorted({t for d in corpus for t in d})
    n = {t: sum(t in d for d in corpus) for t in vocabulary}
    if idf == "lucene":
        idfs = {t: math.log(1 + (N - n[t] + 0.5) / (n[t] + 0.5)) for t in vocabulary}
    else:
        raw = {t: math.log((N - n[t] + 0.5) / (n[t] + 0.5)) for t in vocabulary}
        mean = sum(raw.values()) / len(raw)
        idfs = {t: epsilon * mean if v < 0 else v for t, v in raw.items()}
    scores = []
    for d in corpus:
        score = 0.0
        for t in query:
            f = d.count(t)
            if f:
                score += idfs[t] * f * (k1 + 1) / (f + k1 * (1 - b + b * len(d) / avgdl))
        scores.append(score)
    return np.array(scores)


def tfidf_loop(corpus, query):
    """Cosine of scikit-learn's default TF-IDF vectors, with dicts and loops."""
    N = len(corpus)
    n = Counter(t for d in corpus for t in set(d))
    idf = {t: math.log((1 + N) / (1 + n[t])) + 1 for t in n}

    def unit(tokens):
        v = {t: c * idf[t] for t, c in Counter(tokens).items() if t in idf}
        norm = math.sqrt(sum(x * x for x in v.values()))
        return {t: x / norm for t, x in v.items()} if norm else {}

    q = unit(query)
    return np.array([sum(x * unit(d).get(t, 0.0) for t, x in q.items()) for d in corpus])


def random_corpus(seed, n_docs=60, vocab=25):
    rng = np.random.default_rng(seed)
    words = [f"w{i}" for i in range(vocab)]
    return [list(rng.choice(words, size=rng.integers(1, 15))) for _ in range(n_docs)], words


@pytest.fixture(scope="module")
def world():
    return load_world()


@pytest.fixture(scope="module")
def generator():
    return load_generator()


# --- tokens and chunks ------------------------------------------------------------------------------


def test_word_tokens_lowercases_and_drops_punctuation():
    assert word_tokens("Rozi's pet is a cat.") == ["rozi", "s", "pet", "is", "a", "cat"]
    assert word_tokens("On day 12, he visited Pominport.") == ["on", "day", "12", "he", "visited", "pominport"]


def test_chunk_text_and_tokens():
    assert chunk("a b c d e f g h", size=3, overlap=1) == ["a b c", "c d e", "e f g", "g h"]
    assert chunk("a b c d e f g", size=3, overlap=1) == ["a b c", "c d e", "e f g"]  # no window inside the last
    assert chunk("one  two\nthree", size=2) == ["one two", "three"]
    assert chunk("short text", size=10, overlap=3) == ["short text"]
    assert chunk([5, 6, 7, 8, 9], size=2, overlap=1) == [[5, 6], [6, 7], [7, 8], [8, 9]]
    assert chunk(np.arange(4), size=3) == [[0, 1, 2], [3]]


@given(st.integers(1, 40), st.integers(1, 8), st.integers(0, 7))
def test_chunks_cover_the_input_and_neighbours_share_overlap(n, size, overlap):
    overlap = min(overlap, size - 1)
    items = list(range(n))
    windows = chunk(items, size, overlap)
    assert all(1 <= len(w) <= size for w in windows)
    assert windows[0][0] == 0 and windows[-1][-1] == n - 1
    for before, after in itertools.pairwise(windows):
        assert before[-overlap:] == after[:overlap] if overlap else before[-1] + 1 == after[0]
        assert after[-1] > before[-1]  # no window lies inside the one before it
    rebuilt = windows[0] + [x for w in windows[1:] for x in w[overlap:]]
    assert rebuilt == items


def test_chunk_bad_input():
    with pytest.raises(ValueError, match="overlap must be smaller than size 3, got 3"):
        chunk("a b c d", size=3, overlap=3)
    with pytest.raises(ValueError, match="size must be a positive integer, got 0"):
        chunk("a b", size=0)
    with pytest.raises(ValueError, match="overlap must be a non-negative integer, got -1"):
        chunk("a b", size=2, overlap=-1)
    with pytest.raises(TypeError, match="size must be an integer, got True"):
        chunk("a b", size=True)
    with pytest.raises(ValueError, match="tokens must hold at least one word, got '  '"):
        chunk("  ", size=2)
    with pytest.raises(ValueError, match="tokens must hold at least one item"):
        chunk([], size=2)
    with pytest.raises(TypeError, match="tokens must be a sequence"):
        chunk({1, 2}, size=2)


# --- BM25 -------------------------------------------------------------------------------------------


def test_bm25_reproduces_the_rank_bm25_readme_example():
    corpus = ["Hello there good man!", "It is quite windy in London", "How is the weather today?"]
    scores = BM25([d.split(" ") for d in corpus], idf="okapi").scores(["windy", "London"])
    np.testing.assert_allclose(scores, [0.0, 0.93729472, 0.0], atol=5e-9)  # as printed in the README


@pytest.mark.parametrize("query, kwargs, expected", [
    (["the", "cat", "dog"], {}, [0.199364202444048, 0.0891892484618109, 0.0806950343225908, 0.183006830995273]),
    (["the", "fast"], {"k1": 2.0, "b": 0.5, "epsilon": 0.5},
     [0.190642018587121, 1.05586348755944, 0.0, 0.234636330568764]),
    (["cat", "cat", "mat", "zebra"], {}, [0.199364202444048, 0.0, 0.161390068645182, 0.884136897795343]),
])
def test_bm25_okapi_equals_rank_bm25(query, kwargs, expected):
    """Numbers from rank-bm25 0.2.2's BM25Okapi(SMALL, **kwargs).get_scores(query)."""
    np.testing.assert_allclose(BM25(SMALL, idf="okapi", **kwargs).scores(query), expected, rtol=1e-12)


def test_okapi_floors_negative_idf_at_epsilon_times_the_mean_raw_idf():
    bm25 = BM25(SMALL, idf="okapi", epsilon=0.5)
    raw = {t: math.log((4 - n + 0.5) / (n + 0.5)) for t, n in Counter(t for d in SMALL for t in set(d)).items()}
    mean = sum(raw.values()) / len(raw)
    assert raw["the"] < 0 and bm25.idf[bm25.vocabulary["the"]] == pytest.approx(0.5 * mean, rel=1e-12)
    assert raw["dog"] == 0 and bm25.idf[bm25.vocabulary["dog"]] == 0  # n = N/2: zero, not floored
    assert bm25.idf[bm25.vocabulary["mat"]] == pytest.approx(math.log(3.5 / 1.5), rel=1e-12)


def test_lucene_idf_by_hand():
    bm25 = BM25(SMALL)
    assert bm25.idf[bm25.vocabulary["the"]] == pytest.approx(math.log(1 + 1.5 / 3.5), rel=1e-12)
    assert bm25.idf[bm25.vocabulary["mat"]] == pytest.approx(math.log(1 + 3.5 / 1.5), rel=1e-12)
    assert (bm25.idf > 0).all()
    # "mat" once in document 3 (6 tokens, avgdl 4.5): idf * 2.5 / (1 + 1.5 * (0.25 + 0.75 * 6 / 4.5))
    expected = math.log(1 + 3.5 / 1.5) * 2.5 / (1 + 1.5 * (0.25 + 0.75 * 6 / 4.5))
    assert bm25.scores(["mat"]).tolist() == pytest.approx([0, 0, 0, expected], rel=1e-12)


@pytest.mark.parametrize("idf", ["lucene", "okapi"])
@pytest.mark.parametrize("k1, b", [(1.5, 0.75), (0.0, 0.5), (1.2, 0.0), (3.0, 1.0)])
def test_bm25_matches_the_loop_over_the_formula(idf, k1, b):
    corpus, words = random_corpus(seed=1)
    bm25 = BM25(corpus, k1=k1, b=b, idf=idf)
    rng = np.random.default_rng(2)
    for _ in range(10):
        query = list(rng.choice(words + ["unseen"], size=rng.integers(1, 6)))
        np.testing.assert_allclose(bm25.scores(query), bm25_loop(corpus, query, k1, b, idf), rtol=1e-12, atol=1e-15)


def test_bm25_query_details():
    bm25 = BM25(SMALL)
    once, twice = bm25.scores(["mat"]), bm25.scores(["mat", "mat"])
    np.testing.assert_allclose(twice, 2 * once)  # a repeated query token counts each time
    np.testing.assert_array_equal(bm25.scores(["zebra"]), np.zeros(4))  # shares nothing
    np.testing.assert_array_equal(bm25.scores(["mat", "zebra"]), once)  # an unknown token adds nothing
    assert bm25.scores(["mat"]).dtype == np.float64 and len(bm25) == 4
    ids = BM25([[3, 1], [1, 1, 2], [2]]).scores([1])  # token ids work as tokens
    assert ids[0] > 0 and ids[1] > 0 and ids[2] == 0


def test_search_ranks_by_score_and_breaks_ties_by_id():
    bm25 = BM25([["x", "y"], ["z", "y"], ["y", "x"], ["q", "r"]])
    hits = bm25.search(["x"], k=10)
    assert [h.id for h in hits] == [0, 2, 1, 3]  # 0 and 2 tie: the lower id first
    assert hits[0] == Hit(0, pytest.approx(hits[1].score)) and hits[-1].score == 0
    assert [h.id for h in bm25.search(["y", "z"], k=1)] == [1]


def test_top_k():
    assert top_k(np.array([0.5, 2.0, 0.5, 1.0]), 3).tolist() == [1, 3, 0]
    assert top_k(np.array([1.0, 1.0]), 5).tolist() == [0, 1]
    rng = np.random.default_rng(5)
    for _ in range(200):  # few distinct values, so many ties at the k-th score
        scores, k = rng.integers(0, 4, size=rng.integers(1, 30)).astype(float), int(rng.integers(1, 35))
        assert top_k(scores, k).tolist() == np.argsort(-scores, kind="stable")[:k].tolist()
    with pytest.raises(ValueError, match="k must be a positive integer, got 0"):
        top_k(np.ones(3), 0)
    with pytest.raises(ValueError, match="scores must be 1-dimensional"):
        top_k(np.ones((2, 2)), 1)


def test_bm25_bad_input():
    with pytest.raises(ValueError, match="corpus_tokens must hold at least one chunk, got"):
        BM25([])
    with pytest.raises(ValueError, match=r"corpus_tokens\[1\] must hold at least one token, got \[\]"):
        BM25([["a"], []])
    with pytest.raises(TypeError, match=r"corpus_tokens\[0\] must be a list of tokens \(e.g. word_tokens\(text\)\)"):
        BM25(["the cat sat"])
    with pytest.raises(TypeError, match=r"corpus_tokens\[0\]\[0\] must be a hashable token"):
        BM25([[["a"]]])
    with pytest.raises(ValueError, match=r"k1 must be in \[0, inf\), got -0.5"):
        BM25(SMALL, k1=-0.5)
    with pytest.raises(ValueError, match=r"b must be in \[0, 1\], got 1.5"):
        BM25(SMALL, b=1.5)
    with pytest.raises(ValueError, match=r"epsilon must be in \[0, inf\), got -1"):
        BM25(SMALL, idf="okapi", epsilon=-1)
    with pytest.raises(ValueError, match="idf must be one of 'lucene', 'okapi'; got 'bm25'"):
        BM25(SMALL, idf="bm25")
    with pytest.raises(TypeError, match="k1 must be a real number, got str"):
        BM25(SMALL, k1="1.5")
    bm25 = BM25(SMALL)
    with pytest.raises(ValueError, match="query_tokens must hold at least one token, got"):
        bm25.scores([])
    with pytest.raises(TypeError, match="query_tokens must be a sequence .* got str"):
        bm25.scores("the cat")
    with pytest.raises(ValueError, match="k must be a positive integer, got 0"):
        bm25.search(["cat"], 0)


# --- TF-IDF -----------------------------------------------------------------------------------------


def test_tfidf_reproduces_scikit_learns_worked_example():
    """scikit-learn's user guide (Tf-idf term weighting): counts of three terms in six documents and
    the rows TfidfTransformer() makes of them; cosine scores are dot products of those rows."""
    counts = [[3, 0, 1], [2, 0, 0], [3, 0, 0], [4, 0, 0], [3, 2, 0], [3, 0, 2]]
    rows = np.array([[0.85151335, 0.0, 0.52433293], [1.0, 0.0, 0.0], [1.0, 0.0, 0.0], [1.0, 0.0, 0.0],
                     [0.55422893, 0.83236428, 0.0], [0.63035731, 0.0, 0.77630514]])
    corpus = [["a"] * i + ["b"] * j + ["c"] * k for i, j, k in counts]
    index = TfidfIndex(corpus)
    np.testing.assert_allclose(index.idf[[index.vocabulary[t] for t in "abc"]], [1.0, 2.25276297, 1.84729786],
                               atol=5e-9)
    for d in (0, 4, 5):
        np.testing.assert_allclose(index.scores(corpus[d]), rows @ rows[d], atol=2e-8)


def test_tfidf_matches_the_loop_and_handles_unknown_queries():
    corpus, words = random_corpus(seed=3)
    index = TfidfIndex(corpus)
    rng = np.random.default_rng(4)
    for _ in range(10):
        query = list(rng.choice(words + ["unseen"], size=rng.integers(1, 6)))
        np.testing.assert_allclose(index.scores(query), tfidf_loop(corpus, query), rtol=1e-12, atol=1e-15)
    np.testing.assert_array_equal(index.scores(["unseen"]), np.zeros(len(corpus)))
    assert index.scores(corpus[0])[0] == pytest.approx(1.0, rel=1e-12)  # cosine of a vector with itself


# --- dense retrieval --------------------------------------------------------------------------------


def letter_counts(texts):
    """A toy embedder: how often each letter a-z occurs, (n, 26)."""
    return torch.tensor([[t.lower().count(c) for c in "abcdefghijklmnopqrstuvwxyz"] for t in texts],
                        dtype=torch.float32)


def test_dense_index_scores_are_cosines():
    texts = ["abba", "cab", "zzz", "a b c"]
    index = DenseIndex(letter_counts).add(texts[:2]).add(texts[2:])  # ids continue across adds
    vectors = letter_counts(texts).double()
    q = letter_counts(["ab"]).double()[0]
    expected = vectors @ q / (vectors.norm(dim=1) * q.norm())
    np.testing.assert_allclose(index.scores("ab"), expected.numpy(), rtol=1e-12)
    assert len(index) == 4 and index.texts == texts
    assert [h.id for h in index.search("zz", 2)] == [2, 0]  # "zzz", then the tie among zeros to the lowest id


def test_dense_index_bad_input():
    with pytest.raises(TypeError, match="embed must be a function from a list of str"):
        DenseIndex("not a function")
    with pytest.raises(ValueError, match="the index is empty"):
        DenseIndex(letter_counts).scores("a")
    with pytest.raises(ValueError, match="texts must hold at least one text"):
        DenseIndex(letter_counts).add([])
    with pytest.raises(TypeError, match="texts must be a list of str, got a single str"):
        DenseIndex(letter_counts).add("abc")
    with pytest.raises(ValueError, match=r"texts\[1\] must not be empty, got ''"):
        DenseIndex(letter_counts).add(["a", ""])
    with pytest.raises(ValueError, match="one row per text, 2, got shape"):
        DenseIndex(lambda texts: torch.ones(3, 4)).add(["a", "b"])
    with pytest.raises(ValueError, match="must have 2 dimensions"):
        DenseIndex(lambda texts: torch.ones(len(texts))).add(["a"])
    with pytest.raises(ValueError, match="embed.texts. must give finite values, got nan or inf"):
        DenseIndex(lambda texts: torch.full((len(texts), 2), math.nan)).add(["a"])
    with pytest.raises(TypeError, match="floating-point tensor"):
        DenseIndex(lambda texts: torch.ones(len(texts), 2, dtype=torch.long)).add(["a"])
    index = DenseIndex(letter_counts).add(["a"])
    index.embed = lambda texts: torch.ones(len(texts), 3)
    with pytest.raises(ValueError, match="the index's size 26, got 3"):
        index.add(["b"])
    with pytest.raises(ValueError, match="query must not be empty"):
        DenseIndex(letter_counts).add(["a"]).scores(" ")


# --- the course world: passages, and the curriculum's checks ----------------------------------------


def test_fact_passages_state_each_fact_in_the_corpus_phrasing(world, generator):
    facts = world.facts()
    for template in (0, 1):
        passages = fact_passages(world, template)
        assert len(passages) == len(facts)
        for fact, passage in zip(facts, passages):
            assert fact.subject in passage and fact.object in passage
    first = fact_passages(world)
    for fact, passage in zip(facts, first):  # template 0 is fact_prompt's sentence
        prompt, answer = generator.fact_prompt(fact)
        assert passage == prompt + answer
    with pytest.raises(ValueError, match=r"template must be an integer in \[0, 1\], got 2"):
        fact_passages(world, 2)
    with pytest.raises(TypeError, match="world must be a World, got str"):
        fact_passages("world")


def test_person_passages_are_documents_the_corpus_could_hold(world, generator):
    passages = person_passages(world)
    assert len(passages) == len(world.people)
    for person, passage in zip(world.people, passages):
        assert generator.can_write(passage)  # the corpus's own generator could have written it
        assert passage.startswith(person.name + " ") and passage.count(person.name) == 1
        assert all(person.value(r) in passage for r in RELATIONS)


@pytest.mark.parametrize("Index", [BM25, TfidfIndex])
def test_a_passage_queried_with_itself_ranks_first(world, Index):
    passages = fact_passages(world) + person_passages(world)
    tokens = [word_tokens(p) for p in passages]
    index = Index(tokens)
    assert all(index.search(t, 1)[0].id == i for i, t in enumerate(tokens))


def test_dense_passage_queried_with_itself_ranks_first(world):
    passages = fact_passages(world)
    index = DenseIndex(letter_counts).add(passages)
    firsts = [index.search(p, 1)[0].id for p in passages]
    same = [i for i, f in enumerate(firsts) if f != i]  # only exact duplicates of the letter counts may win
    assert all(torch.equal(letter_counts([passages[i]]), letter_counts([passages[firsts[i]]])) for i in same)


def test_recall_at_k_never_falls_as_k_grows(world, generator):
    passages = person_passages(world)
    bm25 = BM25([word_tokens(p) for p in passages])
    for i, fact in enumerate(world.facts()):
        ranked = [h.id for h in bm25.search(word_tokens(generator.fact_prompt(fact)[0]), len(passages))]
        recalls = [recall_at_k(ranked, {i // len(RELATIONS)}, k) for k in range(1, len(passages) + 1)]
        assert recalls == sorted(recalls) and recalls[-1] == 1


# --- reranking and fusion ---------------------------------------------------------------------------


def test_rerank_orders_by_the_scorer_and_keeps_ties_in_order():
    candidates = ["one", "three", "two", "six"]
    hits = rerank("q", candidates, lambda query, c: float(len(c)))
    assert hits == [Hit(1, 5.0), Hit(0, 3.0), Hit(2, 3.0), Hit(3, 3.0)]  # ties keep the first-stage order
    assert rerank("q", candidates, lambda query, c: -len(c), k=2) == [Hit(0, -3.0), Hit(2, -3.0)]
    assert rerank("q", ["a", "b"], lambda query, c: -math.inf if c == "a" else 0.0)[0].id == 1


def test_rerank_bad_input():
    with pytest.raises(TypeError, match="scorer must be a function scorer"):
        rerank("q", ["a"], None)
    with pytest.raises(ValueError, match="candidates must hold at least one text"):
        rerank("q", [], len)
    with pytest.raises(ValueError, match=r"scorer\(query, candidate\) must be .*got nan"):
        rerank("q", ["a"], lambda query, c: math.nan)
    with pytest.raises(TypeError, match=r"scorer\(query, candidate\) must be a real number, got str"):
        rerank("q", ["a"], lambda query, c: "high")
    with pytest.raises(ValueError, match="query must not be empty"):
        rerank("", ["a"], len)


def test_reciprocal_rank_fusion_by_hand():
    fused = reciprocal_rank_fusion([["a", "b", "c"], ["b", "d"]], rank_constant=1)
    scores = dict(fused)
    assert scores == pytest.approx({"a": 1 / 2, "b": 1 / 3 + 1 / 2, "c": 1 / 4, "d": 1 / 3})
    assert [h.id for h in fused] == ["b", "a", "d", "c"]
    tied = reciprocal_rank_fusion([[1, 2], [2, 1]])  # equal sums: the id seen first wins
    assert [h.id for h in tied] == [1, 2] and tied[0].score == pytest.approx(1 / 61 + 1 / 62)
    with pytest.raises(ValueError, match=r"rankings\[1\] must list each id once, got 'x' 2 times"):
        reciprocal_rank_fusion([["x"], ["x", "y", "x"]])
    with pytest.raises(ValueError, match="rankings must hold at least one ranking"):
        reciprocal_rank_fusion([])
    with pytest.raises(ValueError, match=r"rank_constant must be in \[0, inf\), got -1"):
        reciprocal_rank_fusion([[1]], rank_constant=-1)


# --- metrics ----------------------------------------------------------------------------------------


def test_recall_at_k_on_hand_made_rankings():
    ranked = [7, 3, 9, 1, 4]
    assert recall_at_k(ranked, {3, 4}, 1) == 0.0
    assert recall_at_k(ranked, {3, 4}, 2) == 0.5
    assert recall_at_k(ranked, {3, 4}, 5) == 1.0
    assert recall_at_k(ranked, [3, 4, 8], 100) == pytest.approx(2 / 3)  # k beyond the list; 8 never retrieved
    assert recall_at_k(ranked, {8}, 3) == 0.0  # no relevant item retrieved
    assert recall_at_k([], {1}, 3) == 0.0
    assert recall_at_k(np.array([2, 0, 1]), np.array([0]), 2) == 1.0
    assert recall_at_k(["b", "a"], {"a"}, 1) == 0.0


def test_reciprocal_rank_on_hand_made_rankings():
    assert reciprocal_rank([7, 3, 9], {7}) == 1.0
    assert reciprocal_rank([7, 3, 9], {9, 3}) == 0.5  # the first relevant one counts
    assert reciprocal_rank([7, 3, 9], {9}) == pytest.approx(1 / 3)
    assert reciprocal_rank([7, 3, 9], {5}) == 0.0  # none retrieved
    assert reciprocal_rank([], {5}) == 0.0


def test_metrics_bad_input():
    with pytest.raises(ValueError, match="ranked_ids must list each id once, got 3 2 times"):
        recall_at_k([1, 3, 3], {1}, 2)
    with pytest.raises(ValueError, match="ranked_ids must list each id once"):
        reciprocal_rank([1, 1], {1})
    with pytest.raises(ValueError, match="relevant_ids must hold at least one id"):
        recall_at_k([1, 2], set(), 1)
    with pytest.raises(TypeError, match="relevant_ids must be a collection of ids .*got int 3"):
        reciprocal_rank([1, 2], 3)
    with pytest.raises(ValueError, match="k must be a positive integer, got 0"):
        recall_at_k([1, 2], {1}, 0)
    with pytest.raises(TypeError, match="k must be an integer, got float 1.0"):
        recall_at_k([1, 2], {1}, 1.0)
    with pytest.raises(TypeError, match="ranked_ids must be a sequence"):
        recall_at_k({1, 2}, {1}, 1)


# --- prompts ----------------------------------------------------------------------------------------


def test_build_prompt():
    chunks = ["Rozi lives in Pominport.", "Rozi works as a teacher."]
    assert build_prompt("Rozi lives in", chunks) == "Rozi lives in Pominport. Rozi works as a teacher. Rozi lives in"
    assert DEFAULT_TEMPLATE == "{context} {question}"
    template = "Context:\n{context}\nQuestion: {question}\nAnswer {{short}}:"
    assert build_prompt("Where?", chunks, template, separator="\n") == (
        "Context:\nRozi lives in Pominport.\nRozi works as a teacher.\nQuestion: Where?\nAnswer {short}:")
    assert build_prompt("Where?", [], "[{context}] {question}") == "[] Where?"  # closed book


def test_build_prompt_bad_input():
    with pytest.raises(ValueError, match=r"template must have a \{context\} slot, got 'Q: \{question\}'"):
        build_prompt("q", ["c"], "Q: {question}")
    with pytest.raises(ValueError, match=r"template must have a \{question\} slot"):
        build_prompt("q", ["c"], "{context}")
    with pytest.raises(ValueError, match=r"template may only have the slots .* got \{answer\}"):
        build_prompt("q", ["c"], "{context} {question} {answer}")
    with pytest.raises(ValueError, match=r"template may only have the slots .* got \{\}"):
        build_prompt("q", ["c"], "{context} {question} {}")
    with pytest.raises(ValueError, match="template must be a str.format template"):
        build_prompt("q", ["c"], "{context} {question")
    with pytest.raises(TypeError, match=r"chunks\[1\] must be a str, got int"):
        build_prompt("q", ["c", 3])
    with pytest.raises(ValueError, match="question must not be empty"):
        build_prompt("", ["c"])


# --- the pipeline -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_gpt():
    return load_tiny_gpt()


def test_pipeline_runs_end_to_end_with_the_tiny_gpt(world, generator, tiny_gpt):
    model, tokenizer = tiny_gpt
    passages = fact_passages(world, template=1)  # phrased unlike the questions: "Rozi's home is in ..."
    pipeline = RAGPipeline(model, tokenizer, k=3).build_index(passages)
    assert pipeline.chunks == passages and len(pipeline.index) == len(passages)
    facts = world.facts()
    top3 = [i in [h.id for h in pipeline.retrieve(generator.fact_prompt(f)[0], 3)] for i, f in enumerate(facts)]
    assert sum(top3) / len(facts) >= 0.9  # measured: 116 of 120
    for fact in facts[:10:3]:
        question, answer = generator.fact_prompt(fact)
        trace = pipeline.query(question)
        assert trace is pipeline.last and trace.question == question and trace.query == word_tokens(question)
        assert len(trace.hits) == 3 and trace.reranked is None
        assert trace.chunks == [passages[h.id] for h in trace.hits]
        assert trace.prompt == " ".join(trace.chunks) + " " + question
        assert trace.answer == generate_text(model, tokenizer, trace.prompt, 8, stop=".")
        assert trace.answer == answer.removesuffix(".")  # e.g. " Pominport"


def test_pipeline_chunks_reranks_and_uses_a_dense_index(tiny_gpt):
    model, tokenizer = tiny_gpt
    documents = ["Rozi lives in Pominport. She works as a teacher.", "Podipir has a pet owl. He likes red."]
    pipeline = RAGPipeline(model, tokenizer, k=2, chunk_size=5, overlap=2, retriever="tfidf",
                           reranker=lambda q, c: float("owl" in c), candidates=4, max_new_tokens=2)
    pipeline.build_index(documents)
    assert pipeline.chunks == ["Rozi lives in Pominport. She", "Pominport. She works as a", "as a teacher.",
                               "Podipir has a pet owl.", "pet owl. He likes red."]
    assert pipeline.chunk_tokens[2] == ["as", "a", "teacher"]
    trace = pipeline.query("Rozi works as")
    assert [h.id for h in trace.hits] == [1, 0, 2, 3]  # chunk 4 shares no word: not a candidate
    assert [h.id for h in trace.reranked] == [3, 1, 0, 2]  # the owl first, the others in first-stage order
    assert trace.chunks == pipeline.texts([3, 1]) and trace.prompt.startswith("Podipir has a pet owl.")
    dense = RAGPipeline(model, tokenizer, retriever="dense", embed=letter_counts, k=1).build_index(documents)
    assert dense.retrieve("Podipir has a pet", 1)[0].id == 1 and dense.query("Rozi lives in").query == "Rozi lives in"


def test_pipeline_bad_input(tiny_gpt):
    model, tokenizer = tiny_gpt
    with pytest.raises(ValueError, match="the pipeline has no index yet"):
        RAGPipeline(model, tokenizer).query("Rozi lives in")
    with pytest.raises(ValueError, match="embed must be given exactly when retriever is 'dense'"):
        RAGPipeline(model, tokenizer, retriever="dense")
    with pytest.raises(ValueError, match="embed must be given exactly when retriever is 'dense'"):
        RAGPipeline(model, tokenizer, embed=letter_counts)
    with pytest.raises(ValueError, match="retriever must be one of 'bm25', 'tfidf', 'dense'; got 'faiss'"):
        RAGPipeline(model, tokenizer, retriever="faiss")
    with pytest.raises(ValueError, match="k must be a positive integer, got 0"):
        RAGPipeline(model, tokenizer, k=0)
    with pytest.raises(ValueError, match="overlap must be smaller than chunk_size 4, got 4"):
        RAGPipeline(model, tokenizer, chunk_size=4, overlap=4)
    with pytest.raises(ValueError, match=r"template must have a \{context\} slot"):
        RAGPipeline(model, tokenizer, template="{question}")
    pipeline = RAGPipeline(model, tokenizer).build_index(["Rozi lives in Pominport."])
    with pytest.raises(ValueError, match=r"ids must be chunk ids in \[0, 1\), got 1"):
        pipeline.texts([0, 1])
    with pytest.raises(ValueError, match="question must not be empty"):
        pipeline.query("  ")
    with pytest.raises(ValueError, match="documents must hold at least one text"):
        pipeline.build_index([])
    with pytest.raises(ValueError, match="documents must give chunks with at least one word, got chunk '...'"):
        pipeline.build_index(["..."])
    long = RAGPipeline(model, tokenizer, k=1, max_new_tokens=8).build_index([" ".join(["Rozi lives in Pominport."] * 20)])
    with pytest.raises(ValueError, match="context_length"):
        long.query("Rozi lives in")  # 80 words do not fit the tiny GPT's 64 tokens


# --- reading: questions answered from passages -----------------------------------------------------


def test_reading_example_puts_the_passages_before_the_question_as_build_prompt_does():
    world = load_world()
    facts = world.facts()
    example = reading_example(world, facts[0], (facts[7], facts[0]))
    passages = fact_passages(world)
    question, answer = load_generator().fact_prompt(facts[0])
    assert example.prompt == f"{passages[7]} {passages[0]} {question}"
    assert example.answer == answer and example.prompt + example.answer == f"{passages[7]} {passages[0]} {passages[0]}"
    assert example.context == (facts[7], facts[0]) and example.kind == "read"
    assert reading_example(world, facts[0], ()).prompt == " " + question  # closed book: build_prompt's empty context


def test_reading_example_refuses_a_fact_the_world_does_not_hold():
    world = load_world()
    fact = world.facts()[0]
    wrong = Fact(fact.subject, fact.relation, next(c for c in world.cities if c != fact.object))
    with pytest.raises(ValueError, match=r"context\[0\] must be a fact of the world"):
        reading_example(world, fact, (wrong,))
    with pytest.raises(ValueError, match="fact must be a fact of the world"):
        reading_example(world, wrong, ())
    with pytest.raises(ValueError, match="kind must be one of"):
        reading_example(world, fact, (), kind="guess")


def test_reading_task_kinds_follow_the_mix_and_each_example_holds_its_answer_where_it_should():
    world = load_world()
    task = ReadingTask(world, reading_pool(20))
    rng = random.Random(0)
    examples = [task.sample(rng) for _ in range(600)]
    counts = Counter(e.kind for e in examples)
    assert set(counts) == set(READING_KINDS)
    assert abs(counts["read"] / 600 - 0.6) < 0.06 and abs(counts["recall"] / 600 - 0.3) < 0.06
    for e in examples:
        sentence = e.prompt.split(". ")[-1] if ". " in e.prompt else e.prompt.strip()
        if e.kind == "recall":
            assert e.context == () and e.fact in world.facts()
        else:
            assert e.fact in e.context and len(e.context) <= 3
            assert f"{sentence}{e.answer}" in e.prompt  # the answer is stated in a passage
        if e.kind == "update":
            assert e.fact.subject in world.names and e.fact not in world.facts()
        if e.kind == "read":
            assert e.fact.subject not in world.names or e.fact not in world.facts()
    distractors = [(e.fact, f) for e in examples if e.kind != "recall" for f in e.context if f != e.fact]
    near = [f.relation == fact.relation and f.subject != fact.subject for fact, f in distractors]
    assert abs(sum(near) / len(near) - 0.5) < 0.08  # half the distractors are near misses
    again = [task.sample(random.Random(0)) for _ in range(1)]
    assert again[0] == examples[0]  # seeded


def test_reading_task_checks_its_arguments():
    world = load_world()
    with pytest.raises(ValueError, match="pool must hold at least one world"):
        ReadingTask(world, [])
    with pytest.raises(ValueError, match="mix key must be one of"):
        ReadingTask(world, reading_pool(1), {"guess": 1.0})
    with pytest.raises(TypeError, match="rng must be a random.Random"):
        ReadingTask(world, reading_pool(1)).sample(0)


def test_reading_benchmark_sets_separate_reading_from_remembering():
    world = load_world()
    sets = reading_benchmark(world, reading_pool(2, start=10_001), seed=3)
    assert {k: len(v) for k, v in sets.items()} == {"closed_book": 120, "passage": 48, "distractor": 120, "update": 120}
    for e in sets["distractor"]:
        (other,) = e.context
        assert other.subject != e.fact.subject and other.relation == e.fact.relation and other.object != e.fact.object
    for e in sets["update"]:
        assert e.fact not in world.facts() and e.fact in e.context
    assert all(e.fact in e.context and e.fact.subject not in world.names for e in sets["passage"])
    assert reading_benchmark(world, reading_pool(2, start=10_001), seed=3) == sets


def test_greedy_match_agrees_with_token_by_token_generation(shipped_gpt):
    model, tokenizer, _ = shipped_gpt
    world = load_world()
    sets = reading_benchmark(world, reading_pool(1, start=10_001), seed=0)
    examples = sets["closed_book"][:40] + sets["distractor"][:20]
    matched = greedy_match(model, tokenizer, [e.prompt for e in examples], [e.answer for e in examples])
    generated = [generate_text(model, tokenizer, e.prompt, 8, stop=".") + "." == e.answer for e in examples]
    assert matched.dtype == bool and matched.tolist() == generated
    assert 0 < matched.sum() < len(examples)  # both outcomes occur, so the comparison means something


def test_greedy_match_checks_its_arguments(shipped_gpt):
    model, tokenizer, _ = shipped_gpt
    with pytest.raises(ValueError, match=r"answers must have one answer per prompt \(2\), got 1"):
        greedy_match(model, tokenizer, ["Rozi lives in", "Rozi works as"], [" Pominport."])
    with pytest.raises(ValueError, match="prompts must hold at least one text"):
        greedy_match(model, tokenizer, [], [])


def test_with_fact_changes_one_value_and_nothing_else():
    world = load_world()
    fact = world.facts()[0]
    city = next(c for c in world.cities if c != fact.object)
    moved = world.with_fact(Fact(fact.subject, "lives_in", city))
    assert moved.person(fact.subject).city == city
    assert [f for f in moved.facts() if f not in world.facts()] == [Fact(fact.subject, "lives_in", city)]
    with pytest.raises(ValueError, match="fact's object must be one of"):
        world.with_fact(Fact(fact.subject, "lives_in", "Atlantis"))
    with pytest.raises(ValueError, match="fact's object must be one of"):
        world.with_fact(Fact(fact.subject, "best_friend", fact.subject))
