"""Tests for course_lib.decoding's text functions: generate_text, continuation_log_prob, score_options.

Two kinds of model: toy ``next_logits`` functions over a few characters (exact answers by hand or by
brute force), and the shipped tiny GPT, whose world facts are known (`course_lib.world`).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from course_lib.datasets import load_generator
from course_lib.decoding import continuation_log_prob, generate_text, greedy_decode, score_options
from course_lib.zoo import load_tiny_gpt

ALPHABET = "abcdefgh."


class CharTokenizer:
    """One id per character of ALPHABET."""

    def encode(self, text: str) -> list[int]:
        return [ALPHABET.index(c) for c in text]

    def decode(self, ids) -> str:
        return "".join(ALPHABET[i] for i in ids)


class PrefixLM:
    """A toy next_logits whose logits depend on the whole prefix (its length and its sum), not just
    the last token, so that scoring the wrong prefix gives a different number."""

    def __init__(self, vocab_size: int = len(ALPHABET), seed: int = 0) -> None:
        g = torch.Generator().manual_seed(seed)
        self.by_length = torch.randn(5, vocab_size, generator=g, dtype=torch.float64)  # (5, V)
        self.by_sum = torch.randn(7, vocab_size, generator=g, dtype=torch.float64)  # (7, V)

    def __call__(self, ids: torch.Tensor) -> torch.Tensor:
        return self.by_length[ids.shape[1] % 5] + self.by_sum[ids.sum(dim=1) % 7]  # (B, V)


def table_lm(rows: dict[int, dict[int, float]], vocab_size: int = len(ALPHABET)):
    """A next_logits from the last token: {token: {next: prob}}; unlisted rows are uniform."""
    probs = torch.full((vocab_size, vocab_size), 1.0 / vocab_size, dtype=torch.float64)
    for token, row in rows.items():
        probs[token] = 0.0
        for nxt, p in row.items():
            probs[token, nxt] = p
    log_probs = probs.log()  # (V, V)
    return lambda ids: log_probs[ids[:, -1]]  # (B, V)


def answer_text(relation: str, obj: str) -> str:
    """A fact's answer as `DocumentGenerator.fact_prompt` writes it, for any object of the relation."""
    article = ("an " if obj[0] in "aeiou" else "a ") if relation == "works_as" else ""
    return f" {article}{obj}."


@pytest.fixture(scope="module")
def gpt():
    return load_tiny_gpt()


@pytest.fixture(scope="module")
def facts():
    """(prompt, options, index of the true option) for every fact of the world."""
    generator = load_generator()
    world = generator.world
    values = {"lives_in": world.cities, "works_as": world.jobs, "has_pet": world.pets,
              "likes_colour": world.colours, "best_friend": world.names}
    cases = []
    for fact in world.facts():
        prompt, answer = generator.fact_prompt(fact)
        options = [answer_text(fact.relation, v) for v in values[fact.relation] if v != fact.subject]
        cases.append(("\n" + prompt, options, options.index(answer)))
    return cases


# ----------------------------------------------------------------------------------------------
# continuation_log_prob


def test_continuation_log_prob_is_the_log_of_the_product_of_step_probabilities() -> None:
    lm = PrefixLM()
    prompt, continuation = [1, 4, 2], [0, 3, 3, 7]
    product = 1.0
    for k, token in enumerate(continuation):
        logits = lm(torch.tensor([prompt + continuation[:k]]))[0]  # (V,)
        product *= float(torch.softmax(logits, dim=-1)[token])
    assert continuation_log_prob(lm, prompt, continuation) == pytest.approx(math.log(product), abs=1e-12)
    assert continuation_log_prob(lm, torch.tensor(prompt), np.array(continuation)) == pytest.approx(math.log(product))


def test_tiny_gpt_is_scored_in_one_pass_that_agrees_with_step_by_step(gpt) -> None:
    model, tokenizer = gpt
    prompt, continuation = tokenizer.encode("\nRozi lives in"), tokenizer.encode(" Pominport. She is")
    step_by_step = model.as_next_logits(kv_cache=False)
    total = 0.0
    for k, token in enumerate(continuation):
        logits = step_by_step(torch.tensor([prompt + continuation[:k]]))[0].double()  # (V,)
        total += math.log(float(torch.softmax(logits, dim=-1)[token]))
    calls = []
    hook = model.register_forward_hook(lambda module, args, output: calls.append(args[0].shape))
    try:
        one_pass = continuation_log_prob(model, prompt, continuation)
    finally:
        hook.remove()
    assert calls == [(1, len(prompt) + len(continuation) - 1)]
    assert one_pass == pytest.approx(total, abs=1e-4)
    assert continuation_log_prob(model.as_next_logits(), prompt, continuation) == pytest.approx(total, abs=1e-4)


# ----------------------------------------------------------------------------------------------
# score_options


def test_options_of_different_lengths_score_as_they_do_alone(gpt) -> None:
    model, tokenizer = gpt
    prompt, options = "\nRozi's pet is", [" a cat.", " an iguana. Her", " a dog", " a"]
    scores = score_options(model, tokenizer, prompt, options)  # one padded batch
    alone = [continuation_log_prob(model, tokenizer.encode(prompt), tokenizer.encode(o)) for o in options]
    assert scores == pytest.approx(alone, abs=1e-4)
    means = score_options(model, tokenizer, prompt, options, normalize="mean")
    per_token = [s / len(tokenizer.encode(o)) for s, o in zip(scores, options, strict=True)]
    assert means == pytest.approx(per_token, abs=1e-12)


def test_sum_favours_short_options_and_mean_removes_the_length_penalty() -> None:
    # After "a": "b" has probability 0.3; "cde" has 0.25 * 0.9 * 0.9 = 0.2025 in all, 0.59 per token.
    lm = table_lm({0: {1: 0.3, 2: 0.25, 8: 0.45}, 2: {3: 0.9, 8: 0.1}, 3: {4: 0.9, 8: 0.1}})
    tokenizer = CharTokenizer()
    by_sum = score_options(lm, tokenizer, "a", ["b", "cde"])
    by_mean = score_options(lm, tokenizer, "a", ["b", "cde"], normalize="mean")
    assert by_sum == pytest.approx([math.log(0.3), math.log(0.2025)])
    assert by_sum[0] > by_sum[1] and by_mean[1] > by_mean[0]


@pytest.mark.parametrize("normalize", ["sum", "mean"])
def test_tiny_gpt_prefers_the_true_object_of_almost_every_fact(gpt, facts, normalize: str) -> None:
    model, tokenizer = gpt
    right = 0
    for prompt, options, truth in facts:
        scores = score_options(model, tokenizer, prompt, options, normalize=normalize)
        right += max(range(len(options)), key=scores.__getitem__) == truth
    assert len(facts) == 120
    assert right / len(facts) >= 0.95  # measured: 120 of 120 with either normalisation


def test_the_space_belongs_to_the_option_not_to_the_prompt(gpt, facts) -> None:
    # "in" + " Pominport." is how the corpus is tokenized; "in " + "Pominport." puts the space in a
    # token of its own, a segmentation the model has hardly seen, and the scores stop making sense.
    model, tokenizer = gpt
    right = {"space in the option": 0, "space in the prompt": 0}
    for prompt, options, truth in facts:
        assert tokenizer.encode(prompt) + tokenizer.encode(options[truth]) == tokenizer.encode(prompt + options[truth])
        for where, p, opts in [("space in the option", prompt, options),
                               ("space in the prompt", prompt + " ", [o[1:] for o in options])]:
            scores = score_options(model, tokenizer, p, opts)
            right[where] += max(range(len(opts)), key=scores.__getitem__) == truth
    assert right["space in the option"] / len(facts) >= 0.95  # measured: 120 of 120
    assert right["space in the prompt"] / len(facts) <= 0.5  # measured: 17 of 120


# ----------------------------------------------------------------------------------------------
# generate_text


def test_greedy_text_is_the_greedy_decoder_continuation_and_states_the_fact(gpt, facts) -> None:
    model, tokenizer = gpt
    for prompt, options, truth in facts[:5]:  # the five facts of the first person
        text = generate_text(model, tokenizer, prompt, 20)
        ids = torch.tensor(tokenizer.encode(prompt))
        expected = tokenizer.decode(greedy_decode(model.as_next_logits(), ids, 20)[len(ids):].tolist())
        assert text == expected == generate_text(model, tokenizer, prompt, 20)
        assert text.startswith(options[truth])


def test_sampling_is_reproducible_with_a_seed_and_varies_without(gpt) -> None:
    model, tokenizer = gpt
    prompt = "\nRozi"

    def draw(seed: int, **kwargs) -> str:
        return generate_text(model, tokenizer, prompt, 30, temperature=1.0,
                             generator=torch.Generator().manual_seed(seed), **kwargs)

    assert draw(0) == draw(0)
    assert len({draw(seed) for seed in range(5)}) >= 3
    assert draw(1, top_k=1) == draw(2, top_k=1) == generate_text(model, tokenizer, prompt, 30)  # top-1 is greedy
    assert draw(3, top_p=1e-9) == generate_text(model, tokenizer, prompt, 30)


def test_stop_string_or_token_ends_the_text_before_it(gpt) -> None:
    model, tokenizer = gpt
    prompt = "\nRozi lives in"
    free = generate_text(model, tokenizer, prompt, 55)
    assert "\n" in free  # the model ends its document and starts another
    line = generate_text(model, tokenizer, prompt, 55, stop="\n")
    assert line == free[:free.index("\n")] and line.endswith(".")
    assert generate_text(model, tokenizer, prompt, 55, stop=tokenizer.encode("\n")[0]) == line
    assert generate_text(model, tokenizer, prompt, 55, stop=np.int64(tokenizer.encode("\n")[0])) == line
    first_sentence = generate_text(model, tokenizer, prompt, 55, stop=".")
    assert first_sentence == line[:line.index(".")] and "." not in first_sentence
    assert generate_text(model, tokenizer, prompt, 55, stop="no such text") == free


def test_a_plain_next_logits_function_and_its_stop() -> None:
    lm = table_lm({0: {1: 1.0}, 1: {2: 0.9, 8: 0.1}, 2: {8: 0.8, 3: 0.2}, 8: {0: 1.0}})
    tokenizer = CharTokenizer()
    assert generate_text(lm, tokenizer, "a", 6) == "bc.abc"
    assert generate_text(lm, tokenizer, "a", 6, stop=".") == "bc"
    assert generate_text(lm, tokenizer, "a", 6, stop=ALPHABET.index(".")) == "bc"
    assert generate_text(lm, tokenizer, "a", 6, stop="ca") == "bc.abc"  # never written
    assert generate_text(lm, tokenizer, "a", 6, stop=".a") == "bc"  # a stop string across two tokens


# ----------------------------------------------------------------------------------------------
# Bad arguments


def test_generate_text_bad_arguments(gpt) -> None:
    model, tokenizer = gpt
    cases = [
        (dict(prompt=b"Rozi"), TypeError, "prompt must be a str, got bytes"),
        (dict(prompt=""), ValueError, "prompt must encode to at least one token, got ''"),
        (dict(max_new_tokens=0), ValueError, "max_new_tokens must be a positive integer, got 0"),
        (dict(max_new_tokens=2.0), TypeError, "max_new_tokens must be an integer, got float 2.0"),
        (dict(max_new_tokens=64), ValueError, "exceeds the context_length 64"),
        (dict(prompt="Rozi " * 70), ValueError, "longer than the context_length 64"),
        (dict(temperature=-1.0), ValueError, "temperature must be >= 0, got -1.0"),
        (dict(top_p=1.5), ValueError, r"top_p must be in \(0, 1\], got 1.5"),
        (dict(stop=""), ValueError, "stop must be a non-empty str, a token id or None, got ''"),
        (dict(stop=512), ValueError, r"stop must be a token id in \[0, 512\), got 512"),
        (dict(stop=1.5), TypeError, "stop must be an integer, got float 1.5"),
        (dict(generator=0), TypeError, "generator must be a torch.Generator or None, got int"),
        (dict(model="gpt"), TypeError, r"model must be a model with as_next_logits\(\) or a next_logits\(ids\) "
                                       "function, got str"),
        (dict(tokenizer="bpe"), TypeError, r"tokenizer must have encode\(text\) and decode\(ids\) methods, got str"),
    ]
    for override, error, match in cases:
        kwargs = dict(model=model, tokenizer=tokenizer, prompt="\nRozi", max_new_tokens=5) | override
        with pytest.raises(error, match=match):
            generate_text(**kwargs)


def test_scoring_bad_arguments(gpt) -> None:
    model, tokenizer = gpt
    lm = PrefixLM()
    cases = [
        (lambda: continuation_log_prob(lm, [], [1]), ValueError,
         r"prompt_ids must hold at least one token id, got \[\]"),
        (lambda: continuation_log_prob(lm, [1], []), ValueError, "continuation_ids must hold at least one token id"),
        (lambda: continuation_log_prob(lm, [1], [2.0]), TypeError,
         r"continuation_ids\[0\] must be an integer, got float"),
        (lambda: continuation_log_prob(lm, "ab", [1]), TypeError, "prompt_ids must be a sequence of token ids or a "
                                                                 "1-D integer tensor, got str"),
        (lambda: continuation_log_prob(lm, 5, [1]), TypeError, "prompt_ids must be a sequence .*, got int"),
        (lambda: continuation_log_prob(lm, np.ones((2, 2), dtype=int), [1]), TypeError,
         r"prompt_ids\[0\] must be an integer, got ndarray"),
        (lambda: continuation_log_prob(lm, torch.ones(2, 2, dtype=torch.long), [1]), ValueError,
         r"prompt_ids must have 1 dimensions, got shape \(2, 2\)"),
        (lambda: continuation_log_prob(lm, torch.ones(2), [1]), TypeError, "prompt_ids must be an integer tensor"),
        (lambda: continuation_log_prob(lm, [1], [-1]), ValueError, "continuation_ids must hold token ids >= 0, got -1"),
        (lambda: continuation_log_prob(lm, [1], [9]), ValueError, "continuation ids must be < vocab size 9, got 9"),
        (lambda: continuation_log_prob(lm, [9], [1]), ValueError, "prompt_ids must be token ids < vocab size 9"),
        (lambda: continuation_log_prob(None, [1], [1]), TypeError, "model must be a model with as_next_logits"),
        (lambda: continuation_log_prob(model, [1], [512]), ValueError,
         "prompt and continuation_ids must hold token ids < vocab size 512, got 512"),
        (lambda: continuation_log_prob(model, [1] * 40, [2] * 26), ValueError,
         r"prompt \(40 tokens\) and continuation_ids \(26 tokens\) do not fit in the context_length 64: "
         "the model would read 65 tokens"),
        (lambda: score_options(model, tokenizer, "\nRozi", " a cat."), TypeError,
         "options must be a sequence of str, got str"),
        (lambda: score_options(model, tokenizer, "\nRozi", []), ValueError, r"options must hold at least one option"),
        (lambda: score_options(model, tokenizer, "\nRozi", [" a", ""]), ValueError,
         r"options\[1\] must encode to at least one token, got ''"),
        (lambda: score_options(model, tokenizer, "\nRozi", [" a", 5]), TypeError,
         r"options\[1\] must be a str, got int"),
        (lambda: score_options(model, tokenizer, "\nRozi", [" a"], normalize="max"), ValueError,
         "normalize must be one of 'sum', 'mean'; got 'max'"),
        (lambda: score_options(model, tokenizer, None, [" a"]), TypeError, "prompt must be a str, got NoneType"),
        (lambda: score_options(model, object(), "\nRozi", [" a"]), TypeError, "tokenizer must have encode"),
    ]
    for call, error, match in cases:
        with pytest.raises(error, match=match):
            call()
    assert continuation_log_prob(model, [1] * 40, [2] * 25) < 0  # 64 tokens read: just fits
