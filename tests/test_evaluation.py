"""Tests for course_lib.evaluation: the shipped models scored as their cards record, documents scored
whole from their first token, and bad input named."""

from __future__ import annotations

import pytest
import torch

from course_lib.datasets import load_corpus, load_generator, load_world
from course_lib.evaluation import (
    answer_nats,
    batch_nats,
    document_batch,
    document_nats,
    encode_document,
    evaluate_encoder,
    fact_fill_accuracy,
    fact_fills,
    pseudo_log_likelihood,
)
from course_lib.zoo import ENCODER_ZOO

# --- the language model ----------------------------------------------------------------------------


def test_document_nats_scores_each_document_whole_from_its_first_token(shipped_gpt):
    model, tokenizer, _ = shipped_gpt
    document = load_corpus("val")[0]
    ids = torch.tensor(encode_document(tokenizer, document))  # "\n" + document + "\n"
    assert tokenizer.decode(ids.tolist()) == "\n" + document + "\n"
    with torch.no_grad():
        log_probs = torch.log_softmax(model(ids[None, :-1]).double(), dim=-1)[0]  # (L - 1, V)
    expected = -log_probs[torch.arange(len(ids) - 1), ids[1:]].sum()
    torch.testing.assert_close(document_nats(model, tokenizer, [document])[0], expected)
    batched = document_nats(model, tokenizer, load_corpus("val")[:7], batch_size=3)  # padding is not scored
    torch.testing.assert_close(batched[0], expected, rtol=1e-6, atol=1e-6)


def test_bad_document_nats_inputs_raise_a_clear_value_error(shipped_gpt):
    model, tokenizer, _ = shipped_gpt
    with pytest.raises(ValueError, match="documents must be a non-empty sequence of str, got 'Rozi.'"):
        document_nats(model, tokenizer, "Rozi.")
    with pytest.raises(ValueError, match="batch_size must be a positive integer, got 0"):
        document_nats(model, tokenizer, ["Rozi."], batch_size=0)
    with pytest.raises(ValueError, match=r"a document has \d+ tokens, more than context_length \+ 1 = 65"):
        document_nats(model, tokenizer, ["Rozi lives in Pominport. " * 20 + "Rozi."])


def test_document_batch_pads_and_marks_the_scored_positions(shipped_gpt):
    _, tokenizer, _ = shipped_gpt
    documents = load_corpus("val")[:3]
    ids, scored = document_batch(tokenizer, documents)
    lengths = [len(encode_document(tokenizer, d)) for d in documents]
    assert ids.shape == (3, max(lengths)) and scored.shape == (3, max(lengths) - 1)
    for row, n in enumerate(lengths):
        assert ids[row, :n].tolist() == encode_document(tokenizer, documents[row]) and not ids[row, n:].any()
        assert scored[row].tolist() == [True] * (n - 1) + [False] * (max(lengths) - n)
    with pytest.raises(ValueError, match="documents must be a non-empty sequence of str, got \\[\\]"):
        document_batch(tokenizer, [])


def test_batch_nats_is_a_differentiable_document_nats(shipped_gpt):
    model, tokenizer, _ = shipped_gpt
    documents = load_corpus("val")[:5]
    ids, scored = document_batch(tokenizer, documents)
    nats = batch_nats(model, ids, scored)
    assert nats.requires_grad and nats.dtype == torch.float32
    torch.testing.assert_close(nats.double(), document_nats(model, tokenizer, documents), rtol=1e-5, atol=1e-4)
    with pytest.raises(ValueError, match=r"scored must have shape \(B, L - 1\)"):
        batch_nats(model, ids, scored[:, :-1])


# --- the encoder -----------------------------------------------------------------------------------


def test_answer_nats_scores_only_the_answer_after_its_prompt(shipped_gpt):
    model, tokenizer, _ = shipped_gpt
    prompt, answer = "Rozi lives in", " Pominport."
    ids = torch.tensor(tokenizer.encode("\n" + prompt + answer))  # (L,) the sentence read as a document's start
    start = len(tokenizer.encode("\n" + prompt))
    with torch.no_grad():
        log_probs = torch.log_softmax(model(ids[None, :-1]).double(), dim=-1)[0]  # (L - 1, V)
    expected = -log_probs[torch.arange(start - 1, len(ids) - 1), ids[start:]].sum()  # the answer's tokens only
    got = answer_nats(model, tokenizer, [prompt, "Rozi has a pet"], [answer, " cat."], batch_size=1)
    torch.testing.assert_close(got[0], expected)
    assert got.shape == (2,) and bool((got >= 0).all())
    whole = -log_probs[torch.arange(len(ids) - 1), ids[1:]].sum()
    assert float(got[0]) < float(whole)  # the prompt's tokens are not counted


def test_bad_answer_nats_inputs_raise_a_clear_value_error(shipped_gpt):
    model, tokenizer, _ = shipped_gpt
    with pytest.raises(ValueError, match="same length, got 2 prompts and 1 answers"):
        answer_nats(model, tokenizer, ["Rozi lives in", "Rozi"], [" Pominport."])
    with pytest.raises(ValueError, match="answer must start at a token boundary"):
        answer_nats(model, tokenizer, ["Rozi lives in Pomin"], ["port."])
    with pytest.raises(ValueError, match="answer must be a non-empty"):
        answer_nats(model, tokenizer, ["Rozi lives in"], [""])


def test_loaded_encoder_reproduces_its_recorded_validation_metrics(shipped_encoder):
    model, tokenizer, card = shipped_encoder
    config, recorded = ENCODER_ZOO["tiny_encoder"], card["metrics"]
    val = load_corpus("val")
    assert len(val) == recorded["val_documents"]
    metrics = evaluate_encoder(model, tokenizer, val, config.eval_seed, config.mask_prob, config.max_sentences)
    assert metrics["mlm_positions"] == recorded["mlm_positions"]
    assert metrics["mlm_loss"] == pytest.approx(recorded["mlm_loss"], rel=1e-4)
    for key in ("mlm_accuracy", "nsp_accuracy", "sop_accuracy"):
        assert metrics[key] == pytest.approx(recorded[key], abs=0.005), key  # a near-tie may flip on another CPU
    assert metrics["nsp_accuracy"] > 0.9 and metrics["sop_accuracy"] < 0.65  # NSP learned, order not


def test_fact_fills_reproduce_the_recorded_fact_accuracy(shipped_encoder):
    model, tokenizer, card = shipped_encoder
    generator = load_generator()
    facts = generator.world.facts()
    fills = fact_fills(model, tokenizer, facts, generator, k=5)
    assert [f.fact for f in fills] == facts and len(fills) == card["metrics"]["facts"]
    first = fills[0]
    assert first.probe == f"{first.fact.subject} lives in [MASK]." and len(first.candidates) == 5
    assert first.probabilities == sorted(first.probabilities, reverse=True)
    assert all((f.rank == 1) == (f.candidates[0] == f.fact.object) for f in fills)
    assert fact_fill_accuracy(fills) == pytest.approx(card["metrics"]["fact_accuracy"], abs=0.01)
    assert fact_fill_accuracy(fills, k=5) == pytest.approx(card["metrics"]["fact_top5_accuracy"], abs=0.01)
    assert fact_fill_accuracy(fills) > 0.5  # far above chance (1/6 to 1/23 per relation)


def test_bad_encoder_scoring_inputs_raise_a_clear_value_error(shipped_encoder):
    model, tokenizer, _ = shipped_encoder
    with pytest.raises(ValueError, match=r"k must be an int in \[1, 564\], got 0"):
        fact_fills(model, tokenizer, load_world().facts()[:1], load_generator(), k=0)
    with pytest.raises(ValueError, match="facts must not be empty"):
        fact_fills(model, tokenizer, [], load_generator())
    with pytest.raises(ValueError, match="fills must not be empty"):
        fact_fill_accuracy([])


def test_pseudo_log_likelihood_masks_each_token_in_turn(shipped_encoder):
    model, tokenizer, _ = shipped_encoder
    text = "Rozi lives in Pominport. She has a pet cat."
    ids, by_hand = tokenizer.encode(text), 0.0
    for i, original in enumerate(ids):  # one pass per masked token, as the definition reads
        masked = list(ids)
        masked[i] = tokenizer.mask_id
        packed = torch.tensor([tokenizer.pack(masked)[0]])  # (1, T + 2): [CLS] first
        with torch.no_grad():
            by_hand += torch.log_softmax(model(packed).mlm_logits[0, i + 1].double(), dim=-1)[original].item()
    assert pseudo_log_likelihood(model, tokenizer, text) == pytest.approx(by_hand, abs=1e-4)


def test_pseudo_log_likelihood_prefers_a_fact_the_encoder_recalls(shipped_encoder):
    model, tokenizer, _ = shipped_encoder
    world = load_world()
    fills = fact_fills(model, tokenizer, [f for f in world.facts() if f.relation == "lives_in"], load_generator())
    known = next(fill.fact for fill in fills if fill.rank == 1)
    wrong_city = next(city for city in world.cities if city != known.object)
    true_score = pseudo_log_likelihood(model, tokenizer, f"{known.subject} lives in {known.object}.")
    false_score = pseudo_log_likelihood(model, tokenizer, f"{known.subject} lives in {wrong_city}.")
    assert false_score < true_score < 0


def test_bad_pseudo_log_likelihood_inputs_are_named(shipped_encoder):
    model, tokenizer, _ = shipped_encoder
    with pytest.raises(TypeError, match="text must be a str, got int"):
        pseudo_log_likelihood(model, tokenizer, 3)
    with pytest.raises(ValueError, match="text must be a non-empty str"):
        pseudo_log_likelihood(model, tokenizer, "")
    with pytest.raises(ValueError, match=r"text must fit in the context_length \d+ with \[CLS\] and \[SEP\]"):
        pseudo_log_likelihood(model, tokenizer, "Rozi " * model.context_length)

