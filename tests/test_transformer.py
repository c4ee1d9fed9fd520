"""Tests for course_lib.transformer: blocks against torch.nn.TransformerEncoderLayer and
TransformerDecoderLayer with copied weights, LayerNorm placement, causality, the KV cache and the
encoder-decoder wiring."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from course_lib.attention import (
    KVCache,
    MultiHeadAttention,
    causal_mask,
    padding_mask,
    to_torch_multihead_attention,
)
from course_lib.transformer import (
    MLP,
    Decoder,
    DecoderBlock,
    Encoder,
    EncoderBlock,
    EncoderDecoder,
)

D, H, D_FF = 16, 4, 24


def randn(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def copy_attention(ours: MultiHeadAttention, ref: nn.MultiheadAttention) -> None:
    ref.load_state_dict(to_torch_multihead_attention(ours).state_dict())


def copy_mlp(ours: MLP, ref: nn.TransformerEncoderLayer | nn.TransformerDecoderLayer) -> None:
    ref.linear1.load_state_dict(ours.fc_in.state_dict())
    ref.linear2.load_state_dict(ours.fc_out.state_dict())


def randomise_norms(module: nn.Module) -> None:
    """Give every LayerNorm non-trivial weights, so that copying them is tested."""
    for i, norm in enumerate(m for m in module.modules() if isinstance(m, nn.LayerNorm)):
        norm.weight.data = 1 + 0.1 * randn(norm.weight.numel(), seed=100 + i)
        norm.bias.data = 0.1 * randn(norm.bias.numel(), seed=200 + i)


@pytest.mark.parametrize("norm_position", ["pre", "post"])
def test_encoder_block_matches_torch_encoder_layer(norm_position: str) -> None:
    torch.manual_seed(0)
    ours = EncoderBlock(D, H, D_FF, norm_position=norm_position).eval()
    randomise_norms(ours)
    ref = nn.TransformerEncoderLayer(D, H, D_FF, dropout=0.0, activation="gelu", batch_first=True,
                                     norm_first=norm_position == "pre").eval()
    with torch.no_grad():
        copy_attention(ours.self_attn, ref.self_attn)
        copy_mlp(ours.mlp, ref)
        ref.norm1.load_state_dict(ours.attn_sub.norm.state_dict())
        ref.norm2.load_state_dict(ours.mlp_sub.norm.state_dict())
    x = randn(2, 7, D)
    lengths = torch.tensor([7, 4])
    with torch.no_grad():
        got = ours(x, mask=padding_mask(lengths))
        expected = ref(x, src_key_padding_mask=torch.arange(7)[None] >= lengths[:, None])
    torch.testing.assert_close(got[0], expected[0])
    torch.testing.assert_close(got[1, :4], expected[1, :4])  # torch's fast path zeroes padding


@pytest.mark.parametrize("norm_position", ["pre", "post"])
def test_decoder_block_matches_torch_decoder_layer(norm_position: str) -> None:
    torch.manual_seed(1)
    ours = DecoderBlock(D, H, D_FF, norm_position=norm_position, cross_attention=True).eval()
    randomise_norms(ours)
    ref = nn.TransformerDecoderLayer(D, H, D_FF, dropout=0.0, activation="gelu", batch_first=True,
                                     norm_first=norm_position == "pre").eval()
    with torch.no_grad():
        copy_attention(ours.self_attn, ref.self_attn)
        copy_attention(ours.cross_attn, ref.multihead_attn)
        copy_mlp(ours.mlp, ref)
        ref.norm1.load_state_dict(ours.self_sub.norm.state_dict())
        ref.norm2.load_state_dict(ours.cross_sub.norm.state_dict())
        ref.norm3.load_state_dict(ours.mlp_sub.norm.state_dict())
    x, memory = randn(2, 6, D, seed=1), randn(2, 5, D, seed=2)
    with torch.no_grad():
        got = ours(x, memory=memory)
        expected = ref(x, memory, tgt_mask=~causal_mask(6))  # torch: True = NOT allowed
    torch.testing.assert_close(got, expected)


def test_mlp_shape_and_default_width() -> None:
    mlp = MLP(D)
    assert mlp.fc_in.out_features == 4 * D
    assert mlp(randn(3, 5, D)).shape == (3, 5, D)


def zero_sublayers(block: nn.Module) -> None:
    """Make every sublayer output exactly 0 (zero output projections)."""
    for linear in (block.self_attn.out_proj, block.mlp.fc_out):
        nn.init.zeros_(linear.weight)
        nn.init.zeros_(linear.bias)


def test_pre_ln_keeps_an_identity_path_post_ln_normalises_it() -> None:
    x = randn(2, 5, D) * 3 + 1
    pre = DecoderBlock(D, H, norm_position="pre")
    post = DecoderBlock(D, H, norm_position="post")
    zero_sublayers(pre)
    zero_sublayers(post)
    torch.testing.assert_close(pre(x), x)  # x + 0 + 0
    normalised = post(x)
    torch.testing.assert_close(normalised.mean(-1), torch.zeros(2, 5), atol=1e-5, rtol=0)
    torch.testing.assert_close(normalised.var(-1, unbiased=False), torch.ones(2, 5), atol=1e-3,
                               rtol=0)


@pytest.mark.parametrize("norm_position", ["pre", "post"])
def test_decoder_block_is_causal_encoder_block_is_not(norm_position: str) -> None:
    torch.manual_seed(2)
    x = randn(1, 6, D)
    changed = x.clone()
    changed[:, -1] += randn(D, seed=1)  # change only the last position
    decoder = DecoderBlock(D, H, norm_position=norm_position)
    encoder = EncoderBlock(D, H, norm_position=norm_position)
    torch.testing.assert_close(decoder(changed)[:, :-1], decoder(x)[:, :-1])
    assert not torch.allclose(encoder(changed)[:, 0], encoder(x)[:, 0])


@pytest.mark.parametrize("cross_attention, n_kv_heads", [(False, None), (True, None), (False, 1)])
def test_decoder_kv_cache_equals_full_causal_pass(cross_attention: bool,
                                                   n_kv_heads: int | None) -> None:
    torch.manual_seed(3)
    decoder = Decoder(3, D, H, cross_attention=cross_attention, n_kv_heads=n_kv_heads).eval()
    x = randn(2, 8, D)
    memory = randn(2, 5, D, seed=1) if cross_attention else None
    with torch.no_grad():
        full = decoder(x, memory=memory)
        caches = decoder.new_caches()
        prompt = decoder(x[:, :3], caches=caches, memory=memory)
        steps = [decoder(x[:, t:t + 1], caches=caches, memory=memory) for t in range(3, 8)]
    torch.testing.assert_close(torch.cat([prompt, *steps], dim=1), full)
    assert [len(c) for c in caches] == [8, 8, 8]
    assert caches[0].k.shape == (2, n_kv_heads or H, 8, D // H)


def test_decoder_block_extra_mask_with_cache() -> None:
    """A sliding-window-like extra mask, sized for the cached length, combines with causality."""
    torch.manual_seed(4)
    block = DecoderBlock(D, H).eval()
    x = randn(1, 6, D)
    window = torch.tril(torch.ones(6, 6, dtype=torch.bool), diagonal=0).triu(diagonal=-2)
    with torch.no_grad():
        full = block(x, mask=window)
        cache = KVCache()
        steps = [block(x[:, t:t + 1], mask=window[t:t + 1, :t + 1], cache=cache) for t in range(6)]
    torch.testing.assert_close(torch.cat(steps, dim=1), full)


def test_attention_weights_of_blocks() -> None:
    torch.manual_seed(5)
    x = randn(2, 5, D)
    weights = DecoderBlock(D, H).attention_weights(x)
    assert weights.shape == (2, H, 5, 5)
    assert torch.equal(weights.triu(diagonal=1), torch.zeros_like(weights))
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, H, 5))
    encoder_weights = EncoderBlock(D, H, norm_position="post").attention_weights(x)
    assert bool((encoder_weights > 0).all())


def test_encoder_output_is_independent_of_decoder_input() -> None:
    torch.manual_seed(6)
    model = EncoderDecoder(2, D, H).eval()
    src = randn(2, 7, D, seed=1)
    seen = []
    model.encoder.register_forward_hook(lambda module, args, out: seen.append(out))
    out_a = model(src, randn(2, 4, D, seed=2))
    out_b = model(src, randn(2, 6, D, seed=3))
    torch.testing.assert_close(seen[0], seen[1])
    assert out_a.shape == (2, 4, D) and out_b.shape == (2, 6, D)
    other_src = model(randn(2, 7, D, seed=4), randn(2, 4, D, seed=2))
    assert not torch.allclose(other_src, out_a)  # the decoder does read the encoder


def test_encoder_decoder_ignores_padded_source_positions() -> None:
    torch.manual_seed(7)
    model = EncoderDecoder(2, D, H, norm_position="post", n_decoder_layers=1).eval()
    src, tgt = randn(1, 6, D, seed=1), randn(1, 3, D, seed=2)
    src_mask = padding_mask([4], max_len=6)
    changed = src.clone()
    changed[:, 4:] = 100.0  # only padding changes
    torch.testing.assert_close(model(changed, tgt, src_mask=src_mask),
                               model(src, tgt, src_mask=src_mask))
    assert len(model.decoder.blocks) == 1 and len(model.encoder.blocks) == 2


def test_encoder_and_encoder_decoder_pass_n_kv_heads_to_every_attention_layer() -> None:
    torch.manual_seed(9)
    model = EncoderDecoder(2, D, H, n_kv_heads=1).eval()
    layers = [b.self_attn for b in model.encoder.blocks]
    layers += [a for b in model.decoder.blocks for a in (b.self_attn, b.cross_attn)]
    assert len(layers) == 6 and all(a.n_kv_heads == 1 and a.n_heads == H for a in layers)
    assert model(randn(2, 5, D, seed=1), randn(2, 3, D, seed=2)).shape == (2, 3, D)
    assert all(b.self_attn.n_kv_heads == 2 for b in Encoder(1, D, H, n_kv_heads=2).blocks)


def test_encoder_stack_shape_and_final_norm() -> None:
    assert isinstance(Encoder(2, D, H).final_norm, nn.LayerNorm)
    assert isinstance(Encoder(2, D, H, norm_position="post").final_norm, nn.Identity)
    assert Encoder(2, D, H)(randn(3, 4, D)).shape == (3, 4, D)


def test_dropout_is_active_in_training_only() -> None:
    torch.manual_seed(8)
    block = DecoderBlock(D, H, dropout=0.5)
    x = randn(2, 5, D)
    assert not torch.allclose(block(x), block(x))
    block.eval()
    torch.testing.assert_close(block(x), block(x))


def test_bad_inputs() -> None:
    with pytest.raises(ValueError, match="norm_position must be one of 'pre', 'post'; got 'middle'"):
        DecoderBlock(D, H, norm_position="middle")
    with pytest.raises(ValueError, match=r"dropout must be in \[0, 1\), got 1.5"):
        EncoderBlock(D, H, dropout=1.5)
    with pytest.raises(TypeError, match="dropout must be a real number, got str '0.1'"):
        EncoderBlock(D, H, dropout="0.1")
    with pytest.raises(TypeError, match="n_layers must be an integer, got float 2.0"):
        Encoder(2.0, D, H)
    with pytest.raises(ValueError, match="d_ff must be a positive integer, got 0"):
        MLP(D, 0)
    with pytest.raises(ValueError, match="d_model must be a positive integer, got 0"):
        MLP(0)
    with pytest.raises(ValueError, match="n_layers must be a positive integer, got 0"):
        Decoder(0, D, H)
    with pytest.raises(ValueError, match="d_model must be divisible by n_heads"):
        DecoderBlock(10, 4)
    plain, crossing = DecoderBlock(D, H), DecoderBlock(D, H, cross_attention=True)
    x = randn(1, 3, D)
    with pytest.raises(ValueError, match="built without cross_attention"):
        plain(x, memory=x)
    with pytest.raises(ValueError, match="built with cross_attention"):
        crossing(x)
    with pytest.raises(ValueError, match="memory_mask was given without memory"):
        plain(x, memory_mask=torch.ones(3, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"one KVCache per layer \(2\), got 1"):
        Decoder(2, D, H)(x, caches=[KVCache()])


def test_numpy_integer_sizes() -> None:
    assert MLP(np.int64(D)).fc_in.out_features == 4 * D
    assert MLP(np.int64(D), np.int64(16)).fc_in.out_features == 16
    assert len(Encoder(np.int64(2), np.int64(D), np.int64(H))(randn(1, 3, D)).shape) == 3
    assert len(Decoder(np.int64(3), D, H).new_caches()) == 3
