"""Tests for course_lib.seq2seq: the reversal task, the GRU encoder-decoders and additive attention."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from course_lib.datasets import load_world
from course_lib.seq2seq import (
    BOS,
    EOS,
    PAD,
    AttentionGRUDecoder,
    BahdanauAttention,
    Batch,
    Decoded,
    GRUDecoder,
    GRUEncoder,
    ReversalTask,
    Seq2Seq,
    Seq2SeqConfig,
    accuracy_by_length,
    exact_match,
    fit,
)

TASK = ReversalTask.from_world(load_world())


def small_model(attention: bool, seed: int = 0) -> Seq2Seq:
    torch.manual_seed(seed)
    return Seq2Seq(Seq2SeqConfig(TASK.vocab_size, d_embed=8, d_hidden=16, attention=attention)).eval()


# --- the task --------------------------------------------------------------------------------------


def test_task_vocabulary_is_the_worlds_entity_words():
    world = load_world()
    assert len(TASK.words) == 24 + 8 + 8 + 6 + 6 == 52 and TASK.vocab_size == 55
    assert set(TASK.words) == (set(world.names) | set(world.cities) | set(world.jobs) | set(world.pets)
                               | set(world.colours))
    words = [world.names[0], world.cities[0], "teacher"]
    assert TASK.decode(TASK.encode(words)) == words
    assert TASK.decode([BOS, *TASK.encode(words), EOS, *TASK.encode(["cat"])]) == words  # stops at EOS


def test_batch_holds_the_reversal_between_bos_and_eos():
    sources = [TASK.encode(["Rozi", "cat", "red"]), TASK.encode(["teacher"])]
    batch = TASK.batch(sources)
    a, b, c, t = sources[0] + sources[1]
    assert batch.src.tolist() == [[a, b, c], [t, PAD, PAD]]
    assert batch.src_lengths.tolist() == [3, 1]
    assert batch.tgt_in.tolist() == [[BOS, c, b, a], [BOS, t, PAD, PAD]]
    assert batch.tgt_out.tolist() == [[c, b, a, EOS], [t, EOS, PAD, PAD]]


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 10_000), st.integers(1, 6), st.integers(0, 6))
def test_sampled_batches_are_reversals_of_their_sources(seed, low, extra):
    batch = TASK.sample(7, low, low + extra, seed=seed)
    assert batch.src.shape[0] == 7 and batch.tgt_in.shape == batch.tgt_out.shape == (7, batch.src.shape[1] + 1)
    for row in range(7):
        n = int(batch.src_lengths[row])
        assert low <= n <= low + extra
        source = batch.src[row, :n].tolist()
        assert all(3 <= i < TASK.vocab_size for i in source)
        assert batch.src[row, n:].eq(PAD).all()
        assert batch.tgt_out[row].tolist() == source[::-1] + [EOS] + [PAD] * (batch.src.shape[1] - n)
        assert batch.tgt_in[row].tolist() == [BOS] + source[::-1] + [PAD] * (batch.src.shape[1] - n)


def test_sampling_is_seeded():
    first, again, other = (TASK.sample(5, 2, 9, seed=s) for s in (3, 3, 4))
    assert torch.equal(first.src, again.src) and not torch.equal(first.src, other.src)
    generator = torch.Generator().manual_seed(3)
    assert torch.equal(TASK.sample(5, 2, 9, seed=generator).src, first.src)


# --- the models ------------------------------------------------------------------------------------


def test_encoder_final_state_ignores_padding():
    torch.manual_seed(0)
    encoder = GRUEncoder(TASK.vocab_size, 8, 16)
    batch = TASK.sample(6, 1, 7, seed=0)
    encoded = encoder(batch.src, batch.src_lengths)
    assert encoded.states.shape == (6, batch.src.shape[1], 16) and encoded.final.shape == (6, 16)
    assert torch.equal(encoded.mask, batch.src != PAD)
    for row in range(6):
        n = int(batch.src_lengths[row])
        alone = encoder(batch.src[row:row + 1, :n], batch.src_lengths[row:row + 1])
        torch.testing.assert_close(encoded.final[row], alone.final[0])
        torch.testing.assert_close(encoded.states[row, :n], alone.states[0])


def test_bahdanau_attention_matches_the_formula_and_masks_padding():
    torch.manual_seed(0)
    attention = BahdanauAttention(d_query=5, d_key=6, d_attention=4)
    query, keys = torch.randn(3, 5), torch.randn(3, 7, 6)
    mask = torch.arange(7)[None, :] < torch.tensor([7, 3, 1])[:, None]  # (3, 7)
    context, weights = attention(query, keys, mask)
    assert context.shape == (3, 6) and weights.shape == (3, 7)
    torch.testing.assert_close(weights.sum(dim=1), torch.ones(3))
    assert weights[~mask].eq(0).all() and weights[mask].gt(0).all()
    W_q, W_k, b_k, v = attention.w_query.weight, attention.w_key.weight, attention.w_key.bias, attention.v.weight[0]
    for b in range(3):
        n = int(mask[b].sum())
        scores = torch.stack([v @ torch.tanh(W_q @ query[b] + W_k @ keys[b, j] + b_k) for j in range(n)])
        expected = torch.softmax(scores, dim=0)
        torch.testing.assert_close(weights[b, :n], expected)
        torch.testing.assert_close(context[b], expected @ keys[b, :n])


@pytest.mark.parametrize("attention", [False, True])
def test_forward_shapes_and_padding_does_not_change_a_sequences_logits(attention):
    model = small_model(attention)
    batch = TASK.sample(5, 2, 8, seed=1)
    logits, weights = model(batch.src, batch.src_lengths, batch.tgt_in)
    B, S, T = 5, batch.src.shape[1], batch.tgt_in.shape[1]
    assert logits.shape == (B, T, TASK.vocab_size)
    if attention:
        assert weights.shape == (B, T, S)
        torch.testing.assert_close(weights.sum(-1), torch.ones(B, T))
        assert weights.masked_select(~(batch.src != PAD)[:, None, :]).eq(0).all()  # padded sources get 0
    else:
        assert weights is None
    for row in range(B):
        n = int(batch.src_lengths[row])
        alone, _ = model(batch.src[row:row + 1, :n], batch.src_lengths[row:row + 1], batch.tgt_in[row:row + 1, :n + 1])
        torch.testing.assert_close(logits[row, :n + 1], alone[0], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("attention", [False, True])
def test_teacher_forced_loss_equals_the_mean_of_the_per_step_losses(attention):
    model = small_model(attention, seed=2)
    batch = TASK.sample(6, 2, 9, seed=2)
    encoded = model.encoder(batch.src, batch.src_lengths)
    state, total, count = encoded.final, torch.zeros(()), 0
    for t in range(batch.tgt_in.shape[1]):  # one decoder step at a time, fed the true previous token
        logits, state, _ = model.decoder.step(batch.tgt_in[:, t], state, encoded)  # (B, V)
        real = batch.tgt_out[:, t] != PAD
        total = total + F.cross_entropy(logits[real], batch.tgt_out[real, t], reduction="sum")
        count += int(real.sum())
    assert count == int((batch.src_lengths + 1).sum())  # every word and one EOS per sequence
    torch.testing.assert_close(model.loss(batch), total / count)


@pytest.mark.parametrize("attention", [False, True])
def test_greedy_decode_feeds_back_its_argmax_and_pads_after_eos(attention):
    model = small_model(attention, seed=3)
    with torch.no_grad():
        model.decoder.out.bias[EOS] += 0.5  # so that the rows write EOS at different steps
    batch = TASK.sample(4, 2, 6, seed=3)
    decoded = model.greedy_decode(batch.src, batch.src_lengths, max_length=9)
    assert not attention or len({int((row != PAD).sum()) for row in decoded.tokens}) > 1
    assert isinstance(decoded, Decoded) and decoded.tokens.shape[0] == 4 and decoded.tokens.shape[1] <= 9
    for row in range(4):  # greedy decoding of each source alone, step by step
        n = int(batch.src_lengths[row])
        encoded = model.encoder(batch.src[row:row + 1, :n], batch.src_lengths[row:row + 1])
        state, token, expected, alphas = encoded.final, torch.tensor([BOS]), [], []
        with torch.no_grad():
            while len(expected) < 9 and (not expected or expected[-1] != EOS):
                logits, state, alpha = model.decoder.step(token, state, encoded)
                token = logits.argmax(-1)
                expected.append(int(token))
                alphas.append(alpha)
        got = decoded.tokens[row].tolist()
        assert got[:len(expected)] == expected and all(i == PAD for i in got[len(expected):])
        if attention:  # each step's weights over the real source, then zeros after the row's EOS
            weights = decoded.attention[row]  # (L, S)
            torch.testing.assert_close(weights[:len(expected), :n], torch.cat(alphas))
            torch.testing.assert_close(weights[:len(expected)].sum(-1), torch.ones(len(expected)))
            assert not weights[:, n:].any() and not weights[len(expected):].any()
    if attention:
        assert decoded.attention.shape == (4, decoded.tokens.shape[1], batch.src.shape[1])
    else:
        assert decoded.attention is None


def test_exact_match_needs_every_token_and_the_eos():
    model = small_model(False)
    batch = TASK.batch([TASK.encode(["Rozi", "cat"]), TASK.encode(["red", "owl", "dog"])])
    right = batch.tgt_out.clone()
    wrong_eos = right.clone()
    wrong_eos[0, 2] = right[0, 0]  # keeps going instead of stopping
    model.greedy_decode = lambda src, lengths, max_length: Decoded(right[:, :max_length], None)
    assert exact_match(model, batch).tolist() == [True, True]
    model.greedy_decode = lambda src, lengths, max_length: Decoded(wrong_eos[:, :max_length], None)
    assert exact_match(model, batch).tolist() == [False, True]
    model.greedy_decode = lambda src, lengths, max_length: Decoded(right[:, :2], None)  # stopped early
    assert exact_match(model, batch).tolist() == [False, False]


def test_fit_learns_to_reverse_short_sequences():
    model = small_model(True, seed=4)
    before = model.loss(TASK.sample(64, 2, 3, seed=99)).item()
    losses = fit(model, TASK, steps=60, batch_size=32, min_length=2, max_length=3,
                 learning_rate=lambda step: 1e-2, generator=torch.Generator().manual_seed(0))
    after = model.loss(TASK.sample(64, 2, 3, seed=99)).item()
    assert len(losses) == 60 and not model.training
    assert after < 0.8 * before
    accuracy = accuracy_by_length(model, TASK, [2, 3], n=20, seed=0)
    assert set(accuracy) == {2, 3}
    for length, value in accuracy.items():  # length l is scored on the batch seeded with seed + l
        assert value == exact_match(model, TASK.sample(20, length, length, seed=length)).sum().item() / 20
    assert accuracy[2] > 0  # training did reach some exactly right reversals


def test_fit_sets_each_steps_learning_rate(monkeypatch):
    from course_lib import training

    rates, real_step = [], training.optimizer_step

    def recording_step(optimizer, loss, lr, grad_clip=None):
        real_step(optimizer, loss, lr, grad_clip)
        rates.append(optimizer.param_groups[0]["lr"])  # the rate the update used

    monkeypatch.setattr(training, "optimizer_step", recording_step)  # the step of fit's loop, train_loop
    model = small_model(False)
    fit(model, TASK, steps=3, batch_size=4, min_length=2, max_length=3,
        learning_rate=lambda step: 1e-3 * (step + 1), generator=torch.Generator().manual_seed(0))
    assert rates == [1e-3, 2e-3, 3e-3]
    frozen = small_model(False)
    before = [p.clone() for p in frozen.parameters()]
    fit(frozen, TASK, steps=2, batch_size=4, min_length=2, max_length=3,
        learning_rate=lambda step: 0.0, generator=torch.Generator().manual_seed(0))
    assert all(torch.equal(a, b) for a, b in zip(before, frozen.parameters()))  # a rate of 0 changes nothing


# --- bad inputs ------------------------------------------------------------------------------------


@pytest.mark.parametrize("kwargs, error, message", [
    ({"vocab_size": 0}, ValueError, "vocab_size must be a positive integer, got 0"),
    ({"vocab_size": 10, "d_hidden": 2.5}, TypeError, "d_hidden must be an integer, got float 2.5"),
    ({"vocab_size": 10, "attention": 1}, TypeError, "attention must be a bool, got int 1"),
    ({"vocab_size": 10, "d_attention": -1}, ValueError, "d_attention must be a positive integer, got -1"),
])
def test_bad_config_raises(kwargs, error, message):
    with pytest.raises(error, match=message):
        Seq2SeqConfig(**kwargs)


def test_numpy_integer_sizes_are_accepted_and_stored_as_ints():
    config = Seq2SeqConfig(np.int64(55), d_embed=np.int64(8), d_hidden=np.int32(16), attention=True,
                           d_attention=np.int64(8))
    assert config == Seq2SeqConfig(55, d_embed=8, d_hidden=16, attention=True, d_attention=8)
    assert all(type(v) is int for k, v in config.to_dict().items() if k != "attention")
    assert Seq2Seq(config).num_parameters() == Seq2Seq(Seq2SeqConfig(55, 8, 16, True, 8)).num_parameters()
    assert GRUDecoder(np.int64(10), np.int64(4), np.int64(6)).gru.hidden_size == 6  # nn.GRU refuses numpy ints
    sampled = TASK.sample(np.int64(3), np.int64(2), np.int64(4), seed=np.int64(0))
    batched = TASK.batch([[np.int64(3), 4]])
    for got, expected in ((sampled, TASK.sample(3, 2, 4, seed=0)), (batched, TASK.batch([[3, 4]]))):
        assert all(torch.equal(a, b) for a, b in zip(vars(got).values(), vars(expected).values()))


def test_bad_task_inputs_raise():
    with pytest.raises(ValueError, match="words must be a non-empty tuple of distinct words"):
        ReversalTask(("a", "a"))
    with pytest.raises(TypeError, match="world must be a course_lib.world.World, got str"):
        ReversalTask.from_world("world")
    with pytest.raises(ValueError, match=r"unknown words \['Paris'\]"):
        TASK.encode(["Paris"])
    with pytest.raises(ValueError, match="ids must be in"):
        TASK.decode([99])
    with pytest.raises(ValueError, match="sources must be a non-empty list of non-empty id lists"):
        TASK.batch([[]])
    with pytest.raises(ValueError, match=r"source ids must be word ids in \[3, 55\), got values in \[1, 4\]"):
        TASK.batch([[BOS, 4]])
    with pytest.raises(ValueError, match="max_length must be >= min_length=5, got 3"):
        TASK.sample(4, 5, 3, seed=0)
    with pytest.raises(ValueError, match="n must be a positive integer, got 0"):
        TASK.sample(0, 2, 3, seed=0)
    with pytest.raises(ValueError, match="seed must be a non-negative integer, got -1"):
        TASK.sample(4, 2, 3, seed=-1)
    with pytest.raises(TypeError, match="seed must be an integer, got float 1.5"):
        TASK.sample(4, 2, 3, seed=1.5)
    with pytest.raises(TypeError, match="words must be a tuple of str"):
        ReversalTask(["a", "b"])
    with pytest.raises(TypeError, match=r"sources\[0\]\[1\] must be an integer, got float 3.7"):
        TASK.batch([[3, 3.7]])


def test_bad_model_inputs_raise():
    model = small_model(True)
    batch = TASK.sample(3, 2, 4, seed=0)
    with pytest.raises(TypeError, match="src must be a LongTensor, got dtype torch.float32"):
        model(batch.src.float(), batch.src_lengths, batch.tgt_in)
    with pytest.raises(ValueError, match=r"src must be a non-empty LongTensor of shape \(B, T\), got shape \(3,\)"):
        model(batch.src[:, 0], batch.src_lengths, batch.tgt_in)
    with pytest.raises(ValueError, match=r"src_lengths must be in \[1, "):
        model(batch.src, batch.src_lengths + 10, batch.tgt_in)
    with pytest.raises(ValueError, match=r"src_lengths must be a LongTensor of shape \(3,\)"):
        model(batch.src, batch.src_lengths[:2], batch.tgt_in)
    with pytest.raises(TypeError, match="src_lengths must be a LongTensor, got list"):
        model(batch.src, batch.src_lengths.tolist(), batch.tgt_in)
    with pytest.raises(ValueError, match=r"tgt_in must be in \[0, 55\), got values in"):
        model(batch.src, batch.src_lengths, batch.tgt_in + 100)
    with pytest.raises(ValueError, match="tgt_in must have the source's batch size 3, got 2"):
        model(batch.src, batch.src_lengths, batch.tgt_in[:2])
    with pytest.raises(ValueError, match="tgt_out must have tgt_in's shape"):
        model.loss(Batch(batch.src, batch.src_lengths, batch.tgt_in, batch.tgt_out[:, :-1]))
    with pytest.raises(TypeError, match="batch must be a Batch, got tuple"):
        model.loss((batch.src, batch.tgt_out))
    with pytest.raises(TypeError, match="batch must be a Batch, got tuple"):
        exact_match(model, (batch.src, batch.tgt_out))
    with pytest.raises(ValueError, match="max_length must be a positive integer, got 0"):
        model.greedy_decode(batch.src, batch.src_lengths, 0)
    with pytest.raises(TypeError, match="config must be a Seq2SeqConfig"):
        Seq2Seq({"vocab_size": 55})
    with pytest.raises(ValueError, match="mask must leave at least one source position per row"):
        model.decoder.attention(torch.zeros(1, 16), torch.zeros(1, 3, 16), torch.zeros(1, 3, dtype=torch.bool))
    with pytest.raises(TypeError, match="mask must be a bool tensor, got dtype torch.float32"):
        model.decoder.attention(torch.zeros(1, 16), torch.zeros(1, 3, 16), torch.ones(1, 3))
    with pytest.raises(ValueError, match=r"mask must be a bool tensor of shape \(1, 3\), got shape \(1, 2\)"):
        model.decoder.attention(torch.zeros(1, 16), torch.zeros(1, 3, 16), torch.ones(1, 2, dtype=torch.bool))
    with pytest.raises(ValueError, match="d_attention must be a positive integer, got 0"):
        AttentionGRUDecoder(10, 4, 4, 0)
    with pytest.raises(ValueError, match="d_hidden must be a positive integer, got 0"):
        GRUDecoder(10, 4, 0)
    with pytest.raises(ValueError, match="model.config.vocab_size must equal task.vocab_size=55, got 10"):
        fit(Seq2Seq(Seq2SeqConfig(10)), TASK, 1, 2, 2, 3, lambda step: 1e-3, torch.Generator())
    fit_model = small_model(False)
    with pytest.raises(TypeError, match="model must be a Seq2Seq and task a ReversalTask, got Seq2Seq and tuple"):
        fit(fit_model, ("a", "b"), 3, 2, 2, 3, lambda step: 1e-3, torch.Generator())
    with pytest.raises(TypeError, match="generator must be a torch.Generator, got int"):
        fit(fit_model, TASK, 3, 2, 2, 3, lambda step: 1e-3, 0)  # an int would repeat one batch
    with pytest.raises(TypeError, match="learning_rate must be a function of the step, got float"):
        fit(fit_model, TASK, 3, 2, 2, 3, 0.01, torch.Generator())
    with pytest.raises(ValueError, match="batch_size must be a positive integer, got 0"):
        fit(fit_model, TASK, 3, 0, 2, 3, lambda step: 1e-3, torch.Generator())
    with pytest.raises(ValueError, match="grad_clip must be positive, got 0.0"):
        fit(fit_model, TASK, 3, 2, 2, 3, lambda step: 1e-3, torch.Generator(), grad_clip=0.0)
    with pytest.raises(ValueError, match="lengths must be a positive integer, got 0"):
        accuracy_by_length(fit_model, TASK, [0], n=2, seed=0)
