"""Tests for course_lib.world: exact probabilities by enumeration, parse round trips, entropy."""

from __future__ import annotations

import collections
import doctest
import itertools
import math
import random
import statistics

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import course_lib.world
from course_lib.world import (
    END,
    KINDS,
    PRONOUNS,
    RELATIONS,
    TEMPLATES,
    VISIT,
    Derivation,
    DocumentGenerator,
    Fact,
    Sentence,
    World,
)

TINY_CONFIGS = {
    "two-kinds": dict(world=dict(seed=3, n_people=2, n_cities=2),
                      generator=dict(kinds=("lives_in", VISIT), min_sentences=1, max_sentences=2, n_days=2)),
    "all-kinds-weighted": dict(world=dict(seed=4, n_people=3, n_cities=2, n_jobs=2, n_pets=2, n_colours=2),
                               generator=dict(min_sentences=1, max_sentences=2, n_days=3, name_prob=0.3,
                                              person_weights=[0.2, 0.5, 0.3])),
}


def tiny_generator(name: str) -> DocumentGenerator:
    config = TINY_CONFIGS[name]
    return DocumentGenerator(World.generate(**config["world"]), **config["generator"])


def all_derivations(generator: DocumentGenerator):
    """Every derivation the process can make, listed by brute force over its choices."""
    world = generator.world
    for name in world.names:
        for k in range(generator.min_sentences, generator.max_sentences + 1):
            for kinds in itertools.permutations(generator.kinds, k):
                options = [sentence_options(generator, kind, first=j == 0) for j, kind in enumerate(kinds)]
                for sentences in itertools.product(*options):
                    yield Derivation(name, sentences)


def sentence_options(generator: DocumentGenerator, kind: str, first: bool) -> list[Sentence]:
    refs = (True,) if first else (True, False)
    visits = [(None, None)]
    if kind == VISIT:
        visits = [(d, c) for d in range(1, generator.n_days + 1) for c in generator.world.cities]
    return [Sentence(kind, t, r, d, c) for t in range(len(TEMPLATES[kind])) for r in refs for d, c in visits]


def exact_distribution(generator: DocumentGenerator) -> dict[str, float]:
    """Text -> probability, by enumeration; asserts every text parses back to its own derivation."""
    distribution = {}
    for derivation in all_derivations(generator):
        text = generator.render(derivation)
        assert text not in distribution, f"two derivations write {text!r}"
        assert generator.parse(text) == derivation
        distribution[text] = math.exp(generator.log_prob(text))
    return distribution


@pytest.fixture(scope="module")
def default_generator() -> DocumentGenerator:
    return DocumentGenerator(World.generate(seed=0))


# --- exactness in tiny worlds ----------------------------------------------------------------------


@pytest.mark.parametrize("name", TINY_CONFIGS)
def test_enumerated_probabilities_sum_to_one_over_distinct_strings(name):
    distribution = exact_distribution(tiny_generator(name))
    assert len(distribution) > 50
    assert math.fsum(distribution.values()) == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("name", TINY_CONFIGS)
def test_entropy_equals_enumeration(name):
    generator = tiny_generator(name)
    probs = exact_distribution(generator).values()
    assert generator.entropy() == pytest.approx(-math.fsum(p * math.log(p) for p in probs), abs=1e-10)


@pytest.mark.parametrize("name", TINY_CONFIGS)
def test_sampling_frequencies_match_exact_probabilities(name):
    generator = tiny_generator(name)
    distribution = exact_distribution(generator)
    rng, n = random.Random(0), 20_000
    counts = collections.Counter(generator.sample(rng) for _ in range(n))
    assert set(counts) <= set(distribution)
    chi2 = sum((counts[text] - n * p) ** 2 / (n * p) for text, p in distribution.items())
    dof = len(distribution) - 1
    assert chi2 < dof + 5 * math.sqrt(2 * dof), f"chi-square {chi2:.0f} with {dof} degrees of freedom"


# --- the default world ------------------------------------------------------------------------------


@pytest.mark.parametrize("rng", [random.Random(0), np.random.default_rng(0)], ids=["random", "numpy"])
def test_log_prob_of_a_sample_equals_the_log_prob_recorded_while_sampling(default_generator, rng):
    for _ in range(2000):
        derivation, recorded = default_generator.sample_derivation(rng)
        text = default_generator.render(derivation)
        assert default_generator.parse(text) == derivation
        assert default_generator.log_prob(text) == pytest.approx(recorded, abs=1e-9)


def test_entropy_matches_monte_carlo_mean_of_minus_log_prob(default_generator):
    rng = random.Random(1)
    losses = [-default_generator.log_prob(default_generator.sample(rng)) for _ in range(5000)]
    standard_error = statistics.stdev(losses) / math.sqrt(len(losses))
    assert abs(statistics.fmean(losses) - default_generator.entropy()) < 4 * standard_error


def test_default_documents_fit_the_course_targets(default_generator):
    rng = random.Random(2)
    lengths = [len(default_generator.sample(rng)) for _ in range(2000)]
    assert 10 < default_generator.entropy() < 25
    assert 60 <= min(lengths) and max(lengths) <= 250 and 100 <= statistics.fmean(lengths) <= 150


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), n_people=st.integers(2, 30), name_prob=st.floats(0.05, 0.95),
       counts=st.tuples(st.integers(1, 6), st.integers(1, 6)).map(sorted))
def test_round_trip_for_any_world_and_settings(seed, n_people, name_prob, counts):
    generator = DocumentGenerator(World.generate(seed=seed, n_people=n_people), min_sentences=counts[0],
                                  max_sentences=counts[1], name_prob=name_prob)
    rng = random.Random(seed)
    for _ in range(20):
        derivation, recorded = generator.sample_derivation(rng)
        text = generator.render(derivation)
        assert "\n" not in text and generator.parse(text) == derivation
        assert generator.log_prob(text) == pytest.approx(recorded, abs=1e-9)


def test_module_docstring_example_computes_by_hand():
    result = doctest.testmod(course_lib.world)
    assert result.attempted >= 5 and result.failed == 0


# --- the world --------------------------------------------------------------------------------------


def test_same_seed_same_world_and_corpus_byte_for_byte():
    a, b = World.generate(seed=7), World.generate(seed=7)
    assert a == b and a.to_json() == b.to_json()
    assert World.generate(seed=8) != a
    docs = [[DocumentGenerator(w).sample(random.Random(5)) for _ in range(50)] for w in (a, b)]
    assert docs[0] == docs[1]


def test_json_round_trip():
    world = World.generate(seed=1, bias=0.5)
    assert World.from_json(world.to_json()) == world


def test_world_is_well_formed():
    world = World.generate(seed=0)
    names = world.names
    assert len(set(names)) == len(names) == 24 and not set(names) & set(world.cities)
    assert all(p.friend in names and p.friend != p.name for p in world.people)
    facts = world.facts()
    assert len(facts) == 24 * len(RELATIONS) and len(set(facts)) == len(facts)
    assert Fact(names[0], "lives_in", world.people[0].city) in facts


def test_bias_pairs_city_and_job_and_changes_nothing_else():
    plain, skewed = World.generate(seed=0, bias=0.0), World.generate(seed=0, bias=1.0)
    for p, q in zip(plain.people, skewed.people):
        assert q.job == skewed.jobs[skewed.cities.index(q.city) % len(skewed.jobs)]
        assert (p.name, p.city, p.pet, p.colour, p.friend, p.pronoun) == (q.name, q.city, q.pet, q.colour,
                                                                         q.friend, q.pronoun)


def test_person_weights_skew_which_person_is_written_about():
    world = World.generate(seed=0)
    weights = [0.0] * 24
    weights[3] = 1.0
    generator = DocumentGenerator(world, person_weights=weights)
    rng = random.Random(0)
    assert {generator.parse(generator.sample(rng)).person for _ in range(100)} == {world.names[3]}
    about_someone_else = "Rozi lives in Pominport. She works as a teacher. Rozi has a pet cat."
    with pytest.raises(ValueError, match="probability 0"):
        generator.log_prob(about_someone_else)


def test_fact_prompts_complete_to_sentences_the_generator_writes(default_generator):
    single = DocumentGenerator(default_generator.world, min_sentences=1, max_sentences=1)
    for fact in default_generator.world.facts():
        prompt, answer = default_generator.fact_prompt(fact)
        assert answer.startswith(" ") and answer.rstrip(".").endswith(fact.object)
        assert single.parse(prompt + answer) == Derivation(fact.subject, (Sentence(fact.relation, 0, True),))


# --- bad input ----------------------------------------------------------------------------------


BAD_TEXTS = [
    ("The cat sat on the mat.", "sentence 1"),
    ("Rozi lives in Zovomere.", "lives_in='Zovomere'"),
    ("She lives in Pominport. Rozi works as a teacher. Rozi has a pet cat.", "sentence 1 must begin"),
    ("Rozi lives in Pominport. He works as a teacher. Rozi has a pet cat.", "sentence 2"),
    ("Rozi lives in Pominport. Rozi works as an teacher. Rozi has a pet cat.", "sentence 2"),
    ("Rozi lives in Pominport. Rozi works as a teacher. Rozi lives in Pominport.", "distinct"),
    ("Rozi lives in Pominport. Rozi works as a teacher.", "3..5 sentences"),
    ("Rozi lives in Pominport. Rozi works as a teacher. Rozi visited Zovomere on day 29.", "sentence 3"),
    ("Rozi lives in Pominport. Rozi works as a teacher. Rozi visited Zovomere on day 07.", "sentence 3"),
    ("Rozi lives in Pominport.  Rozi works as a teacher. Rozi has a pet cat.", "sentence 2"),
    ("Rozi lives in Pominport. Rozi works as a teacher. Rozi has a pet cat. ", "end with"),
    ("Rozi lives in Pominport. Rozi works as a teacher. Rozi has a pet cat.\n", "end with"),
]


@pytest.mark.parametrize("text, message", BAD_TEXTS)
def test_log_prob_rejects_text_the_generator_cannot_write(default_generator, text, message):
    with pytest.raises(ValueError, match=message):
        default_generator.log_prob(text)


def test_can_write_agrees_with_log_prob(default_generator):
    rng = random.Random(0)
    for _ in range(50):
        assert default_generator.can_write(default_generator.sample(rng))
    for text, _ in BAD_TEXTS:
        assert not default_generator.can_write(text)
    with pytest.raises(TypeError, match="text must be a str"):
        default_generator.can_write(b"Rozi lives in Pominport.")


def test_log_prob_rejects_non_strings(default_generator):
    with pytest.raises(TypeError, match="text must be a str"):
        default_generator.log_prob(b"Rozi lives in Pominport.")


def test_zero_probability_choices_raise():
    world = World.generate(seed=0)
    text = "Rozi lives in Pominport. She works as a teacher. Rozi has a pet cat."
    assert math.isfinite(DocumentGenerator(world).log_prob(text))
    with pytest.raises(ValueError, match="probability 0"):
        DocumentGenerator(world, name_prob=1.0).log_prob(text)


@pytest.mark.parametrize("kwargs, message", [
    (dict(n_people=1), r"n_people must be an integer in \[2, 500\], got 1"), (dict(n_jobs=99), "n_jobs"),
    (dict(bias=1.5), r"bias must be in \[0, 1\], got 1.5"), (dict(seed=-1), "seed must be an integer >= 0, got -1"),
    (dict(n_cities=0), "n_cities"),
])
def test_generate_rejects_bad_config(kwargs, message):
    with pytest.raises(ValueError, match=message):
        World.generate(**kwargs)


@pytest.mark.parametrize("kwargs, message", [
    (dict(seed=True), "seed must be an integer, got True"), (dict(n_people=3.0), "n_people must be an integer"),
    (dict(bias="0.5"), "bias must be a real number, got str"),
])
def test_generate_rejects_wrong_types(kwargs, message):
    with pytest.raises(TypeError, match=message):
        World.generate(**kwargs)


def test_numpy_numbers_are_accepted_and_stored_as_python_numbers():
    world = World.generate(seed=np.int64(3), n_people=np.int64(10), n_cities=np.int32(4), bias=np.float64(0.5))
    assert world == World.generate(seed=3, n_people=10, n_cities=4, bias=0.5)
    assert type(world.seed) is int and type(world.bias) is float
    assert World.from_json(world.to_json()) == world
    direct = World(world.people, world.cities, world.jobs, world.pets, world.colours, seed=np.int64(3),
                   bias=np.int64(0))
    assert (type(direct.seed), type(direct.bias)) == (int, float) and World.from_json(direct.to_json()) == direct
    generator = DocumentGenerator(world, min_sentences=np.int64(3), max_sentences=np.int64(4), n_days=np.int64(7))
    assert (generator.min_sentences, generator.max_sentences, generator.n_days) == (3, 4, 7)
    assert type(generator.n_days) is int


@pytest.mark.parametrize("kwargs, message", [
    (dict(kinds=("lives_in", "flies_to")), "kinds"), (dict(kinds=()), "kinds"),
    (dict(kinds=("lives_in", "lives_in")), "kinds"), (dict(min_sentences=0), "min_sentences"),
    (dict(min_sentences=4, max_sentences=3), r"max_sentences must be an integer in \[4, 6\], got 3"),
    (dict(max_sentences=7), "max_sentences"),
    (dict(name_prob=-0.1), "name_prob"), (dict(n_days=0), "n_days"),
    (dict(person_weights=[1.0, 2.0]), "person_weights"), (dict(person_weights=[-1.0] + [1.0] * 23), "person_weights"),
    (dict(person_weights=[0.0] * 24), "person_weights"),
])
def test_generator_rejects_bad_config(kwargs, message):
    with pytest.raises(ValueError, match=message):
        DocumentGenerator(World.generate(seed=0), **kwargs)


def test_bad_objects_raise(default_generator):
    world = default_generator.world
    with pytest.raises(TypeError, match="rng"):
        default_generator.sample(0)
    with pytest.raises(TypeError, match="world"):
        DocumentGenerator("world")
    with pytest.raises(ValueError, match="name"):
        world.person("Nobody")
    with pytest.raises(ValueError, match="fact must be true"):
        default_generator.fact_prompt(Fact(world.names[0], "lives_in", "Nowhere"))
    with pytest.raises(ValueError, match="relation"):
        default_generator.fact_prompt(Fact(world.names[0], "flies_to", "Nowhere"))
    with pytest.raises(ValueError, match="first sentence"):
        default_generator.render(Derivation(world.names[0], tuple(Sentence(k, 0, False) for k in KINDS[:3])))
    with pytest.raises(ValueError, match="template"):
        default_generator.render(Derivation(world.names[0], tuple(Sentence(k, 2, True) for k in KINDS[:3])))
    with pytest.raises(ValueError, match="fact must have a relation this generator writes"):
        DocumentGenerator(world, kinds=("lives_in", "visit"), min_sentences=2, max_sentences=2).fact_prompt(
            Fact(world.names[0], "works_as", world.person(world.names[0]).value("works_as")))


@pytest.mark.parametrize("sentence, message", [
    (Sentence("visit", 1, True, True, "CITY"), "day of a visit sentence must be an integer, got True"),
    (Sentence("visit", 1, True, 2.0, "CITY"), "day of a visit sentence must be an integer, got float 2.0"),
    (Sentence("lives_in", 0.5, True), "template of a 'lives_in' sentence must be an integer, got float 0.5"),
    (Sentence("lives_in", True, True), "template of a 'lives_in' sentence must be an integer, got True"),
    (Sentence("lives_in", 0, 1), "by_name of a 'lives_in' sentence must be a bool, got int 1"),
])
def test_derivations_with_badly_typed_fields_are_refused(default_generator, sentence, message):
    city = default_generator.world.cities[0]
    sentence = Sentence(sentence.kind, sentence.template, sentence.by_name, sentence.day,
                        city if sentence.kind == "visit" else None)
    derivation = Derivation(default_generator.world.names[0],
                            (Sentence("works_as", 0, True), sentence, Sentence("has_pet", 0, False)))
    for method in (default_generator.render, default_generator.derivation_log_prob):
        with pytest.raises(TypeError, match=message):
            method(derivation)


@pytest.mark.parametrize("sentence, message", [
    (Sentence("visit", 1, True, 29), r"day of a visit sentence must be an integer in \[1, 28\], got 29"),
    (Sentence("visit", 1, True, 3, "Nowhere"), "a visit sentence needs a city of the world"),
    (Sentence("lives_in", 9, True), r"template of a 'lives_in' sentence must be an integer in \[0, \d\], got 9"),
])
def test_derivations_with_out_of_range_fields_are_refused(default_generator, sentence, message):
    city = default_generator.world.cities[0]
    place = sentence.place or (city if sentence.kind == "visit" else None)
    sentence = Sentence(sentence.kind, sentence.template, sentence.by_name, sentence.day, place)
    derivation = Derivation(default_generator.world.names[0],
                            (Sentence("works_as", 0, True), sentence, Sentence("has_pet", 0, False)))
    for method in (default_generator.render, default_generator.derivation_log_prob):
        with pytest.raises(ValueError, match=message):
            method(derivation)


def test_derivation_log_prob_is_minus_inf_for_a_choice_of_probability_0():
    world = World.generate(seed=0)
    always_named = DocumentGenerator(world, name_prob=1.0)
    person = world.names[0]
    first, last = Sentence("works_as", 0, True), Sentence("has_pet", 0, True)
    named = Derivation(person, (first, Sentence("lives_in", 0, True), last))
    pronoun = Derivation(person, (first, Sentence("lives_in", 0, False), last))
    assert always_named.derivation_log_prob(named) == always_named.log_prob(always_named.render(named)) > -math.inf
    assert always_named.derivation_log_prob(pronoun) == -math.inf


def test_from_json_rejects_malformed_worlds():
    world = World.generate(seed=0)
    with pytest.raises(ValueError, match="World.to_json"):
        World.from_json("[1, 2]")
    with pytest.raises(ValueError, match="friend"):
        World.from_json(world.to_json().replace(f'"friend": "{world.people[0].friend}"',
                                                f'"friend": "{world.people[0].name}"', 1))
    with pytest.raises(ValueError, match="names"):
        World.from_json(world.to_json().replace(f'"{world.names[1]}"', '"She"'))


# --- the next sentence's kind ----------------------------------------------------------------------


def kind_sequence_probabilities(generator: DocumentGenerator) -> dict[tuple[str, ...], float]:
    """Ordered kind sequences -> probability, by brute force: uniform k, then an ordered choice."""
    lengths = range(generator.min_sentences, generator.max_sentences + 1)
    return {kinds: 1 / len(lengths) * math.perm(len(generator.kinds), k) ** -1
            for k in lengths for kinds in itertools.permutations(generator.kinds, k)}


@pytest.mark.parametrize("settings", [{}, dict(min_sentences=1, max_sentences=2, kinds=("lives_in", VISIT)),
                                      dict(min_sentences=2, max_sentences=6)])
def test_next_kind_probs_equal_conditionals_of_the_enumerated_sequences(settings):
    generator = DocumentGenerator(World.generate(seed=0), **settings)
    sequences = kind_sequence_probabilities(generator)
    reach = collections.Counter()  # prefix -> probability that a document starts with it
    for kinds, p in sequences.items():
        for j in range(1, len(kinds) + 1):
            reach[kinds[:j]] += p
    for j in range(1, generator.max_sentences + 1):
        for previous in itertools.permutations(generator.kinds, j):
            expected = {END: sequences.get(previous, 0.0) / reach[previous]}
            for kind in generator.kinds:
                expected[kind] = reach.get(previous + (kind,), 0.0) / reach[previous]
            got = generator.next_kind_probs(previous)
            assert list(got) == [END, *generator.kinds]
            assert got == pytest.approx(expected, abs=1e-12)


def test_next_kind_probs_match_sampled_frequencies(default_generator):
    rng, counts = random.Random(0), collections.Counter()
    for _ in range(20000):
        kinds = [s.kind for s in default_generator.sample_derivation(rng)[0].sentences]
        if kinds[:3] and len(kinds) >= 3 and set(kinds[:3]) == {"lives_in", "works_as", "has_pet"}:
            counts[kinds[3] if len(kinds) > 3 else END] += 1
    total = sum(counts.values())
    for event, p in default_generator.next_kind_probs(("has_pet", "lives_in", "works_as")).items():
        assert counts[event] / total == pytest.approx(p, abs=0.05)


@pytest.mark.parametrize("previous", [(), ("lives_in", "lives_in"), ("flies",), tuple(KINDS)])
def test_next_kind_probs_rejects_impossible_contexts(default_generator, previous):
    with pytest.raises(ValueError, match="previous must be 1..5 distinct kinds"):
        default_generator.next_kind_probs(previous)


@pytest.mark.parametrize("settings, previous", [({}, ("lives_in",)), (dict(name_prob=0.3), ("has_pet", VISIT)),
                                                (dict(min_sentences=1, max_sentences=3), ("works_as", "lives_in"))])
def test_next_word_probs_equal_the_first_words_of_every_rendered_continuation(settings, previous):
    generator = DocumentGenerator(World.generate(seed=0), **settings)
    world = generator.world
    renderer = DocumentGenerator(world, min_sentences=1, max_sentences=len(KINDS))  # renders any length
    for person in (next(p for p in world.people if p.pronoun == pronoun) for pronoun in ("she", "he")):
        opening = tuple(Sentence(kind, 0, True, **({"day": 2, "place": world.cities[1]} if kind == VISIT else {}))
                        for kind in previous)
        unused = [kind for kind in generator.kinds if kind not in previous]
        expected = collections.Counter()
        for kind in unused:  # render every whole next sentence and read its first word
            for template in range(len(TEMPLATES[kind])):
                for by_name, chance in ((True, generator.name_prob), (False, 1 - generator.name_prob)):
                    extra = {"day": 5, "place": world.cities[2]} if kind == VISIT else {}
                    text = renderer.render(Derivation(person.name, (*opening, Sentence(kind, template, by_name, **extra))))
                    word = text.split(". ")[len(previous)].split(" ")[0].rstrip(",")
                    expected[word] += chance / len(unused) / len(TEMPLATES[kind])
        got = generator.next_word_probs(person.name, previous)
        assert got == pytest.approx(dict(expected), abs=1e-12)
        assert sum(got.values()) == pytest.approx(1.0, abs=1e-12)
        assert person.name in got and PRONOUNS[person.pronoun][0] in got


def test_next_word_probs_rejects_a_finished_document_or_a_stranger(default_generator):
    with pytest.raises(ValueError, match="previous must leave room for another sentence"):
        default_generator.next_word_probs(default_generator.world.people[0].name, KINDS[:5])
    with pytest.raises(ValueError, match="name must be a person of this world, got 'Nobody'"):
        default_generator.next_word_probs("Nobody", ("lives_in",))
    with pytest.raises(ValueError, match="previous must be"):
        default_generator.next_word_probs(default_generator.world.people[0].name, ())
