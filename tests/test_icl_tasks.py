"""Tests for course_lib.icl_tasks: the threshold-task prompts and the ideal (Bayes) learner, against direct loops."""

from __future__ import annotations

import itertools

import pytest
import torch

from course_lib.icl_tasks import (
    FunctionPrior,
    ThresholdTasks,
    accuracy_by_k,
    ideal_accuracy,
    label_logits,
    posterior_yes,
)


def direct_table(w: list[float], n_bits: int) -> list[int]:
    """f_w(x) for every input token, by a plain loop over the bits."""
    table = []
    for token in range(2 ** n_bits):
        x = [1.0 if (token >> j) & 1 else -1.0 for j in range(n_bits)]
        table.append(int(sum(wj * xj for wj, xj in zip(w, x)) > 0))
    return table


def test_tokens_and_inputs():
    tasks = ThresholdTasks(n_bits=3)
    assert (tasks.no, tasks.yes, tasks.bos, tasks.vocab_size) == (8, 9, 10, 27)
    assert tasks.inputs()[5].tolist() == [1.0, -1.0, 1.0]  # 5 = 0b101: bits 0 and 2 set
    demos = [tasks.demo_token(x, y) for x in range(8) for y in (0, 1)]
    assert sorted(demos) == list(range(11, 27))  # every (input, label) has its own token after BOS
    assert tasks.render(torch.tensor([10, 6, tasks.demo_token(6, 1), 1])) == "BOS 011 011:yes 100"


def test_truth_tables_and_ids_match_a_direct_loop():
    tasks = ThresholdTasks(n_bits=4)
    w = torch.randn(20, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    tables = tasks.truth_tables(w)
    for row, table in zip(w.tolist(), tables.tolist()):
        assert table == direct_table(row, 4)
    ids = tasks.table_ids(tables).tolist()
    assert ids == [sum(bit << x for x, bit in enumerate(table)) for table in tables.tolist()]
    assert tasks.is_held_out(tables).tolist() == [i % tasks.held_out_modulus == 0 for i in ids]


@pytest.mark.parametrize("held_out", [False, True])
def test_sample_tasks_keeps_one_side_and_is_seeded(held_out):
    tasks = ThresholdTasks()
    tables = tasks.sample_tasks(300, torch.Generator().manual_seed(3), held_out=held_out)
    assert tables.shape == (300, 32)
    assert bool((tasks.is_held_out(tables) == held_out).all())
    assert torch.equal(tables, tasks.sample_tasks(300, torch.Generator().manual_seed(3), held_out=held_out))


def test_sequences_layout_and_label_modes():
    tasks = ThresholdTasks()
    tables = tasks.sample_tasks(200, torch.Generator().manual_seed(1))
    runs = {mode: tasks.sequences(tables, 10, torch.Generator().manual_seed(2), labels=mode)
            for mode in ("gold", "flipped", "random")}
    ids, truth = runs["gold"]
    assert ids.shape == (200, 21) and truth.shape == (200, 10)
    assert bool((ids[:, 0] == tasks.bos).all())
    x = ids[:, 1::2]
    assert torch.equal(truth, tables.gather(1, x))
    assert torch.equal(ids[:, 2::2], tasks.demo_token(x, truth))
    flipped, flipped_truth = runs["flipped"]
    assert torch.equal(flipped[:, 1::2], x) and torch.equal(flipped_truth, truth)
    assert torch.equal(flipped[:, 2::2], tasks.demo_token(x, 1 - truth))
    shown = (runs["random"][0][:, 2::2] - tasks.demo_token(0, 0)) % 2
    agreement = (shown == truth).double().mean().item()
    assert 0.45 < agreement < 0.55  # a coin flip agrees with the task half of the time


def direct_posterior(tables: list[list[int]], probs: list[float], demos: list[tuple[int, int]], query: int) -> float:
    consistent = [(t, p) for t, p in zip(tables, probs) if all(t[x] == y for x, y in demos)]
    total = sum(p for _, p in consistent)
    return 0.5 if total == 0 else sum(p for t, p in consistent if t[query] == 1) / total


def test_posterior_matches_a_direct_computation_on_a_hand_made_prior():
    tables = [[0, 0, 1, 1], [0, 1, 0, 1], [1, 1, 0, 0], [1, 0, 1, 0], [0, 1, 1, 1]]
    probs = [0.1, 0.2, 0.3, 0.15, 0.25]
    prior = FunctionPrior(torch.tensor(tables), torch.tensor(probs, dtype=torch.float64))
    demo = 7  # the token of demonstration 0:0 for 4 inputs; x:y is demo + 2x + y
    pairs = [(1, 1), (2, 0), (3, 1), (0, 0)]  # consistent with table 1 only after the first two
    ids = torch.tensor([[6] + [v for x, y in pairs for v in (x, demo + 2 * x + y)]])
    got = posterior_yes(prior, ids)[0].tolist()
    expected = [direct_posterior(tables, probs, pairs[:i], pairs[i][0]) for i in range(len(pairs))]
    assert got == pytest.approx(expected, abs=1e-12)
    impossible = torch.tensor([[6, 0, demo + 1, 0, demo, 2, demo + 4]])  # x = 0 labelled both ways
    assert posterior_yes(prior, impossible)[0, 2].item() == 0.5  # no table agrees with both


def test_posterior_starts_at_the_prior_and_ignores_the_order():
    tasks = ThresholdTasks()
    prior = FunctionPrior.estimate(tasks, 5000, torch.Generator().manual_seed(0))
    assert prior.probs.sum().item() == pytest.approx(1.0, abs=1e-12)
    tables = tasks.sample_tasks(4, torch.Generator().manual_seed(1))
    ids, _ = tasks.sequences(tables, 6, torch.Generator().manual_seed(2))
    assert torch.allclose(posterior_yes(prior, ids)[:, 0], torch.full((4,), 0.5, dtype=torch.float64), atol=1e-12)
    pairs = ids[:, 1:-2].reshape(4, 5, 2)  # five demonstrations; the sixth input is the query
    for order in itertools.islice(itertools.permutations(range(5)), 0, 120, 17):
        shuffled = torch.cat([ids[:, :1], pairs[:, list(order)].flatten(1), ids[:, -2:]], dim=1)
        assert torch.allclose(posterior_yes(prior, shuffled)[:, -1], posterior_yes(prior, ids)[:, -1], atol=1e-12)


def test_ideal_accuracy_counts_a_tie_as_half():
    tables = torch.tensor([[0, 1, 1, 0], [1, 0, 0, 1]])  # two tasks, each the other's inverse
    prior = FunctionPrior(tables, torch.tensor([0.5, 0.5], dtype=torch.float64))
    ids = torch.tensor([[6, 1, 7 + 2 * 1 + 1, 2], [6, 1, 7 + 2 * 1 + 0, 2]])  # 1:yes then query 2; 1:no then query 2
    ids = torch.cat([ids, torch.tensor([[7 + 4], [7 + 4]])], dim=1)  # the query's answer token (never read)
    truth = torch.tensor([[1, 1], [0, 0]])  # task 0 then task 1
    # no demonstration: a tie (1/2); after one, the task is known and both prompts are answered right
    assert ideal_accuracy(prior, ids, truth).tolist() == [0.5, 1.0]
    with pytest.raises(ValueError, match="truth must have shape"):
        ideal_accuracy(prior, ids, truth[:, :1])


class AlwaysYes(torch.nn.Module):
    def __init__(self, tasks: ThresholdTasks) -> None:
        super().__init__()
        self.tasks = tasks

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        logits = torch.zeros(*ids.shape, self.tasks.vocab_size)
        logits[..., self.tasks.yes] = 1.0
        return logits


def test_label_logits_and_accuracy_read_the_query_positions():
    tasks = ThresholdTasks(n_bits=3)
    tables = tasks.sample_tasks(50, torch.Generator().manual_seed(0))
    model = AlwaysYes(tasks)
    ids, truth = tasks.sequences(tables, 5, torch.Generator().manual_seed(1))
    assert label_logits(model, tasks, ids).shape == (50, 5, 2)
    accuracy = accuracy_by_k(model, tasks, tables, 5, torch.Generator().manual_seed(1))
    assert torch.allclose(accuracy, truth.double().mean(0))


@pytest.mark.parametrize("call, error, match", [
    (lambda: ThresholdTasks(n_bits=0), ValueError, "n_bits"),
    (lambda: ThresholdTasks(held_out_modulus=1), ValueError, "held_out_modulus"),
    (lambda: ThresholdTasks().truth_tables(torch.zeros(3, 4)), ValueError, "w must"),
    (lambda: ThresholdTasks().sequences(torch.zeros(2, 31, dtype=torch.long), 3, torch.Generator()), ValueError,
     "tables"),
    (lambda: ThresholdTasks().sequences(torch.zeros(2, 32, dtype=torch.long), 3, torch.Generator(), "noisy"),
     ValueError, "labels"),
    (lambda: ThresholdTasks().sample_tasks(0, torch.Generator()), ValueError, "n must"),
    (lambda: ThresholdTasks().sample_tasks(3, 0), TypeError, "generator"),
    (lambda: posterior_yes("prior", torch.zeros(1, 3, dtype=torch.long)), TypeError, "prior"),
    (lambda: posterior_yes(FunctionPrior(torch.zeros(1, 4, dtype=torch.long), torch.ones(1, dtype=torch.float64)),
                           torch.zeros(1, 4, dtype=torch.long)), ValueError, "1 \\+ 2m"),
    (lambda: posterior_yes(FunctionPrior(torch.zeros(1, 4, dtype=torch.long), torch.ones(1, dtype=torch.float64)),
                           torch.tensor([[6, 1, 7]])), ValueError, "demonstrations of the same inputs"),
])
def test_bad_input_is_named(call, error, match):
    with pytest.raises(error, match=match):
        call()
