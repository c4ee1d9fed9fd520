"""Tests for course_lib.arithmetic: the chain-sum task, its character tokenizer, solving and reading answers."""

from __future__ import annotations

import pytest
import torch

from course_lib.arithmetic import (
    ALPHABET,
    IGNORE_INDEX,
    ChainSum,
    CharTokenizer,
    accuracy_by_size,
    read_answers,
    running_sums,
    solve,
)


def test_char_tokenizer_round_trips_and_refuses_unknown_characters():
    tokenizer = CharTokenizer()
    assert tokenizer.vocab_size == len(ALPHABET) == 15
    text = "3+5+7+2  =3,8,5,7\n"
    assert tokenizer.decode(tokenizer.encode(text)) == text
    assert tokenizer.encode("0+9") == [0, 10, 9]
    with pytest.raises(ValueError, match=r"text must use only the alphabet .*\['x'\]"):
        tokenizer.encode("3x")
    with pytest.raises(ValueError, match=r"ids must be ints in \[0, 15\), got \[15\]"):
        tokenizer.decode([1, 15])
    with pytest.raises(ValueError, match="alphabet must not repeat a character"):
        CharTokenizer("aa")


def test_running_sums_by_hand():
    assert running_sums([3, 5, 7, 2]) == [3, 8, 5, 7]
    assert running_sums([9, 9, 9]) == [9, 8, 7]
    with pytest.raises(ValueError, match=r"terms\[1\]"):
        running_sums([3, 10])


def test_prompts_share_one_width_and_completions_follow_the_format():
    direct, scratch = ChainSum(False, 2, 4), ChainSum(True, 2, 4)
    assert direct.prompt([3, 5]) == "3+5     =" and direct.prompt([3, 5, 7, 2]) == "3+5+7+2 ="
    assert len({len(direct.prompt([1] * n)) for n in (2, 3, 4)}) == 1  # "=" at one position
    assert direct.completion([3, 5, 7, 2]) == "7\n"
    assert scratch.completion([3, 5, 7, 2]) == "3,8,5,7\n"
    assert scratch.completion_length(4) == len("3,8,5,7\n") and direct.completion_length(4) == 2
    assert scratch.sequence_length == len(scratch.prompt([0] * 4) + scratch.completion([0] * 4))
    with pytest.raises(ValueError, match=r"size must be an integer in \[2, 4\], got 5"):
        direct.prompt([1] * 5)


@pytest.mark.parametrize("kwargs, error, message", [
    ({"scratchpad": 1}, TypeError, "scratchpad must be a bool"),
    ({"min_terms": 0}, ValueError, "min_terms must be an integer in"),
    ({"min_terms": 4, "max_terms": 3}, ValueError, "max_terms must be an integer in"),
])
def test_bad_task_raises_a_clear_error(kwargs, error, message):
    with pytest.raises(error, match=message):
        ChainSum(**kwargs)


@pytest.mark.parametrize("scratchpad", [False, True])
def test_batch_targets_are_the_completion_shifted_by_one_and_nothing_else(scratchpad):
    task = ChainSum(scratchpad, 2, 5)
    inputs, targets = task.batch(16, torch.Generator().manual_seed(0))
    assert inputs.shape == targets.shape == (16, task.sequence_length - 1)
    tokenizer, P = task.tokenizer, task.prompt_length
    for row, target in zip(inputs.tolist(), targets.tolist(), strict=True):
        text = tokenizer.decode(row)
        terms = [int(c) for c in text[:P - 1].strip().split("+")]
        completion = task.completion(terms)
        assert text[:P] == task.prompt(terms)
        assert all(t == IGNORE_INDEX for t in target[:P - 1])  # no loss on the prompt
        scored = [t for t in target if t != IGNORE_INDEX]
        assert tokenizer.decode(scored) == completion  # the completion, newline included, once


def test_read_answers_accepts_only_the_format_of_the_size():
    scratch, direct = ChainSum(True, 2, 4), ChainSum(False, 2, 4)
    assert read_answers(scratch, ["3,8,5,7\n", "3,8,5\n\n", "3,8,5,77\n", "3,8,5,7,\n"], 4) == [7, None, None, None]
    assert read_answers(direct, ["7\n", "7,", "\n\n"], 4) == [7, None, None]


class Oracle(torch.nn.Module):
    """A 'model' whose next-token logits follow the task's own completion: a reference for `solve`."""

    def __init__(self, task: ChainSum, wrong: bool = False) -> None:
        super().__init__()
        self.task, self.wrong = task, wrong
        self.anchor = torch.nn.Parameter(torch.zeros(1))
        self.vocab_size = task.tokenizer.vocab_size
        self.context_length = task.sequence_length

    def as_next_logits(self):
        return self

    def __call__(self, ids: torch.Tensor) -> torch.Tensor:
        tokenizer, P = self.task.tokenizer, self.task.prompt_length
        logits = torch.zeros(ids.shape[0], self.vocab_size)
        for r, row in enumerate(ids.tolist()):
            text = tokenizer.decode(row)
            terms = [int(c) for c in text[:P - 1].strip().split("+")]
            if self.wrong:
                terms[0] = (terms[0] + 1) % 10
            target = self.task.completion(terms)[len(text) - P]
            logits[r, tokenizer.encode(target)[0]] = 10.0
        return logits


@pytest.mark.parametrize("scratchpad", [False, True])
def test_solve_and_accuracy_by_size_with_a_perfect_and_a_wrong_model(scratchpad):
    task = ChainSum(scratchpad, 2, 4)
    terms = task.sample_terms(5, 3, torch.Generator().manual_seed(1))
    assert solve(Oracle(task), task, terms) == [task.completion(t) for t in terms.tolist()]
    assert accuracy_by_size(Oracle(task), task, n_problems=4) == {2: 1.0, 3: 1.0, 4: 1.0}
    assert accuracy_by_size(Oracle(task, wrong=True), task, n_problems=4) == {2: 0.0, 3: 0.0, 4: 0.0}


def test_solve_refuses_bad_input():
    task = ChainSum(True, 2, 4)
    with pytest.raises(TypeError, match="task must be a ChainSum"):
        solve(Oracle(task), "task", torch.zeros(2, 3, dtype=torch.long))
    with pytest.raises(ValueError, match=r"size must be an integer in \[2, 4\], got 5"):
        solve(Oracle(task), task, torch.zeros(2, 5, dtype=torch.long))
