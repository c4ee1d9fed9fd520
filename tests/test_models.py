"""Tests for course_lib.models: TinyGPT (parallel pass == KV-cached decoding, causality, tying, init) and
TinyEncoder (heads, tying, bidirectionality, padding, segments)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from course_lib.decoding import beam_search, greedy_decode, sample
from course_lib.embeddings import lookup_as_matmul
from course_lib.models import (
    EncoderOutput,
    NextTokenLogits,
    TinyEncoder,
    TinyEncoderConfig,
    TinyGPT,
    TinyGPTConfig,
)


def tiny_model(seed: int = 0, **overrides) -> TinyGPT:
    config = dict(vocab_size=40, context_length=24, d_model=32, n_heads=4, n_layers=2)
    config.update(overrides)
    torch.manual_seed(seed)
    return TinyGPT(TinyGPTConfig(**config)).double().eval()


def random_ids(batch: int, length: int, vocab: int = 40, seed: int = 1) -> torch.Tensor:
    return torch.randint(0, vocab, (batch, length), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("chunks", [[1] * 20, [7, 1, 1, 5, 6], [20]])
def test_teacher_forced_pass_equals_kv_cached_incremental_decoding(chunks):
    model, ids = tiny_model(), random_ids(3, 20)
    with torch.no_grad():
        parallel = model(ids)  # (3, 20, V)
        caches, pieces, start = model.new_caches(), [], 0
        for size in chunks:
            pieces.append(model(ids[:, start:start + size], caches))
            start += size
    torch.testing.assert_close(torch.cat(pieces, dim=1), parallel, atol=1e-6, rtol=0)
    assert all(len(cache) == 20 for cache in caches)


def test_editing_future_tokens_leaves_earlier_logits_unchanged():
    model, ids = tiny_model(), random_ids(2, 16)
    edited = ids.clone()
    edited[:, 9:] = random_ids(2, 7, seed=9)
    with torch.no_grad():
        before, after = model(ids), model(edited)
    assert torch.equal(before[:, :9], after[:, :9])
    assert not torch.allclose(before[:, 9:], after[:, 9:])


def test_tied_weights_share_storage_and_logits_are_h_times_wte_transposed():
    model = tiny_model()
    assert model.lm_head.weight is model.token_embedding.weight
    assert model.lm_head.weight.data_ptr() == model.token_embedding.weight.data_ptr()
    ids = random_ids(2, 6)
    hidden = model.decoder(model.token_embedding(ids) + model.positions(torch.arange(6)))  # (2, 6, d)
    torch.testing.assert_close(model(ids), hidden @ model.token_embedding.weight.T)
    model(ids).sum().backward()
    assert model.token_embedding.weight.grad is model.lm_head.weight.grad  # one gradient, both uses


def test_untying_copies_the_table_into_a_separate_output_layer():
    model = tiny_model()
    ids = random_ids(2, 6)
    before = model(ids).detach()
    assert model.untie_output_layer() is model
    assert model.lm_head.weight is not model.token_embedding.weight
    assert model.lm_head.weight.data_ptr() != model.token_embedding.weight.data_ptr()
    torch.testing.assert_close(model(ids), before)  # same values, so the same logits
    model(ids).sum().backward()
    unseen = torch.ones(40, dtype=torch.bool)
    unseen[ids.unique()] = False
    assert (model.token_embedding.weight.grad[unseen] == 0).all()  # only the rows that were read
    assert (model.lm_head.weight.grad[unseen] != 0).any(dim=1).all()  # every output row scores
    assert model.num_parameters() == tiny_model().num_parameters() + 40 * 32
    with pytest.raises(ValueError, match="already untied"):
        model.untie_output_layer()


def test_hidden_states_are_what_the_lm_head_reads_and_follow_the_cache():
    model = tiny_model()
    ids = random_ids(2, 6)
    hidden = model.hidden_states(ids)  # (2, 6, d)
    assert hidden.shape == (2, 6, model.config.d_model)
    torch.testing.assert_close(hidden, model.decoder(model.token_embedding(ids) + model.positions(torch.arange(6))))
    torch.testing.assert_close(model(ids), hidden @ model.token_embedding.weight.T)
    caches = model.new_caches()
    first, rest = model.hidden_states(ids[:, :4], caches), model.hidden_states(ids[:, 4:], caches)
    torch.testing.assert_close(torch.cat([first, rest], dim=1), hidden)
    with pytest.raises(ValueError, match="ids must be in"):
        model.hidden_states(torch.tensor([[1, 40]]))


def test_embedding_lookup_is_one_hot_times_the_table():
    model, ids = tiny_model(), random_ids(3, 5)
    table = model.token_embedding.weight
    assert torch.equal(model.token_embedding(ids), lookup_as_matmul(ids, table))


def test_parameter_count_counts_the_tied_table_once():
    c = TinyGPTConfig(vocab_size=40, context_length=24, d_model=32, n_heads=4, n_layers=2)
    d, f = c.d_model, 4 * c.d_model
    per_block = (4 * d * d + 4 * d) + (d * f + f + f * d + d) + 2 * (2 * d)  # attention, MLP, 2 LayerNorms
    expected = c.vocab_size * d + c.context_length * d + c.n_layers * per_block + 2 * d
    model = tiny_model()
    assert model.num_parameters() == expected
    assert sum(p.numel() for p in model.state_dict().values()) == expected + c.vocab_size * d  # lm_head listed too


def test_initialisation_follows_gpt2():
    torch.manual_seed(0)
    model = TinyGPT(TinyGPTConfig(vocab_size=2000, context_length=512, d_model=128, n_heads=4, n_layers=4))
    assert model.token_embedding.weight.std().item() == pytest.approx(0.02, rel=0.02)
    assert model.positions.table.weight.std().item() == pytest.approx(0.01, rel=0.02)
    block = model.decoder.blocks[0]
    assert block.mlp.fc_in.weight.std().item() == pytest.approx(0.02, rel=0.03)
    assert block.self_attn.out_proj.weight.std().item() == pytest.approx(0.02 / 8**0.5, rel=0.05)
    assert block.mlp.fc_in.bias.abs().max() == 0


def test_cached_next_logits_feed_one_token_per_step_and_follow_reordered_beams():
    model = tiny_model()
    seen: list[tuple[int, int]] = []
    model.register_forward_pre_hook(lambda module, args: seen.append(tuple(args[0].shape)))
    prompt = random_ids(1, 4)[0]
    cached = beam_search(model.as_next_logits(), prompt, beam_width=3, max_new_tokens=8)
    assert seen == [(1, 4)] + [(3, 1)] * 7  # the prompt once, then one new token per beam per step
    plain = beam_search(model.as_next_logits(kv_cache=False), prompt, beam_width=3, max_new_tokens=8)
    assert [h.token_ids.tolist() for h in cached] == [h.token_ids.tolist() for h in plain]
    assert [h.score for h in cached] == pytest.approx([h.score for h in plain], abs=1e-9)


def test_cached_and_uncached_decoding_agree_for_greedy_and_sampling():
    model, prompts = tiny_model(seed=2), random_ids(3, 5, seed=4)
    cached, plain = model.as_next_logits(), model.as_next_logits(kv_cache=False)
    assert torch.equal(greedy_decode(cached, prompts, 12), greedy_decode(plain, prompts, 12))
    def draw(fn):
        return sample(fn, prompts, 12, temperature=1.3, top_p=0.9, generator=torch.Generator().manual_seed(0))

    assert torch.equal(draw(cached), draw(plain))


def test_cached_next_logits_start_over_on_unrelated_ids():
    model = tiny_model()
    fn, ids = model.as_next_logits(), random_ids(2, 6)
    fn(ids[:, :5])
    other = random_ids(2, 6, seed=7)
    torch.testing.assert_close(fn(other), model(other)[:, -1])  # not an extension: full pass
    torch.testing.assert_close(fn(ids[:, :3]), model(ids[:, :3])[:, -1])  # shorter: full pass
    with pytest.raises(ValueError, match="ids must be in"):
        fn(torch.cat([ids[:, :3], torch.full((2, 1), 99)], dim=1))
    torch.testing.assert_close(fn(ids[:, :4]), model(ids[:, :4])[:, -1])  # the failed call left no state


def test_cached_next_logits_keep_a_copy_of_the_ids():
    model = tiny_model()
    fn, ids = model.as_next_logits(), random_ids(2, 6)
    prefix = ids[:, :5].clone()
    fn(prefix)
    prefix[:, -1] = (prefix[:, -1] + 1) % 40  # the caller reuses its tensor for other sequences
    changed = torch.cat([prefix, ids[:, 5:]], dim=1)  # (2, 6): not an extension of what was cached
    torch.testing.assert_close(fn(changed), model(changed)[:, -1])


@pytest.mark.parametrize("kv_cache", [True, False])
def test_next_token_logits_refuse_a_model_with_active_dropout(kv_cache: bool):
    model, prompt = tiny_model(dropout=0.1).train(), random_ids(1, 4)[0]
    fn = model.as_next_logits(kv_cache)
    with pytest.raises(ValueError, match=r"the model is in training mode with dropout p=0.1: its logits would "
                                         r"change from call to call .* call model.eval\(\) before decoding"):
        greedy_decode(fn, prompt, 3)
    model.eval()
    assert torch.equal(greedy_decode(fn, prompt, 3), greedy_decode(fn, prompt, 3))
    no_dropout = tiny_model().train()  # training mode without dropout computes the same function
    assert torch.equal(greedy_decode(no_dropout.as_next_logits(kv_cache), prompt, 3),
                       greedy_decode(no_dropout.eval().as_next_logits(kv_cache), prompt, 3))


def test_next_token_logits_expose_the_model_limits_to_the_decoders():
    fn = tiny_model().as_next_logits()
    assert isinstance(fn, NextTokenLogits) and (fn.vocab_size, fn.context_length) == (40, 24)
    with pytest.raises(ValueError, match="prompt_ids has 25 tokens, longer than the context_length 24"):
        greedy_decode(fn, random_ids(1, 25)[0], 1)
    with pytest.raises(ValueError, match="prompt_ids must be token ids < vocab size 40, got max 45"):
        greedy_decode(fn, torch.tensor([3, 45]), 1)


@pytest.mark.parametrize("call, message", [
    (lambda m: m(torch.zeros(1, 25, dtype=torch.long)),
     "ids has 25 positions after 0 cached ones, more than the context_length 24"),
    (lambda m: m(torch.tensor([[1, 40]])), r"ids must be in \[0, 40\), got values in \[1, 40\]"),
    (lambda m: m(torch.tensor([[-1, 3]])), r"ids must be in \[0, 40\)"),
    (lambda m: m(torch.zeros(3, dtype=torch.long)), r"ids must be a LongTensor of shape \(B, T\)"),
    (lambda m: m(torch.zeros(1, 3)), r"ids must be a LongTensor of shape \(B, T\)"),
    (lambda m: m(torch.zeros(0, 3, dtype=torch.long)), r"ids must be a LongTensor of shape \(B, T\) with B, T >= 1"),
    (lambda m: m(torch.zeros(1, 3, dtype=torch.long), caches=[]),
     r"caches must be a list of one KVCache per layer \(2\)"),
])
def test_bad_model_input_raises_a_clear_value_error(call, message):
    with pytest.raises(ValueError, match=message):
        call(tiny_model())


@pytest.mark.parametrize("overrides, message", [
    ({"d_model": 30}, "d_model must be divisible by n_heads, got d_model=30, n_heads=4"),
    ({"vocab_size": 0}, "vocab_size must be a positive integer, got 0"),
    ({"d_ff": -1}, "d_ff must be a positive integer, got -1"),
])
def test_bad_config_raises_a_clear_value_error(overrides, message):
    config = dict(vocab_size=40, context_length=24, d_model=32, n_heads=4, n_layers=2) | overrides
    with pytest.raises(ValueError, match=message):
        TinyGPTConfig(**config)


@pytest.mark.parametrize("overrides, message", [
    ({"context_length": 2.5}, "context_length must be an integer, got float 2.5"),
    ({"n_layers": True}, "n_layers must be an integer, got True"),
])
def test_config_of_the_wrong_type_raises_a_type_error(overrides, message):
    config = dict(vocab_size=40, context_length=24, d_model=32, n_heads=4, n_layers=2) | overrides
    with pytest.raises(TypeError, match=message):
        TinyGPTConfig(**config)
    with pytest.raises(TypeError, match=message):
        TinyEncoderConfig(**config)
    with pytest.raises(TypeError, match="config must be a TinyGPTConfig"):
        TinyGPT(dict(vocab_size=40, context_length=24))
    with pytest.raises(TypeError, match="config must be a TinyEncoderConfig"):
        TinyEncoder(TinyGPTConfig(vocab_size=40, context_length=24))


def test_configs_take_numpy_integer_sizes_and_store_ints():
    config = TinyGPTConfig(vocab_size=np.int64(40), context_length=np.int32(24), d_model=np.int64(32),
                           d_ff=np.int64(64))
    assert config == TinyGPTConfig(vocab_size=40, context_length=24, d_model=32, d_ff=64)
    assert all(type(v) is int for k, v in config.to_dict().items() if k != "dropout")
    json.dumps(config.to_dict())  # JSON-able, as a checkpoint stores it
    encoder = TinyEncoderConfig(vocab_size=np.int64(40), context_length=24, n_segments=np.int64(2), pad_id=np.int64(39))
    assert (type(encoder.n_segments), type(encoder.pad_id)) == (int, int)
    assert TinyGPT(config)(torch.zeros(1, 3, dtype=torch.long)).shape == (1, 3, 40)


# --- TinyEncoder and its tokenizer -----------------------------------------------------------------

PAD = 39


def tiny_encoder(seed: int = 0, **overrides) -> TinyEncoder:
    config = dict(vocab_size=40, context_length=24, d_model=32, n_heads=4, n_layers=2, pad_id=PAD) | overrides
    torch.manual_seed(seed)
    return TinyEncoder(TinyEncoderConfig(**config)).double().eval()


def encoder_ids(batch: int, length: int, seed: int = 1) -> torch.Tensor:
    return random_ids(batch, length, vocab=PAD, seed=seed)  # no [PAD] among them


def test_encoder_returns_mlm_logits_per_position_and_pair_logits_per_sequence():
    model, ids = tiny_encoder(), encoder_ids(3, 11)
    segments = (torch.arange(11) >= 6).long().expand(3, 11)
    out = model(ids, segments)
    assert isinstance(out, EncoderOutput)
    assert out.mlm_logits.shape == (3, 11, 40) and out.pair_logits.shape == (3, 2)
    h = model.encode(ids, segments)  # (3, 11, d)
    torch.testing.assert_close(out.mlm_logits, model.mlm_logits(h))
    torch.testing.assert_close(out.pair_logits, model.pair_logits(h))


def test_encoder_mlm_head_is_tied_to_the_token_embedding():
    model, ids = tiny_encoder(), encoder_ids(2, 7)
    assert model.mlm_head.weight is model.token_embedding.weight
    h = model.encode(ids)
    expected = model.mlm_transform(h) @ model.token_embedding.weight.T + model.mlm_head.bias  # (2, 7, V)
    torch.testing.assert_close(model(ids).mlm_logits, expected)
    model(ids).mlm_logits.sum().backward()
    assert model.token_embedding.weight.grad is model.mlm_head.weight.grad


def test_encoder_is_bidirectional_every_position_depends_on_later_tokens():
    model, ids = tiny_encoder(), encoder_ids(2, 16)
    edited = ids.clone()
    edited[:, -1] = (ids[:, -1] + 1) % PAD  # change only the last token
    with torch.no_grad():
        before, after = model(ids).mlm_logits, model(edited).mlm_logits
    changed = (before - after).abs().amax(dim=-1)  # (2, 16)
    assert bool((changed > 1e-9).all())  # position 0 too: unlike TinyGPT, no causal mask


def test_pair_logits_read_the_first_position_only():
    model, ids = tiny_encoder(), encoder_ids(2, 9)
    h = model.encode(ids)
    h_other = h.clone()
    h_other[:, 1:] = torch.randn_like(h[:, 1:])
    torch.testing.assert_close(model.pair_logits(h_other), model.pair_logits(h))


def test_padding_does_not_change_the_outputs_of_real_tokens():
    model, ids = tiny_encoder(), encoder_ids(1, 8)
    padded = torch.cat([ids, torch.full((1, 5), PAD)], dim=1)  # (1, 13)
    with torch.no_grad():
        plain, with_padding = model(ids), model(padded)
    torch.testing.assert_close(with_padding.mlm_logits[:, :8], plain.mlm_logits)
    torch.testing.assert_close(with_padding.pair_logits, plain.pair_logits)


def test_segment_ids_matter_default_to_zero_and_can_be_switched_off():
    model, ids = tiny_encoder(), encoder_ids(1, 8)
    zeros, ones = torch.zeros_like(ids), torch.ones_like(ids)
    with torch.no_grad():
        torch.testing.assert_close(model(ids).pair_logits, model(ids, zeros).pair_logits)
        assert not torch.allclose(model(ids, zeros).pair_logits, model(ids, ones).pair_logits)
    no_segments = tiny_encoder(n_segments=0)
    assert no_segments.segment_embedding is None
    with pytest.raises(ValueError, match="segment_ids were given, but this TinyEncoder has n_segments=0"):
        no_segments(ids, zeros)


def test_encoder_initialisation_is_bert_scaled_to_the_width_and_tied_table_counted_once():
    torch.manual_seed(0)
    model = TinyEncoder(TinyEncoderConfig(vocab_size=2000, context_length=512, d_model=192, n_heads=4))
    std = 0.02 * (768 / 192) ** 0.5
    assert model.token_embedding.weight.std().item() == pytest.approx(std, rel=0.02)
    assert model.positions.table.weight.std().item() == pytest.approx(std, rel=0.02)
    assert model.encoder.blocks[0].mlp.fc_in.weight.std().item() == pytest.approx(std, rel=0.03)
    assert model.pair_head.bias.abs().max() == 0 and model.mlm_head.bias.abs().max() == 0
    listed = sum(p.numel() for p in model.state_dict().values())
    assert model.num_parameters() == listed - 2000 * 192  # the tied (V, d) table appears twice in the state dict


@pytest.mark.parametrize("call, message", [
    (lambda m: m(torch.zeros(1, 25, dtype=torch.long)), "ids has 25 positions, more than the context_length 24"),
    (lambda m: m(torch.tensor([[1, 40]])), r"ids must be in \[0, 40\), got values in \[1, 40\]"),
    (lambda m: m(torch.zeros(3, dtype=torch.long)), r"ids must be a LongTensor of shape \(B, T\)"),
    (lambda m: m(torch.zeros(1, 0, dtype=torch.long)), r"ids must be a LongTensor of shape \(B, T\) with B, T >= 1"),
    (lambda m: m(torch.zeros(1, 3, dtype=torch.long), torch.zeros(1, 4, dtype=torch.long)),
     r"segment_ids must be a LongTensor of the shape of ids \(1, 3\)"),
    (lambda m: m(torch.zeros(1, 3, dtype=torch.long), torch.full((1, 3), 2)), r"segment_ids must be in \[0, 2\)"),
])
def test_bad_encoder_input_raises_a_clear_value_error(call, message):
    with pytest.raises(ValueError, match=message):
        call(tiny_encoder())


@pytest.mark.parametrize("overrides, message", [
    ({"pad_id": 40}, r"pad_id must be an integer in \[0, 39\], got 40"),
    ({"n_segments": -1}, "n_segments must be a non-negative integer, got -1"),
    ({"d_model": 30}, "d_model must be divisible by n_heads"),
])
def test_bad_encoder_config_raises_a_clear_value_error(overrides, message):
    config = dict(vocab_size=40, context_length=24, d_model=32, n_heads=4) | overrides
    with pytest.raises(ValueError, match=message):
        TinyEncoderConfig(**config)


def test_attention_maps_are_the_blocks_causal_weights():
    torch.manual_seed(0)
    model = TinyGPT(TinyGPTConfig(vocab_size=11, context_length=8, d_model=16, n_heads=2, n_layers=3))
    ids = torch.randint(0, 11, (2, 6))
    maps = model.attention_maps(ids)
    assert maps.shape == (2, 3, 2, 6, 6)
    assert torch.allclose(maps.sum(-1), torch.ones(2, 3, 2, 6))
    assert torch.all(maps.triu(diagonal=1) == 0)  # causal: nothing above the diagonal
    h = model.token_embedding(ids) + model.positions(torch.arange(6))  # (B, T, d)
    with torch.no_grad():
        for layer, block in enumerate(model.decoder.blocks):  # each layer from its own input
            torch.testing.assert_close(maps[:, layer], block.attention_weights(h), rtol=0, atol=1e-6)
            h = block(h)  # (B, T, d)
    with pytest.raises(ValueError):
        model.attention_maps(torch.full((1, 3), 11))
