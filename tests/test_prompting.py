"""Tests for course_lib.prompting: templates, prompts, orderings, classification against brute-force
scoring, contextual calibration on a toy model with known logits, voting, and the shipped tiny GPT."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from course_lib.datasets import load_generator
from course_lib.prompting import (
    CONTENT_FREE_INPUTS,
    Template,
    build_prompt,
    calibrate,
    classify,
    content_free_probs,
    majority_vote,
    orderings,
    self_consistency,
)
from course_lib.zoo import load_tiny_gpt

# ----------------------------------------------------------------------------------------------
# A toy model with known logits: characters are tokens; the next token's logits are a fixed bias
# plus a bonus for the label cued by the last digit of the text ("1" -> A, "2" -> B, "3" -> C).

ALPHABET = "\n []/:.?ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
LABELS = [" A", " B", " C"]
BIAS = {"A": 2.0, "B": 0.5, "C": 0.0}  # the labels' share of the toy's bias: p_cf = softmax(2, 0.5, 0)


class CharTokenizer:
    def encode(self, text: str) -> list[int]:
        return [ALPHABET.index(c) for c in text]

    def decode(self, ids) -> str:
        return "".join(ALPHABET[i] for i in ids)


class CuedToy:
    """next_logits(ids (B, T)) -> (B, V): BIAS, plus ``cue`` on the label of the last digit 1-3."""

    def __init__(self, bias: dict[str, float] = BIAS, cue: float = 1.0) -> None:
        self.base = torch.zeros(len(ALPHABET), dtype=torch.float64)
        for letter, value in bias.items():
            self.base[ALPHABET.index(letter)] = value
        self.cue = cue

    def logits(self, text: str) -> torch.Tensor:
        logits = self.base.clone()  # (V,)
        digits = [c for c in text if c in "123"]
        if digits:
            logits[ALPHABET.index("ABC"[int(digits[-1]) - 1])] += self.cue
        return logits

    def __call__(self, ids: torch.Tensor) -> torch.Tensor:
        return torch.stack([self.logits(CharTokenizer().decode(row.tolist())) for row in ids])  # (B, V)


def brute_force_log_prob(toy: CuedToy, prompt: str, label: str) -> float:
    """log p(label | prompt), one character at a time, straight from the toy's logits."""
    total = 0.0
    for k, char in enumerate(label):
        total += float(torch.log_softmax(toy.logits(prompt + label[:k]), dim=-1)[ALPHABET.index(char)])
    return total


TOY_TEMPLATE = Template("Q: {x}\nA:")


# ----------------------------------------------------------------------------------------------
# Templates and prompts


def test_template_slots_in_order_of_first_appearance_and_literal_braces():
    template = Template("{b} and {a}, then {b} again {{not a slot}}")
    assert template.slots == ("b", "a")
    assert template.format(a="1", b="2") == "2 and 1, then 2 again {not a slot}"
    assert Template("no slots").slots == ()


def test_a_missing_slot_is_named_never_left_as_a_hole():
    with pytest.raises(ValueError, match=r"needs a value for slot 'question'"):
        Template("Q: {question}\nA: {answer}").format(answer="4")
    with pytest.raises(ValueError, match=r"has no slot 'questoin'; its slots are \['question'\]"):
        Template("Q: {question}").format(question="?", questoin="?")


@pytest.mark.parametrize("text, match", [("{}", "plain names"), ("{0}", "plain names"), ("{x.y}", "plain names"),
                                         ("{x!r}", "plain names"), ("{x:>5}", "plain names"),
                                         ("{x", "not a valid format string"), ("x}", "not a valid format string")])
def test_templates_are_filled_by_names_only(text, match):
    with pytest.raises(ValueError, match=match):
        Template(text)


def test_template_bad_types():
    with pytest.raises(TypeError, match="template must be a str, got int"):
        Template(3)
    with pytest.raises(TypeError, match="the value of slot 'x' must be a str, got int"):
        Template("{x}").format(x=3)
    with pytest.raises(TypeError, match="query must be a str or a mapping"):
        Template("{x}").fill(["a"])
    with pytest.raises(ValueError, match="single str only for a template with one slot"):
        Template("{x} {y}").fill("a")
    with pytest.raises(ValueError, match="template must have a slot for the query, like {question}, got 'Q:'"):
        build_prompt("Q:", "a")


def test_build_prompt_writes_demonstrations_as_the_query_will_be_continued():
    demos = [("Rozi", " Pominport."), ({"person": "Kazi"}, " Tarford.")]
    prompt = build_prompt("{person} lives in", "Bodi", demos)
    assert prompt == "Rozi lives in Pominport.\nKazi lives in Tarford.\nBodi lives in"
    assert build_prompt(Template("{person} lives in"), "Bodi") == "Bodi lives in"  # zero-shot
    assert build_prompt("{p}:", "x", [("a", " 1")], separator=" | ") == "a: 1 | x:"


def test_build_prompt_bad_input():
    with pytest.raises(TypeError, match=r"demonstrations\[0\] must be a \(query, answer\) pair"):
        build_prompt("{x}", "a", [("b",)])
    with pytest.raises(TypeError, match="demonstrations must be a sequence of"):
        build_prompt("{x}", "a", "b c")
    with pytest.raises(TypeError, match=r"demonstrations\[0\]'s answer must be a str"):
        build_prompt("{x}", "a", [("b", 1)])
    with pytest.raises(ValueError, match="needs a value for slot 'y'"):
        build_prompt("{x} {y}", {"x": "a"})


# ----------------------------------------------------------------------------------------------
# Orderings


def test_all_orderings_are_every_permutation_once():
    items = ["w", "x", "y", "z"]
    orders = orderings(items)
    assert len(orders) == math.factorial(4) == len(set(orders))
    assert all(sorted(order) == items for order in orders)
    assert orders[0] == tuple(items) and orders == list(itertools.permutations(items))
    assert len(orderings(["a", "a", "b"])) == 6  # placed by position


def test_sampled_orderings_are_distinct_reproducible_and_complete_at_n_factorial():
    items = list(range(5))
    sample = orderings(items, n=7, seed=3)
    assert len(sample) == 7 == len(set(sample)) and all(sorted(o) == items for o in sample)
    assert sample == orderings(items, n=7, seed=3)
    assert sample != orderings(items, n=7, seed=4)
    assert orderings(items, n=120, seed=1) == orderings(items)  # every index drawn once, in order
    many = orderings(range(12), n=50, seed=0)  # 12! orders: sampled without listing them
    assert len(set(many)) == 50 and all(sorted(o) == list(range(12)) for o in many)


def test_orderings_bad_input():
    with pytest.raises(ValueError, match=r"n must be at most 3! = 6"):
        orderings(["a", "b", "c"], n=7)
    with pytest.raises(ValueError, match="n must be a positive integer, got 0"):
        orderings([1, 2], n=0)
    with pytest.raises(ValueError, match="pass n to sample"):
        orderings(list(range(9)))
    with pytest.raises(TypeError, match="items must be a sequence"):
        orderings("abc")


# ----------------------------------------------------------------------------------------------
# classify: against brute-force scoring


@pytest.mark.parametrize("query", ["1", "2", "3", "N/A"])
def test_classify_matches_brute_force_scoring(query):
    toy, tokenizer = CuedToy(), CharTokenizer()
    prompt = build_prompt(TOY_TEMPLATE, query, [("3", " C"), ("1", " A")])
    result = classify(toy, tokenizer, prompt, LABELS)
    expected = np.array([brute_force_log_prob(toy, prompt, label) for label in LABELS])
    np.testing.assert_allclose(result.scores, expected, rtol=0, atol=1e-12)
    probs = np.exp(expected) / np.exp(expected).sum()
    np.testing.assert_allclose(result.probs, probs, rtol=0, atol=1e-12)
    assert result.prediction == LABELS[int(np.argmax(probs))] and result.labels == tuple(LABELS)


def test_classify_bad_labels():
    toy, tokenizer = CuedToy(), CharTokenizer()
    for labels, error, match in [([" A"], ValueError, "at least 2 distinct"), ([" A", " A"], ValueError, "distinct"),
                                 (" A B", TypeError, "labels must be a sequence of str"),
                                 ([" A", ""], ValueError, r"labels\[1\] must be a non-empty str")]:
        with pytest.raises(error, match=match):
            classify(toy, tokenizer, "Q: 1\nA:", labels)


# ----------------------------------------------------------------------------------------------
# Contextual calibration


def known_p_cf() -> np.ndarray:
    logits = np.array([BIAS["A"], BIAS["B"], BIAS["C"]])
    return np.exp(logits) / np.exp(logits).sum()


def test_content_free_probs_are_the_toys_bias_over_the_labels():
    toy, tokenizer = CuedToy(), CharTokenizer()
    prompts = [build_prompt(TOY_TEMPLATE, x, [("3", " C")]) for x in CONTENT_FREE_INPUTS]
    # the demonstration's digit cues C in every prompt: remove it to see the bias alone
    p_cf = content_free_probs(toy, tokenizer, [build_prompt(TOY_TEMPLATE, x) for x in CONTENT_FREE_INPUTS], LABELS)
    np.testing.assert_allclose(p_cf, known_p_cf(), rtol=0, atol=1e-12)
    with_demo = content_free_probs(toy, tokenizer, prompts, LABELS)
    assert with_demo[2] > p_cf[2]  # the demonstration's label is favoured on a content-free input


def test_calibration_makes_the_content_free_input_exactly_uniform():
    toy, tokenizer = CuedToy(), CharTokenizer()
    prompt = build_prompt(TOY_TEMPLATE, "N/A")
    p_cf = content_free_probs(toy, tokenizer, [prompt], LABELS)
    assert not np.allclose(p_cf, 1 / 3)
    calibrated = classify(toy, tokenizer, prompt, LABELS, p_cf=p_cf).probs
    assert np.array_equal(calibrated, np.full(3, 1 / 3))  # exactly, not approximately
    several = content_free_probs(toy, CharTokenizer(), [build_prompt(TOY_TEMPLATE, x, [("2", " B")])
                                                        for x in CONTENT_FREE_INPUTS], LABELS)
    assert np.array_equal(calibrate(several, several), np.full(3, 1 / 3))


def test_calibration_leaves_an_unbiased_model_unchanged():
    toy, tokenizer = CuedToy(bias={}), CharTokenizer()
    p_cf = content_free_probs(toy, tokenizer, [build_prompt(TOY_TEMPLATE, x) for x in CONTENT_FREE_INPUTS], LABELS)
    assert np.array_equal(p_cf, np.full(3, 1 / 3))
    for query in ["1", "2", "3"]:
        prompt = build_prompt(TOY_TEMPLATE, query)
        raw, calibrated = classify(toy, tokenizer, prompt, LABELS), classify(toy, tokenizer, prompt, LABELS, p_cf=p_cf)
        np.testing.assert_allclose(calibrated.probs, raw.probs, rtol=1e-15, atol=0)
        assert calibrated.prediction == raw.prediction == LABELS[int(query) - 1]


def test_calibration_removes_the_bias_that_outvotes_the_cue():
    # the bias towards A (2.0) beats the cue (+1) for B; dividing by p_cf leaves the cue alone
    toy, tokenizer = CuedToy(), CharTokenizer()
    p_cf = content_free_probs(toy, tokenizer, [build_prompt(TOY_TEMPLATE, x) for x in CONTENT_FREE_INPUTS], LABELS)
    raw = [classify(toy, tokenizer, build_prompt(TOY_TEMPLATE, q), LABELS).prediction for q in "123"]
    calibrated = [classify(toy, tokenizer, build_prompt(TOY_TEMPLATE, q), LABELS, p_cf=p_cf).prediction for q in "123"]
    assert raw == [" A", " A", " A"]
    assert calibrated == LABELS


def test_content_free_probs_average_probabilities_then_renormalise():
    toy, tokenizer = CuedToy(), CharTokenizer()
    prompts = ["Q: 1\nA:", "Q: N/A\nA:"]
    probs = np.exp([[brute_force_log_prob(toy, p, label) for label in LABELS] for p in prompts])  # (2, 3) unnormalised
    expected = probs.mean(axis=0) / probs.mean(axis=0).sum()
    np.testing.assert_allclose(content_free_probs(toy, tokenizer, prompts, LABELS), expected, rtol=0, atol=1e-12)


def test_calibrate_is_the_renormalised_ratio_row_by_row():
    probs = np.array([[0.5, 0.3, 0.2], [0.1, 0.1, 0.8]])
    p_cf = np.array([0.5, 0.25, 0.25])
    ratios = probs / p_cf
    np.testing.assert_allclose(calibrate(probs, p_cf), ratios / ratios.sum(axis=1, keepdims=True), rtol=1e-15)
    np.testing.assert_allclose(calibrate(torch.tensor(probs[0]), [2, 1, 1]), calibrate(probs[0], p_cf), rtol=1e-15)


@pytest.mark.parametrize("probs, p_cf, error, match", [
    ([0.5, 0.5], [0.5, 0.0], ValueError, "p_cf must be positive"),
    ([0.5, 0.5], [0.3, 0.3, 0.4], ValueError, r"p_cf must have shape \(K,\)"),
    ([0.5, -0.1], [0.5, 0.5], ValueError, "probs must be finite and non-negative"),
    ([0.5, float("nan")], [0.5, 0.5], ValueError, "probs must be finite"),
    ([0.0, 0.0], [0.5, 0.5], ValueError, "positive sum in every row"),
    (0.5, [0.5], ValueError, "probs must have at least one dimension"),
    (["a", "b"], [0.5, 0.5], TypeError, "probs must be an array of probabilities"),
])
def test_calibrate_bad_input(probs, p_cf, error, match):
    with pytest.raises(error, match=match):
        calibrate(probs, p_cf)


def test_content_free_probs_bad_prompts():
    with pytest.raises(ValueError, match="at least one content-free prompt"):
        content_free_probs(CuedToy(), CharTokenizer(), [], LABELS)
    with pytest.raises(TypeError, match="prompts must be a sequence of str"):
        content_free_probs(CuedToy(), CharTokenizer(), "Q: N/A\nA:", LABELS)


# ----------------------------------------------------------------------------------------------
# Voting


def test_majority_vote_and_its_tie_rule():
    assert majority_vote(["7", "9", "9"]) == "9"
    assert majority_vote(["7", "9", "9", "7"]) == "7"  # tie: the one seen first
    assert majority_vote(["9", "7", "7", "9"]) == "9"
    assert majority_vote(["3", "1", "2"]) == "3"
    assert majority_vote([4]) == 4
    assert majority_vote([None, "a", None]) is None


def test_majority_vote_bad_input():
    with pytest.raises(ValueError, match="at least one answer"):
        majority_vote([])
    with pytest.raises(TypeError, match="answers must be hashable"):
        majority_vote([["a"], ["a"]])
    with pytest.raises(TypeError, match="answers must be a sequence"):
        majority_vote("779")


class AnswerToy:
    """After the prompt, one answer digit (7: 0.5, 9: 0.3, 8: 0.2), then a newline."""

    def __call__(self, ids: torch.Tensor) -> torch.Tensor:
        logits = torch.full((len(ids), len(ALPHABET)), -math.inf, dtype=torch.float64)  # (B, V)
        for row, seq in enumerate(ids.tolist()):
            if ALPHABET[seq[-1]] in "789":
                logits[row, ALPHABET.index("\n")] = 0.0
            else:
                for digit, p in zip("798", (0.5, 0.3, 0.2), strict=True):
                    logits[row, ALPHABET.index(digit)] = math.log(p)
        return logits


def test_self_consistency_votes_over_seeded_samples():
    tokenizer = CharTokenizer()
    vote = self_consistency(AnswerToy(), tokenizer, "Q:", 25, max_new_tokens=3,
                            generator=torch.Generator().manual_seed(0))
    assert len(vote.answers) == len(vote.texts) == 25 and set(vote.answers) <= {"7", "8", "9"}
    assert vote.answer == majority_vote(list(vote.answers)) == "7"
    again = self_consistency(AnswerToy(), tokenizer, "Q:", 25, max_new_tokens=3,
                             generator=torch.Generator().manual_seed(0))
    assert again == vote
    no_sevens = self_consistency(AnswerToy(), tokenizer, "Q:", 25, max_new_tokens=3,
                                 extract=lambda text: None if text == "7" else text,
                                 generator=torch.Generator().manual_seed(0))
    assert no_sevens.answer == "9" and no_sevens.answers.count(None) == vote.answers.count("7")
    nothing = self_consistency(AnswerToy(), tokenizer, "Q:", 3, max_new_tokens=3, extract=lambda text: None)
    assert nothing.answer is None


def test_self_consistency_bad_input():
    with pytest.raises(ValueError, match="temperature must be positive, got 0"):
        self_consistency(AnswerToy(), CharTokenizer(), "Q:", 3, max_new_tokens=3, temperature=0)
    with pytest.raises(ValueError, match="n must be a positive integer, got 0"):
        self_consistency(AnswerToy(), CharTokenizer(), "Q:", 0, max_new_tokens=3)
    with pytest.raises(TypeError, match="extract must be a function"):
        self_consistency(AnswerToy(), CharTokenizer(), "Q:", 3, max_new_tokens=3, extract="7")


# ----------------------------------------------------------------------------------------------
# The shipped tiny GPT on the world's facts


@pytest.fixture(scope="module")
def gpt():
    return load_tiny_gpt()


@pytest.fixture(scope="module")
def generator():
    return load_generator()


def fact_labels(world, fact) -> list[str]:
    """Every value of the fact's relation, written as the corpus continues `fact_prompt`."""
    values = {"lives_in": world.cities, "works_as": world.jobs, "has_pet": world.pets,
              "likes_colour": world.colours, "best_friend": [n for n in world.names if n != fact.subject]}
    article = {v: ("an " if v[0] in "aeiou" else "a ") if fact.relation == "works_as" else "" for v in
               values[fact.relation]}
    return [f" {article[v]}{v}." for v in values[fact.relation]]


def test_tiny_gpt_classifies_the_world_facts(gpt, generator):
    model, tokenizer = gpt
    world, right = generator.world, 0
    for fact in world.facts():
        prompt, answer = generator.fact_prompt(fact)
        right += classify(model, tokenizer, "\n" + prompt, fact_labels(world, fact)).prediction == answer
    assert right / len(world.facts()) >= 0.95  # measured: 120 of 120


def test_tiny_gpt_voting_beats_a_single_sample(gpt, generator):
    # at temperature 2 a sample misses about one fact in eight; the vote of 9 samples misses none
    model, tokenizer = gpt
    torch_generator = torch.Generator().manual_seed(0)
    facts = generator.world.facts()[::6]  # 20 facts, every relation
    single = voted = 0.0
    for fact in facts:
        prompt, answer = generator.fact_prompt(fact)
        vote = self_consistency(model, tokenizer, "\n" + prompt, 9, max_new_tokens=6, temperature=2.0, stop=".",
                                generator=torch_generator)
        truth = answer[:-1].strip()  # " Pominport." -> "Pominport"
        single += np.mean([a == truth for a in vote.answers]) / len(facts)
        voted += (vote.answer == truth) / len(facts)
    assert voted >= 0.95 and voted - single >= 0.05  # measured: 1.000 against 0.878
