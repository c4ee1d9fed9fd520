"""In-context learning tasks: prompts of demonstrations of a hidden Boolean function, and the ideal learner.

A *task* is a linear threshold function of ``n_bits`` bits, ``f_w(x) = [w . x > 0]`` with ``x`` in
{-1, +1}^n and ``w`` drawn from N(0, I): Garg et al. (2022)'s random linear functions, made discrete
so that a task is a finite object, its truth table over the 2^n inputs (Xie et al. 2022's latent
"concept" that a prompt must reveal). A *prompt* shows demonstrations, then a query:

    BOS x_1 x_1:y_1 x_2 x_2:y_2 ... x_k x_k:y_k x_q   ->   y_q

Tokens: input ``x`` is the integer whose bit ``j`` is 1 where ``x_j = +1`` (0 .. 2^n - 1); the
answers are `ThresholdTasks.no` (2^n, f = 0) and `ThresholdTasks.yes` (2^n + 1); `ThresholdTasks.bos`
(2^n + 2) starts every sequence; a demonstration ``x:y`` is one token (`ThresholdTasks.demo_token`),
the way a tokenizer merges a frequent string into one id. Each input is shown first as a query and
then answered, so one sequence asks the model for the answer after 0, 1, ..., m - 1 demonstrations.
Why one token per demonstration: with the label as a token of its own, a model must combine two
attention heads (one that copies each input onto its label's position, one that finds the labels
of matching inputs: Olsson et al. 2022's induction heads) before it can use a demonstration, and a
2-layer model of width 64 stayed at chance for 1,500 steps (64 sequences each) in that format (measured while building
this module); with the pair in one token, one head that attends to demonstrations of similar inputs
suffices. Every input is drawn uniformly, so the inputs carry nothing about the task: only the
labels of the demonstrations do. The same input may occur twice in a prompt.

A model trained on such sequences with a fresh ``w`` for each one cannot memorise an answer per
input (over all tasks, every input is "yes" half of the time): to beat chance it must read the
task off its context. Held-out tasks: `ThresholdTasks.is_held_out` sets aside every truth table
whose integer (bit ``x`` of it is ``f(x)``) is a multiple of ``held_out_modulus``; training draws
never contain them, so accuracy on them measures learning in context, not recall of a trained task.

`FunctionPrior` is the prior over truth tables that ``w ~ N(0, I)`` induces, estimated by sampling
``w``; `posterior_yes` is the ideal (Bayes-optimal) learner: the prior mass of the tables that
agree with every demonstration and say "yes" at the query, over the mass of those that agree. With
no demonstration it returns the prior, 1/2 for every input (``w`` and ``-w`` are equally likely);
it is the same for every order of the demonstrations; with demonstrations no table explains (e.g.
random labels) it returns 1/2.

Left out: real-valued tasks (Garg et al.'s regression), noisy labels in training, tasks of several
classes, prompts whose inputs reveal the task (a real language model's main source of task
information, Min et al. 2022), and an exact prior (the estimate misses tables of tiny mass).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from course_lib.validation import int_in_range, integer_tensor, one_of, positive_int, type_name

__all__ = ["LABEL_MODES", "ThresholdTasks", "FunctionPrior", "posterior_yes", "ideal_accuracy", "label_logits",
           "accuracy_by_k"]

#: How `ThresholdTasks.sequences` labels the demonstrations: by the task ("gold"), by a coin flip
#: ("random", Min et al. 2022's random labels), or by the task inverted ("flipped").
LABEL_MODES = ("gold", "random", "flipped")


@dataclass(frozen=True)
class ThresholdTasks:
    """The family of linear threshold tasks on ``n_bits`` bits, its tokens and its prompts."""

    n_bits: int = 5
    held_out_modulus: int = 5

    def __post_init__(self) -> None:
        object.__setattr__(self, "n_bits", int_in_range(self.n_bits, "n_bits", 1, 10))
        object.__setattr__(self, "held_out_modulus", int_in_range(self.held_out_modulus, "held_out_modulus", 2))

    @property
    def n_inputs(self) -> int:
        """2^n_bits: the number of distinct inputs, and the width of a truth table."""
        return 2 ** self.n_bits

    @property
    def no(self) -> int:
        """The token of the label 0."""
        return self.n_inputs

    @property
    def yes(self) -> int:
        """The token of the label 1."""
        return self.n_inputs + 1

    @property
    def bos(self) -> int:
        """The token that starts every sequence."""
        return self.n_inputs + 2

    @property
    def vocab_size(self) -> int:
        """Inputs, the two answers, BOS and one demonstration token per (input, label)."""
        return 3 * self.n_inputs + 3

    def demo_token(self, x: torch.Tensor | int, y: torch.Tensor | int) -> torch.Tensor | int:
        """The token of demonstration ``x:y`` (input ``x``, label ``y`` in {0, 1}): ``2^n + 3 + 2x + y``."""
        return self.n_inputs + 3 + 2 * x + y

    def render(self, ids: torch.Tensor) -> str:
        """One sequence (T,) as text: inputs as bit strings (bit 0 first), ``x:yes``/``x:no`` for demonstrations."""
        words = []
        for token in integer_tensor(ids, "ids", ndim=1).tolist():
            if token < self.n_inputs:
                words.append(self._bits(token))
            elif token == self.bos:
                words.append("BOS")
            elif token in (self.no, self.yes):
                words.append("no" if token == self.no else "yes")
            elif token < self.vocab_size:
                x, y = divmod(token - self.n_inputs - 3, 2)
                words.append(f"{self._bits(x)}:{'yes' if y else 'no'}")
            else:
                raise ValueError(f"ids must be tokens in [0, {self.vocab_size}), got {token}")
        return " ".join(words)

    def _bits(self, token: int) -> str:
        return "".join("1" if (token >> j) & 1 else "0" for j in range(self.n_bits))

    def inputs(self) -> torch.Tensor:
        """Every input as a row of +-1 (bit j of the token is +1), shape (2^n, n), float64."""
        tokens = torch.arange(self.n_inputs)  # (N,)
        bits = (tokens[:, None] >> torch.arange(self.n_bits)) & 1  # (N, n)
        return bits.to(torch.float64) * 2 - 1  # (N, n)

    def truth_tables(self, w: torch.Tensor) -> torch.Tensor:
        """The truth table of each row of ``w`` (B, n): ``[w . x > 0]`` for every input, (B, 2^n) long."""
        if not isinstance(w, torch.Tensor) or w.ndim != 2 or w.shape[1] != self.n_bits:
            raise ValueError(f"w must be a tensor of shape (B, {self.n_bits}), got {_shape(w)}")
        return (w.to(torch.float64) @ self.inputs().T > 0).long()  # (B, N)

    def table_ids(self, tables: torch.Tensor) -> torch.Tensor:
        """Each truth table as one integer, bit x of it being f(x), shape (B,)."""
        tables = self._check_tables(tables)
        return (tables << torch.arange(self.n_inputs)).sum(-1)  # (B,)

    def is_held_out(self, tables: torch.Tensor) -> torch.Tensor:
        """Whether each truth table (B, 2^n) is a held-out task (its integer is a multiple of the modulus), (B,)."""
        return self.table_ids(tables) % self.held_out_modulus == 0  # (B,)

    def sample_tasks(self, n: int, generator: torch.Generator, held_out: bool = False) -> torch.Tensor:
        """``n`` truth tables (n, 2^n), each from a fresh ``w ~ N(0, I)``: training tasks or held-out ones.

        Draws are rejected until ``n`` of the wanted kind are found, in the order they were drawn.
        """
        n = positive_int(n, "n")
        _check_generator(generator)
        kept: list[torch.Tensor] = []
        found = 0
        while found < n:
            tables = self.truth_tables(torch.randn(2 * n, self.n_bits, generator=generator,
                                                   dtype=torch.float64))  # (2n, N)
            tables = tables[self.is_held_out(tables) == bool(held_out)]
            kept.append(tables)
            found += len(tables)
        return torch.cat(kept)[:n]  # (n, N)

    def sequences(self, tables: torch.Tensor, n_pairs: int, generator: torch.Generator,
                  labels: str = "gold") -> tuple[torch.Tensor, torch.Tensor]:
        """One prompt per task: ``BOS x_1 x_1:y_1 ... x_m x_m:y_m`` (B, 1 + 2m) and the true labels f(x_i) (B, m).

        Inputs are drawn uniformly (with replacement); the shown labels ``y_i`` follow ``labels``
        (`LABEL_MODES`), the returned true labels are always the task's. Position ``2i + 1`` holds
        ``x_{i+1}``: the model's output there answers the query ``x_{i+1}`` after ``i`` demonstrations.
        """
        tables = self._check_tables(tables)
        n_pairs = positive_int(n_pairs, "n_pairs")
        _check_generator(generator)
        one_of(labels, "labels", LABEL_MODES)
        x = torch.randint(self.n_inputs, (len(tables), n_pairs), generator=generator)  # (B, m)
        truth = tables.gather(1, x)  # (B, m)
        shown = {"gold": truth, "flipped": 1 - truth}.get(labels)
        if shown is None:
            shown = torch.randint(2, truth.shape, generator=generator)  # (B, m)
        ids = torch.full((len(tables), 1 + 2 * n_pairs), self.bos, dtype=torch.long)  # (B, 1 + 2m)
        ids[:, 1::2] = x
        ids[:, 2::2] = self.demo_token(x, shown)
        return ids, truth

    def _check_tables(self, tables: object) -> torch.Tensor:
        tables = integer_tensor(tables, "tables", ndim=2)
        if tables.shape[1] != self.n_inputs or not bool(((tables == 0) | (tables == 1)).all()):
            raise ValueError(f"tables must be 0/1 truth tables of shape (B, {self.n_inputs}), got shape "
                             f"{tuple(tables.shape)}")
        return tables.long()


@dataclass(frozen=True, eq=False)
class FunctionPrior:
    """The prior over truth tables: distinct tables (F, 2^n) and their probabilities (F,), float64."""

    tables: torch.Tensor
    probs: torch.Tensor

    @classmethod
    def estimate(cls, tasks: ThresholdTasks, n_samples: int, generator: torch.Generator) -> FunctionPrior:
        """Sample ``n_samples`` weight vectors ``w ~ N(0, I)``, add their negatives, and count the truth tables."""
        n_samples = positive_int(n_samples, "n_samples")
        _check_generator(generator)
        w = torch.randn(n_samples, tasks.n_bits, generator=generator, dtype=torch.float64)  # (S, n)
        w = torch.cat([w, -w])  # (2S, n) antithetic pairs: the prior is exactly symmetric, as N(0, I) is
        tables, counts = torch.unique(tasks.truth_tables(w), dim=0, return_counts=True)  # (F, N), (F,)
        return cls(tables, counts.to(torch.float64) / len(w))


def posterior_yes(prior: FunctionPrior, ids: torch.Tensor) -> torch.Tensor:
    """The ideal learner's P(y = 1) at every query of sequences ``ids`` (B, 1 + 2m), shape (B, m).

    Column ``i`` uses the ``i`` demonstrations before query ``x_{i+1}``: the prior mass of the tables
    that agree with all of them and say 1 at the query, over the mass of those that agree. Where no
    table agrees (impossible labels), it is 1/2.
    """
    if not isinstance(prior, FunctionPrior):
        raise TypeError(f"prior must be a FunctionPrior, got {type_name(prior)}")
    ids = integer_tensor(ids, "ids", ndim=2)
    if ids.shape[1] < 3 or ids.shape[1] % 2 == 0:
        raise ValueError(f"ids must have shape (B, 1 + 2m) with m >= 1, got {tuple(ids.shape)}")
    n_inputs = prior.tables.shape[1]
    x, demos = ids[:, 1::2], ids[:, 2::2] - n_inputs - 3  # (B, m) queries, (B, m) 2x + y of each demonstration
    if not bool(((x >= 0) & (x < n_inputs) & (demos >= 0) & (demos // 2 == x)).all()):
        raise ValueError(f"ids must alternate inputs in [0, {n_inputs}) and demonstrations of the same inputs "
                         f"after BOS, got {ids[0].tolist()}")
    y = demos % 2  # (B, m) the shown labels
    says_yes = prior.tables.T.bool()  # (N, F) row x: which tables answer 1 to input x
    alive = torch.ones(len(ids), len(prior.probs), dtype=torch.bool)  # (B, F) tables consistent so far
    columns = []
    for i in range(x.shape[1]):
        yes_here = says_yes[x[:, i]]  # (B, F) each table's answer to query x_{i+1}
        total = alive.to(prior.probs.dtype) @ prior.probs  # (B,) prior mass still consistent
        yes = (alive & yes_here).to(prior.probs.dtype) @ prior.probs  # (B,) the part of it that says 1
        columns.append(torch.where(total > 0, yes / total.clamp_min(1e-300), torch.full_like(total, 0.5)))
        alive &= yes_here == y[:, i, None].bool()  # (B, F) keep the tables that agree with the demonstration
    return torch.stack(columns, dim=1)  # (B, m)


def ideal_accuracy(prior: FunctionPrior, ids: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    """The ideal learner's expected accuracy after k = 0 .. m - 1 demonstrations, shape (m,).

    It answers 1 where `posterior_yes` is above 1/2 and 0 below; where the posterior is 1/2 (to
    within 1e-9: a tie, as with no demonstration) it flips a fair coin, so that answer counts 1/2.
    Deciding ties by float rounding instead would make the k = 0 accuracy depend on the CPU.
    """
    p = posterior_yes(prior, ids)  # (B, m)
    truth = integer_tensor(truth, "truth", ndim=2)
    if truth.shape != p.shape:
        raise ValueError(f"truth must have shape {tuple(p.shape)}, one label per query, got {tuple(truth.shape)}")
    right = ((p > 0.5).long() == truth).to(torch.float64)  # (B, m)
    return torch.where((p - 0.5).abs() < 1e-9, 0.5, right).mean(0)  # (m,)


def label_logits(model: torch.nn.Module, tasks: ThresholdTasks, ids: torch.Tensor) -> torch.Tensor:
    """The model's logits of (no, yes) at every query position of ``ids`` (B, 1 + 2m), shape (B, m, 2).

    One forward pass answers every query: position ``2i + 1`` (input ``x_{i+1}``) sees ``i``
    demonstrations. Computed without gradients.
    """
    ids = integer_tensor(ids, "ids", ndim=2)
    with torch.no_grad():
        logits = model(ids[:, :-1])  # (B, 2m, V)
    return logits[:, 1::2, tasks.no:tasks.yes + 1].to(torch.float64)  # (B, m, 2)


def accuracy_by_k(model: torch.nn.Module, tasks: ThresholdTasks, tables: torch.Tensor, n_pairs: int,
                  generator: torch.Generator, labels: str = "gold") -> torch.Tensor:
    """Accuracy against the true labels after k = 0 .. n_pairs - 1 demonstrations, shape (n_pairs,).

    One prompt per task in ``tables``, labelled by ``labels`` (`LABEL_MODES`); the prediction is the
    label of the larger logit, and it is scored against the task's own label of the query.
    """
    ids, truth = tasks.sequences(tables, n_pairs, generator, labels)  # (B, 1 + 2m), (B, m)
    predictions = label_logits(model, tasks, ids).argmax(-1)  # (B, m)
    return (predictions == truth).to(torch.float64).mean(0)  # (m,)


def _check_generator(generator: object) -> None:
    if not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator, got {type_name(generator)}")


def _shape(value: object) -> str:
    return f"shape {tuple(value.shape)}" if isinstance(value, torch.Tensor) else type_name(value)

