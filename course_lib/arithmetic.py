"""Multi-step arithmetic for a tiny language model, answered directly or through a scratchpad.

The task (`ChainSum`): add a chain of single digits modulo 10, ``3+5+7+2`` -> ``7``. A problem of
*size* n has n terms; its answer depends on every one of them, and changing any single term changes
it. The model reads the problem and writes a completion, in one of two formats (Nye et al. 2021):

- direct: the answer and a newline, ``"3+5+7+2     =7\\n"``;
- scratchpad: the running sums, one per term, then a newline; the last one is the answer,
  ``"3+5+7+2     =3,8,5,7\\n"``.

Problems are written in a fixed-width field: the terms from the first character, then spaces, then
``=`` at the same position for every size (``2 * max_terms + 1`` characters in all, with at least
one space). Both formats read the same prompt. In the scratchpad, the k-th running sum is written at
a fixed distance after the k-th term, so every step is one lookup (the k-th term, the previous sum)
and one addition of two digits; the direct answer must combine all n terms at a single position.

Text is read one character per token (`CharTokenizer`, a 15-symbol `ALPHABET`); the examples here
have ``max_terms=6``. Training batches mix sizes ``min_terms .. max_terms`` uniformly; the loss is
taken on the completion only (the terms are random digits that no model can predict), and padding
after the newline is masked too.

`solve` completes a batch of problems of one size (greedy or sampled, one batched call per new
character, through `course_lib.decoding`); `read_answers` reads the final answer from each
completion (None where it is malformed); `accuracy_by_size` is what the zoo's cards record.

Left out: multi-digit numbers and carries (the mod-10 chain keeps each step to one digit), other
operations, sizes beyond ``max_terms`` (the learned position table has no rows for them), and
scratchpads the model writes in its own words.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import torch

from course_lib.decoding import greedy_decode, sample
from course_lib.tokenization import Tokenizer
from course_lib.validation import boolean, int_in_range, integer_tensor, nonnegative_int, positive_int, string

__all__ = ["ALPHABET", "IGNORE_INDEX", "CharTokenizer", "ChainSum", "running_sums", "solve", "read_answers",
           "accuracy_by_size"]

#: The characters of the task: digits, "+", "=", the scratchpad's ",", the field's space, the newline.
ALPHABET = "0123456789+=, \n"
#: The target id that `torch.nn.functional.cross_entropy` skips (prompt and padding positions).
IGNORE_INDEX = -100


class CharTokenizer(Tokenizer):
    """One token per character of a fixed alphabet: character i of ``alphabet`` has id i."""

    def __init__(self, alphabet: str = ALPHABET) -> None:
        alphabet = string(alphabet, "alphabet", nonempty=True)
        if len(set(alphabet)) != len(alphabet):
            raise ValueError(f"alphabet must not repeat a character, got {alphabet!r}")
        self.alphabet = alphabet
        self._ids = {c: i for i, c in enumerate(alphabet)}

    @property
    def vocab_size(self) -> int:
        """Number of token ids: the alphabet's length."""
        return len(self.alphabet)

    def encode(self, text: str) -> list[int]:
        """The id of every character; a character outside the alphabet raises ValueError."""
        text = string(text, "text")
        unknown = sorted(set(text) - set(self._ids))
        if unknown:
            raise ValueError(f"text must use only the alphabet {self.alphabet!r}, got {unknown} in {text!r}")
        return [self._ids[c] for c in text]

    def decode(self, ids: Iterable[int]) -> str:
        """The characters of ``ids`` (ints or a 1-D tensor); an id outside the alphabet raises ValueError."""
        ids = ids.tolist() if isinstance(ids, torch.Tensor) else list(ids)
        bad = [i for i in ids if not isinstance(i, int) or not 0 <= i < len(self.alphabet)]
        if bad:
            raise ValueError(f"ids must be ints in [0, {len(self.alphabet)}), got {bad[:5]}")
        return "".join(self.alphabet[i] for i in ids)


def running_sums(terms: Sequence[int]) -> list[int]:
    """The running sums of the terms modulo 10: ``[3, 5, 7, 2] -> [3, 8, 5, 7]``; the last is the answer."""
    sums, total = [], 0
    for i, term in enumerate(terms):
        total = (total + int_in_range(term, f"terms[{i}]", 0, 9)) % 10
        sums.append(total)
    return sums


@dataclass(frozen=True)
class ChainSum:
    """Chains of ``min_terms .. max_terms`` single digits added modulo 10, answered directly or with a scratchpad."""

    scratchpad: bool = False
    min_terms: int = 2
    max_terms: int = 6

    def __post_init__(self) -> None:
        boolean(self.scratchpad, "scratchpad")
        object.__setattr__(self, "min_terms", int_in_range(self.min_terms, "min_terms", 1, 20))
        object.__setattr__(self, "max_terms", int_in_range(self.max_terms, "max_terms", self.min_terms, 20))

    @property
    def tokenizer(self) -> CharTokenizer:
        """The character tokenizer of `ALPHABET`."""
        return CharTokenizer(ALPHABET)

    @property
    def prompt_length(self) -> int:
        """Characters of every prompt: the widest chain, one space, then "="."""
        return 2 * self.max_terms + 1

    def completion_length(self, size: int) -> int:
        """Characters of a completion of a size-``size`` problem, its newline included."""
        return 2 * self._size(size) if self.scratchpad else 2

    @property
    def sequence_length(self) -> int:
        """Characters of the longest problem with its completion (the model reads one fewer)."""
        return self.prompt_length + self.completion_length(self.max_terms)

    def _size(self, size: int) -> int:
        return int_in_range(size, "size", self.min_terms, self.max_terms)

    def prompt(self, terms: Sequence[int]) -> str:
        """The problem in its fixed-width field: ``[3, 5, 7, 2] -> "3+5+7+2     ="`` (for max_terms 6)."""
        self._size(len(terms))
        running_sums(terms)  # checks the digits
        return "+".join(str(int(t)) for t in terms).ljust(self.prompt_length - 1) + "="

    def completion(self, terms: Sequence[int]) -> str:
        """What the model should write: ``"7\\n"`` (direct) or ``"3,8,5,7\\n"`` (scratchpad)."""
        self._size(len(terms))
        sums = running_sums(terms)
        return (",".join(map(str, sums)) if self.scratchpad else str(sums[-1])) + "\n"

    def sample_terms(self, n_problems: int, size: int, generator: torch.Generator) -> torch.Tensor:
        """``n_problems`` problems of ``size`` terms, uniform digits: a LongTensor (n_problems, size)."""
        n_problems = positive_int(n_problems, "n_problems")
        if not isinstance(generator, torch.Generator):
            raise TypeError(f"generator must be a torch.Generator, got {type(generator).__name__}")
        return torch.randint(0, 10, (n_problems, self._size(size)), generator=generator)  # (N, n)

    def batch(self, batch_size: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """A training batch of mixed sizes: inputs (B, L - 1) and targets (B, L - 1), L = `sequence_length`.

        Each row is prompt + completion, padded with newlines; targets are the next characters of
        the completion and `IGNORE_INDEX` elsewhere (the prompt's characters and the padding).
        """
        batch_size = positive_int(batch_size, "batch_size")
        sizes = torch.randint(self.min_terms, self.max_terms + 1, (batch_size,), generator=generator)  # (B,)
        digits = torch.randint(0, 10, (batch_size, self.max_terms), generator=generator)  # (B, max_terms)
        tokenizer, P = self.tokenizer, self.prompt_length
        rows = torch.full((batch_size, self.sequence_length), ALPHABET.index("\n"))  # (B, L)
        targets = torch.full((batch_size, self.sequence_length), IGNORE_INDEX)  # (B, L)
        for r, (n, terms) in enumerate(zip(sizes.tolist(), digits.tolist(), strict=True)):
            ids = tokenizer.encode(self.prompt(terms[:n]) + self.completion(terms[:n]))
            rows[r, :len(ids)] = torch.tensor(ids)
            targets[r, P - 1:len(ids) - 1] = rows[r, P:len(ids)]  # position t predicts character t + 1
        return rows[:, :-1], targets[:, :-1]


def solve(model: torch.nn.Module, task: ChainSum, terms: torch.Tensor, temperature: float = 0.0,
          generator: torch.Generator | None = None) -> list[str]:
    """The model's completions of a batch of problems of one size, ``terms`` (N, n): one str per problem.

    Greedy at ``temperature`` 0, sampled otherwise (``generator`` makes the draws reproducible);
    exactly `ChainSum.completion_length` characters are generated for every problem, so a completion
    the model ends early or late shows as malformed to `read_answers`.
    """
    if not isinstance(task, ChainSum):
        raise TypeError(f"task must be a ChainSum, got {type(task).__name__}")
    terms = integer_tensor(terms, "terms", ndim=2)
    size = task._size(terms.shape[1])
    tokenizer = task.tokenizer
    prompts = torch.tensor([tokenizer.encode(task.prompt(row)) for row in terms.tolist()])  # (N, P)
    prompts = prompts.to(next(model.parameters()).device)
    new = task.completion_length(size)
    if temperature == 0:
        ids = greedy_decode(model.as_next_logits(), prompts, new)  # (N, P + new)
    else:
        ids = sample(model.as_next_logits(), prompts, new, temperature, generator=generator)  # (N, P + new)
    return [tokenizer.decode(row) for row in ids[:, task.prompt_length:].tolist()]


def read_answers(task: ChainSum, completions: Sequence[str], size: int) -> list[int | None]:
    """The final answer of each completion of a size-``size`` problem, or None if it is malformed.

    A completion is well formed when it has the task's format for that size: one digit and a
    newline (direct), or ``size`` digits separated by commas and a newline (scratchpad). Only the
    final answer is read: a scratchpad with a wrong intermediate sum but the right last one counts.
    """
    size = task._size(size)
    answers: list[int | None] = []
    for text in completions:
        body, newline, rest = string(text, "completion").partition("\n")
        parts = body.split(",")
        expected = size if task.scratchpad else 1
        ok = newline and not rest and len(parts) == expected and all(len(p) == 1 and p.isdigit() for p in parts)
        answers.append(int(parts[-1]) if ok else None)
    return answers


def accuracy_by_size(model: torch.nn.Module, task: ChainSum, n_problems: int = 300,
                     seed: int = 1000) -> dict[int, float]:
    """Greedy accuracy of the final answer for every size: ``n_problems`` seeded problems each.

    One generator (seeded with ``seed``) draws the problems of every size in turn, smallest first.
    """
    n_problems = positive_int(n_problems, "n_problems")
    generator = torch.Generator().manual_seed(nonnegative_int(seed, "seed"))
    accuracy = {}
    for size in range(task.min_terms, task.max_terms + 1):
        terms = task.sample_terms(n_problems, size, generator)  # (N, size)
        truth = (terms.sum(dim=1) % 10).tolist()  # (N,)
        got = read_answers(task, solve(model, task, terms), size)
        accuracy[size] = sum(g == t for g, t in zip(got, truth, strict=True)) / n_problems
    return accuracy
