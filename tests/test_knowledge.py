"""Tests for course_lib.knowledge: pattern queries against brute force over the facts, multi-hop
queries by hand, claim checking on true, false and unparseable sentences, TransE (the formula, a
hand-made graph, the world) and the link prediction metrics on hand-set embeddings."""

from __future__ import annotations

import dataclasses
import itertools
import random

import numpy as np
import pytest
import torch

from course_lib.datasets import load_world
from course_lib.knowledge import (
    CONTRADICTED,
    SUPPORTED,
    UNKNOWN,
    TransE,
    TripleStore,
    document_claims,
    link_prediction,
    parse_claim,
    random_guess_hits,
    train_transe,
)
from course_lib.world import RELATIONS, TEMPLATES, Derivation, DocumentGenerator, Fact, Sentence


@pytest.fixture(scope="module")
def world():
    return load_world()


@pytest.fixture(scope="module")
def store(world):
    return TripleStore.from_world(world)


# ----------------------------------------------------------------------------------------------
# The store and its queries


def test_the_world_store_holds_every_fact_once(world, store):
    assert list(store) == world.facts() and len(store) == 120
    assert store.relations == RELATIONS and store.functional == frozenset(RELATIONS)
    assert set(store.entities) == {e for f in world.facts() for e in (f.subject, f.object)}
    assert world.facts()[0] in store and ("Nobody", "lives_in", "Nowhere") not in store
    doubled = TripleStore(world.facts() + world.facts()[:10])
    assert doubled.facts == store.facts


def test_pattern_queries_match_brute_force(world, store):
    names, facts = world.names, world.facts()
    subjects = [None, names[0], names[5], names[-1]]
    objects = [None, world.cities[0], names[3], world.colours[1], world.jobs[2]]
    for subject, relation, obj in itertools.product(subjects, (None,) + RELATIONS, objects):
        expected = [f for f in facts if subject in (None, f.subject) and relation in (None, f.relation)
                    and obj in (None, f.object)]
        assert store.query(subject, relation, obj) == expected, (subject, relation, obj)
    assert store.query() == facts


def test_pattern_queries_name_what_is_not_in_the_graph(store):
    with pytest.raises(ValueError, match="subject must be an entity of the graph, got 'Rozy'"):
        store.query("Rozy")
    with pytest.raises(ValueError, match="object must be an entity of the graph, got 'Paris'"):
        store.query(object="Paris")
    with pytest.raises(ValueError, match="relation must be one of .*; got 'lives'"):
        store.query(relation="lives")
    with pytest.raises(TypeError, match="subject must be a str, got int"):
        store.query(3)


HAND = [("Ann", "best_friend", "Bob"), ("Bob", "lives_in", "Oslo"), ("Cy", "lives_in", "Oslo"),
        ("Cy", "best_friend", "Ann"), ("Dee", "best_friend", "Ann"), ("Ann", "lives_in", "Rome"),
        ("Dee", "lives_in", "Rome")]


def test_multi_hop_by_hand():
    graph = TripleStore(HAND)
    assert graph.follow("Ann", ["best_friend", "lives_in"]) == ["Oslo"]  # Ann's best friend Bob lives in Oslo
    assert graph.follow("Ann", ["best_friend", "lives_in", "^lives_in"]) == ["Bob", "Cy"]  # ... and so does Cy
    assert graph.follow("Ann", ["^best_friend"]) == ["Cy", "Dee"]  # whose best friend is Ann
    assert graph.paths("Ann", ["^best_friend", "lives_in"]) == [("Ann", "Cy", "Oslo"), ("Ann", "Dee", "Rome")]
    assert graph.paths("Oslo", ["^lives_in", "best_friend", "best_friend"]) == [("Oslo", "Cy", "Ann", "Bob")]
    assert graph.follow("Oslo", ["lives_in"]) == []  # a city lives nowhere


def test_multi_hop_on_the_world_agrees_with_the_people(world, store):
    for person in world.people:
        friend = world.person(person.friend)
        assert store.follow(person.name, ("best_friend", "lives_in")) == [friend.city]
        assert store.follow(person.name, ("lives_in", "^lives_in")) == sorted(
            p.name for p in world.people if p.city == person.city)


def test_bad_paths(store):
    with pytest.raises(TypeError, match="path must be a sequence of relation names"):
        store.follow(store.entities[0], "lives_in")
    with pytest.raises(ValueError, match="at least one relation"):
        store.paths(store.entities[0], [])
    with pytest.raises(ValueError, match=r"path\[1\] must be a relation of the graph .* got 'lives'"):
        store.follow(store.entities[0], ["best_friend", "lives"])
    with pytest.raises(ValueError, match="start must be an entity of the graph, got 'Nobody'"):
        store.follow("Nobody", ["lives_in"])


def test_bad_facts():
    with pytest.raises(ValueError, match="at least one triple"):
        TripleStore([])
    with pytest.raises(TypeError, match=r"facts\[0\] must be a \(subject, relation, object\) triple"):
        TripleStore([("a", "b")])
    with pytest.raises(ValueError, match=r"facts\[0\]\[2\] must be a non-empty str"):
        TripleStore([("a", "b", "")])
    with pytest.raises(TypeError, match="world must be a World"):
        TripleStore.from_world([])


# ----------------------------------------------------------------------------------------------
# Claims


def sentence(world, fact: Fact, template: int) -> str:
    """The corpus's own sentence for a fact (the generator renders it)."""
    return DocumentGenerator(world, min_sentences=1).render(
        Derivation(fact.subject, (Sentence(fact.relation, template, True),)))


ATTRIBUTE = {"lives_in": "city", "works_as": "job", "has_pet": "pet", "likes_colour": "colour", "best_friend": "friend"}


def other_value(world, fact: Fact) -> str:
    values = {"lives_in": world.cities, "works_as": world.jobs, "has_pet": world.pets,
              "likes_colour": world.colours, "best_friend": world.names}[fact.relation]
    return next(v for v in values if v not in (fact.object, fact.subject))


def test_every_true_sentence_of_the_corpus_is_supported(world, store):
    for fact, template in itertools.product(world.facts(), (0, 1)):
        check = store.check_claim(sentence(world, fact, template))
        assert check.verdict == SUPPORTED and check.claim == fact and check.evidence == (fact,), fact


def test_a_false_value_is_contradicted_by_the_true_one(world, store):
    for fact, template in itertools.product(world.facts(), (0, 1)):
        false = Fact(fact.subject, fact.relation, other_value(world, fact))
        # the corpus's sentence for the false value: rendered in a world where it is true
        people = tuple(dataclasses.replace(p, **{ATTRIBUTE[fact.relation]: false.object}) if p.name == fact.subject
                       else p for p in world.people)
        text = sentence(dataclasses.replace(world, people=people), false, template)
        check = store.check_claim(text)
        assert check.verdict == CONTRADICTED and check.claim == false and check.evidence == (fact,), text


def test_unparseable_or_unknown_claims(world, store):
    person = world.people[0]
    for text in [f"She lives in {person.city}.", f"{person.name} visited {person.city} on day 3.",
                 f"{person.name} lives in {person.city}. {person.name} has a pet {person.pet}.",
                 f"{person.name} resides in {person.city}.", f"{person.name} works as a {'engineer'}.", "", "."]:
        check = store.check_claim(text)
        assert check.verdict == UNKNOWN and check.claim is None and check.evidence == (), text
    unknown_person = store.check_claim(f"Zorrobaz lives in {person.city}.")
    assert unknown_person.verdict == UNKNOWN and unknown_person.claim == Fact("Zorrobaz", "lives_in", person.city)


def test_only_a_relation_with_one_value_can_contradict():
    graph = TripleStore([("Ann", "has_pet", "cat"), ("Ann", "has_pet", "dog"), ("Ann", "lives_in", "Oslo")])
    assert graph.functional == frozenset({"lives_in"})
    assert graph.check_claim("Ann has a pet dog.").verdict == SUPPORTED
    assert graph.check_claim("Ann has a pet owl.").verdict == UNKNOWN  # a third pet is not ruled out
    contradicted = graph.check_claim("Ann's home is in Rome.")
    assert contradicted.verdict == CONTRADICTED and contradicted.evidence == (Fact("Ann", "lives_in", "Oslo"),)
    assert graph.check_claim("Ann likes the colour red.").verdict == UNKNOWN  # nothing known about it


def test_parse_claim_reads_every_template_and_ignores_surrounding_space():
    assert parse_claim("  By trade, Rozi is an engineer.\n") == Fact("Rozi", "works_as", "engineer")
    assert parse_claim("Rozi's pet is an owl.") == Fact("Rozi", "has_pet", "owl")
    assert parse_claim("Rozi's pet is a owl.") is None  # not the corpus's article
    assert parse_claim("Kazi is best friends with Rozi.") == Fact("Kazi", "best_friend", "Rozi")
    assert parse_claim("Her best friend is Rozi.") is None
    assert len(TEMPLATES) == len(RELATIONS) + 1  # every relation's templates, and the visit's
    with pytest.raises(TypeError, match="text must be a str, got NoneType"):
        parse_claim(None)


# ----------------------------------------------------------------------------------------------
# TransE


def test_init_and_distance_follow_the_formula():
    model = TransE(["a", "b", "c"], ["r", "s"], dim=6, p=1, seed=3)
    assert model.entity.shape == (3, 6) and model.relation.shape == (2, 6) and model.entity.dtype == torch.float64
    assert torch.allclose(model.entity.norm(dim=1), torch.ones(3, dtype=torch.float64), rtol=0, atol=1e-12)
    assert torch.allclose(model.relation.norm(dim=1), torch.ones(2, dtype=torch.float64), rtol=0, atol=1e-12)
    assert torch.equal(TransE(["a", "b", "c"], ["r", "s"], dim=6, seed=3).entity, model.entity)  # seeded
    e, r = model.entity.detach(), model.relation.detach()
    for p in (1, 2):
        model.p = p
        expected = torch.linalg.vector_norm(e[0] + r[1] - e[2], ord=p)
        assert model.distance(("a", "s", "c")) == pytest.approx(float(expected), abs=1e-12)
        with torch.no_grad():
            heads, tails = torch.tensor([0, 2]), torch.tensor([1, 0])
            tail_all = model.tail_distances(heads, torch.tensor([1, 0]))  # (2, 3)
            head_all = model.head_distances(torch.tensor([1, 0]), tails)  # (2, 3)
        for i, j in itertools.product(range(2), range(3)):
            assert float(tail_all[i, j]) == pytest.approx(
                float(torch.linalg.vector_norm(e[heads[i]] + r[1 - i] - e[j], ord=p)), abs=1e-12)
            assert float(head_all[i, j]) == pytest.approx(
                float(torch.linalg.vector_norm(e[j] + r[1 - i] - e[tails[i]], ord=p)), abs=1e-12)


def family():
    """Three families of three generations: grandparent_of is parent_of twice, a translation TransE can add."""
    facts = []
    for x, y, z in [("Ada", "Ben", "Cal"), ("Dot", "Eli", "Fay"), ("Gus", "Hal", "Ivy")]:
        facts += [(x, "parent_of", y), (y, "parent_of", z), (x, "grandparent_of", z)]
    return TripleStore(facts), ("Gus", "grandparent_of", "Ivy")


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_transe_recovers_the_held_out_triple_of_a_hand_made_graph(seed):
    graph, held_out = family()
    model = TransE(graph.entities, graph.relations, dim=8, seed=seed)
    untrained = link_prediction(model, [held_out], known=graph)
    train_transe(model, [f for f in graph if f != held_out], steps=500, seed=seed)
    result = link_prediction(model, [held_out], known=graph)
    assert result.ranks.tolist() == [[1.0, 1.0]] and result.hits[1] == 1.0  # Gus as the head, Ivy as the tail
    assert untrained.hits[1] < 1.0


@pytest.fixture(scope="module")
def trained_on_the_world(store):
    facts = list(store)
    test = random.Random(0).sample(facts, 24)
    train = [f for f in facts if f not in test]
    model = TransE(store.entities, store.relations, seed=0)
    untrained = link_prediction(model, test, known=store)
    losses = train_transe(model, train, seed=0)
    return model, train, test, untrained, losses


def test_transe_on_the_world_learns_what_a_held_out_fact_can_be(store, trained_on_the_world):
    model, train, test, untrained, losses = trained_on_the_world
    result = link_prediction(model, test, known=store)
    assert untrained.hits[10] <= 0.3  # measured: 0.125
    assert result.hits[10] >= 0.45  # measured: 0.604
    assert result.mean_rank < untrained.mean_rank / 2  # measured: 9.5 against 29.1
    assert np.mean(losses[-100:]) < np.mean(losses[:100]) / 3
    assert torch.allclose(model.entity.norm(dim=1), torch.ones(len(store.entities), dtype=torch.float64),
                          rtol=0, atol=1e-12)


def test_true_triples_score_better_than_corrupted_ones_after_training(store, trained_on_the_world):
    model, train, _, _, _ = trained_on_the_world
    rng, closer = random.Random(1), []
    for h, r, t in train:
        for e in rng.sample(store.entities, 10):
            if (h, r, e) not in store:
                closer.append(model.distance((h, r, t)) < model.distance((h, r, e)))
            if (e, r, t) not in store:
                closer.append(model.distance((h, r, t)) < model.distance((e, r, t)))
    assert np.mean(closer) >= 0.95  # measured: 0.988


def test_training_is_reproducible(store):
    runs = []
    for _ in range(2):
        model = TransE(store.entities, store.relations, dim=8, seed=5)
        runs.append((train_transe(model, store, steps=50, seed=7), model.entity.detach().clone()))
    assert runs[0][0] == runs[1][0] and torch.equal(runs[0][1], runs[1][1])


def test_link_prediction_ranks_by_hand_with_ties_and_filtering():
    # entities on a line, relation +1: a + r = b exactly; distances from a + r: a 1, b 0, c 1, d 2
    model = TransE(["a", "b", "c", "d"], ["r"], dim=1, p=1)
    with torch.no_grad():
        model.entity.copy_(torch.tensor([[0.0], [1.0], [2.0], [3.0]]))
        model.relation.copy_(torch.tensor([[1.0]]))
    raw = link_prediction(model, [("a", "r", "c")], ks=(1, 2, 3))
    # tail of (a, r, ?): distances from a + r = 1 are a 1, b 0, c 1, d 2: c ranks 1 + 1 (b) + 0.5 (a ties)
    # head of (?, r, c): distances of e + r to c = 2 are a 1, b 0, c 1, d 2: a ranks 1 + 1 (b) + 0.5 (c ties)
    assert raw.ranks.tolist() == [[2.5, 2.5]]
    assert raw.hits == {1: 0.0, 2: 0.0, 3: 1.0} and raw.mean_rank == 2.5
    assert raw.mean_reciprocal_rank == pytest.approx(1 / 2.5)
    filtered = link_prediction(model, [("a", "r", "c")], known=[("a", "r", "b"), ("b", "r", "c"), ("a", "r", "c")])
    assert filtered.ranks.tolist() == [[1.5, 1.5]]  # b no longer counts against either answer


def test_transe_bad_input(store):
    model = TransE(store.entities, store.relations, dim=4)
    with pytest.raises(ValueError, match=r"facts\[0\]'s subject must be an entity of the model, got 'Nobody'"):
        train_transe(model, [("Nobody", "lives_in", store.entities[0])])
    with pytest.raises(ValueError, match=r"facts\[0\]'s relation must be a relation of the model, got 'likes'"):
        link_prediction(model, [(store.entities[0], "likes", store.entities[1])])
    with pytest.raises(ValueError, match=r"p must be an integer in \[1, 2\], got 3"):
        TransE(["a", "b"], ["r"], p=3)
    with pytest.raises(ValueError, match="entities must be at least one distinct name"):
        TransE(["a", "a"], ["r"])
    with pytest.raises(ValueError, match="dim must be a positive integer, got 0"):
        TransE(["a", "b"], ["r"], dim=0)
    with pytest.raises(ValueError, match="margin must be positive, got -1"):
        train_transe(model, store, margin=-1)
    with pytest.raises(ValueError, match="steps must be a positive integer, got 0"):
        train_transe(model, store, steps=0)
    with pytest.raises(TypeError, match="model must be a TransE, got str"):
        link_prediction("model", store)
    with pytest.raises(ValueError, match=r"ks\[1\] must be a positive integer, got 0"):
        link_prediction(model, store, ks=(1, 0))
    with pytest.raises(ValueError, match="model must have at least 2 entities"):
        train_transe(TransE(["a"], ["r"]), [("a", "r", "a")])


# ----------------------------------------------------------------------------------------------
# Claims of a whole document, and the guessing baselines of link prediction


def test_document_claims_resolves_pronouns_to_the_first_name():
    document = "On day 3, Rozi visited Pominport. Her pet is a cat. By trade, she is a baker. She has a pet owl. He"
    assert document_claims(document) == ["On day 3, Rozi visited Pominport.", "Rozi's pet is a cat.",
                                         "By trade, Rozi is a baker.", "Rozi has a pet owl."]
    assert document_claims("His home is in Pominport. Gati lives in Zuford.") == [
        "His home is in Pominport.", "Gati lives in Zuford."]  # no name in the first sentence: nothing to resolve
    assert document_claims("Rozi lives in Pomin") == []  # cut short: no complete sentence
    assert document_claims("") == []
    assert [parse_claim(c) for c in document_claims("Tom lives in Paris. The hen likes the colour red.")] == [
        Fact("Tom", "lives_in", "Paris"), None]  # "he" inside "The"/"hen" is not a pronoun
    with pytest.raises(TypeError, match="document must be a str, got int"):
        document_claims(3)


def test_document_claims_reads_back_every_sentence_of_generated_documents(world, store):
    # Every relation sentence the generator writes, pronoun or not, parses back to a true fact.
    generator = DocumentGenerator(world)
    rng = random.Random(0)
    relation_sentences = 0
    for _ in range(200):
        document = generator.sample(rng)
        for claim in document_claims(document):
            if "visited" not in claim:
                relation_sentences += 1
                assert store.check_claim(claim).verdict == SUPPORTED, claim
    assert relation_sentences > 300


def _enumerated_hits(pool: list[str], true: str, k: int) -> float:
    # The fraction of all orderings of the pool that put the true entity among the first k.
    orders = list(itertools.permutations(pool))
    return sum(true in order[:k] for order in orders) / len(orders)


def test_random_guess_hits_equals_enumerating_every_order():
    facts = [("a", "r", "x"), ("b", "r", "x"), ("a", "s", "y")]
    entities = ["a", "b", "c", "x", "y"]
    everything = random_guess_hits(facts, lambda fact, side: entities, ks=(1, 2, 5))
    expected = {k: np.mean([_enumerated_hits(entities, e, k) for f in facts for e in (f[0], f[2])]) for k in (1, 2, 5)}
    assert everything == pytest.approx(expected)
    assert everything == pytest.approx({1: 1 / 5, 2: 2 / 5, 5: 1.0})

    # Filtered: for (a, r, x) the head b also forms a known triple and leaves the pool.
    typed = {"head": ["a", "b", "c"], "tail": ["x", "y"]}
    filtered = random_guess_hits(facts[:1], lambda fact, side: typed[side], known=facts, ks=(1, 2))
    assert filtered == pytest.approx({1: (_enumerated_hits(["a", "c"], "a", 1) + _enumerated_hits(["x", "y"], "x", 1)) / 2,
                                      2: 1.0})
    assert random_guess_hits(facts[:1], lambda fact, side: typed[side], ks=(1,)) == pytest.approx({1: (1 / 3 + 1 / 2) / 2})


def test_random_guess_hits_bad_input():
    with pytest.raises(ValueError, match=r"candidates\(.*'tail'\) must include the true tail 'x'"):
        random_guess_hits([("a", "r", "x")], lambda fact, side: ["a"])
    with pytest.raises(TypeError, match="candidates must be a callable"):
        random_guess_hits([("a", "r", "x")], ["a", "x"])
    with pytest.raises(ValueError, match="facts must hold at least one triple"):
        random_guess_hits([], lambda fact, side: ["a"])
    with pytest.raises(TypeError, match=r"known\[0\] must be a \(subject, relation, object\) triple"):
        random_guess_hits([("a", "r", "x")], lambda fact, side: ["a", "x"], known=["ax"])
    with pytest.raises(ValueError, match=r"ks\[0\] must be a positive integer, got 0"):
        random_guess_hits([("a", "r", "x")], lambda fact, side: ["a", "x"], ks=(0,))
