"""Scoring the course's trained models: a language model against the exact loss of its corpus, an
encoder on its pretraining tasks and on the world's facts.

Language model (`document_nats`): every document is scored whole, ``"\\n" + document + "\\n"``
(`encode_document`), from its first token: the model's total negative log-likelihood in nats, to
compare with the generator's exact one (`course_lib.world.DocumentGenerator.log_prob`) on the same
documents. `document_batch` and `batch_nats` are its two halves, for a training loop that wants the same
loss with gradients. Totals per document, not per token, because per-token numbers depend on the tokenizer;
the model's total is for the tokenizer's own (canonical) segmentation, an upper bound on the
string's loss. Back-to-back chunks that start mid-document would lose each document's beginning as
context and inflate the loss. An answer after a prompt (`answer_nats`): the nats of its tokens
only, e.g. a fact's object after ``"Rozi lives in"``, whose exact probability under the generator is
1 (0 nats), so every nat the model spends there is a fact it does not know.

Encoder (`evaluate_encoder`): accuracy of the pair head on one NSP pair and one SOP pair per
document, and the masked-LM loss and accuracy at the positions BERT's masking selects
(`course_lib.objectives`). Facts (`fact_fills`, `fact_fill_accuracy`): each fact of the world is
asked as a one-sentence probe with its object masked, ``[CLS] Rozi lives in [MASK]. [SEP]``, and
scored by the rank the encoder gives the true object. A sentence (`pseudo_log_likelihood`): each of
its tokens masked in turn, the log-probabilities of the originals added up (Salazar et al. 2020).

Left out: benchmarks and tasks outside the course's world, calibration, generation quality (the
decoding lessons measure it), and confidence intervals (the validation split is fixed).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch

from course_lib.losses import IGNORE_INDEX, cross_entropy
from course_lib.models import TinyEncoder, TinyGPT
from course_lib.objectives import (
    PAIR_OBJECTIVES,
    make_pair_batch,
    mask_for_mlm,
    sentence_ids,
)
from course_lib.tokenization import BPETokenizer, EncoderTokenizer
from course_lib.validation import positive_int, string
from course_lib.world import DocumentGenerator, Fact

__all__ = ["NEWLINE", "FactFill", "answer_nats", "batch_nats", "document_batch", "document_nats", "encode_document",
           "evaluate_encoder", "fact_fill_accuracy", "fact_fills", "pseudo_log_likelihood"]

NEWLINE = "\n"  # ends every line of a corpus file; `encode_document` puts one before and after a document


def encode_document(tokenizer: BPETokenizer, document: str) -> list[int]:
    """A document as the model scores it: ``"\\n" + document + "\\n"``, the newlines as their own tokens."""
    return tokenizer.encode(NEWLINE) + tokenizer.encode(document) + tokenizer.encode(NEWLINE)


def document_batch(tokenizer: BPETokenizer, documents: Sequence[str],
                   device: torch.device | str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Documents as one right-padded batch: ids ``(B, L)`` (`encode_document`, padded with id 0) and
    ``scored`` ``(B, L - 1)``, True where position t's next token (``ids[:, t + 1]``) is a real one."""
    if isinstance(documents, str) or not documents:
        raise ValueError(f"documents must be a non-empty sequence of str, got {documents!r:.80}")
    return _padded([(encode_document(tokenizer, d), 0) for d in documents], device)


def _padded(rows: Sequence[tuple[list[int], int]],
            device: torch.device | str | None) -> tuple[torch.Tensor, torch.Tensor]:
    """(ids, first) rows as right-padded ids ``(B, L)`` and ``scored`` ``(B, L - 1)``, True from prediction
    ``first`` to the row's last real token."""
    longest = max(len(ids) for ids, _ in rows)
    ids = torch.zeros(len(rows), longest, dtype=torch.long, device=device)  # (B, L) right-padded
    scored = torch.zeros(len(rows), longest - 1, dtype=torch.bool, device=device)  # (B, L - 1)
    for row, (e, first) in enumerate(rows):
        ids[row, :len(e)] = torch.tensor(e)
        scored[row, first:len(e) - 1] = True
    return ids, scored


def batch_nats(model: TinyGPT, ids: torch.Tensor, scored: torch.Tensor, double: bool = False) -> torch.Tensor:
    """Each row's total negative log-likelihood in nats over its scored positions: ``(B,)``.

    ``ids`` and ``scored`` as `document_batch` makes them. Gradients flow (a training loss); with
    ``double`` the log-softmax is taken in float64.
    """
    if ids.ndim != 2 or scored.shape != (ids.shape[0], ids.shape[1] - 1):
        raise ValueError(f"scored must have shape (B, L - 1) for ids of shape (B, L), got {tuple(scored.shape)} "
                         f"and {tuple(ids.shape)}")
    logits = model(ids[:, :-1])  # (B, L - 1, V)
    log_probs = torch.log_softmax(logits.double() if double else logits, dim=-1)  # (B, L - 1, V)
    nll = -log_probs.gather(-1, ids[:, 1:, None])[..., 0]  # (B, L - 1)
    return (nll * scored).sum(dim=1)  # (B,)


@torch.no_grad()
def document_nats(model: TinyGPT, tokenizer: BPETokenizer, documents: Sequence[str],
                  batch_size: int = 100) -> torch.Tensor:
    """Each document's total negative log-likelihood in nats, scored whole: ``(len(documents),)``.

    The model reads ``"\\n" + document`` and is scored on every following token, the closing
    newline included (`encode_document`).
    """
    if isinstance(documents, str) or not documents:
        raise ValueError(f"documents must be a non-empty sequence of str, got {documents!r:.80}")
    positive_int(batch_size, "batch_size")
    return _scored_nats(model, [(encode_document(tokenizer, d), 0) for d in documents], batch_size)


@torch.no_grad()
def answer_nats(model: TinyGPT, tokenizer: BPETokenizer, prompts: Sequence[str], answers: Sequence[str],
                batch_size: int = 100) -> torch.Tensor:
    """Each answer's negative log-likelihood in nats after its prompt: ``(len(prompts),)``.

    The model reads ``"\\n" + prompt`` (a document's start) and is scored on the answer's tokens
    only, e.g. ``" Pominport."`` after ``"Rozi lives in"`` (`DocumentGenerator.fact_prompt`). The
    answer must start where the tokenizer splits (a space before a word does), so that prompt and
    answer are tokenized as in the whole sentence; otherwise ValueError.
    """
    if isinstance(prompts, str) or isinstance(answers, str) or not prompts or len(prompts) != len(answers):
        raise ValueError(f"prompts and answers must be non-empty sequences of str of the same length, "
                         f"got {len(prompts)} prompts and {len(answers)} answers")
    positive_int(batch_size, "batch_size")
    rows = []
    for prompt, answer in zip(prompts, answers):
        start = tokenizer.encode(NEWLINE) + tokenizer.encode(string(prompt, "prompt", nonempty=True))
        ids = start + tokenizer.encode(string(answer, "answer", nonempty=True))
        if ids[1:] != tokenizer.encode(prompt + answer):
            raise ValueError(f"answer must start at a token boundary of prompt + answer, got {prompt!r} + {answer!r}")
        rows.append((ids, len(start) - 1))  # the first scored prediction is the answer's first token
    return _scored_nats(model, rows, batch_size)


def _scored_nats(model: TinyGPT, rows: list[tuple[list[int], int]], batch_size: int) -> torch.Tensor:
    """Sum of -log p(next token) over the predictions ``first..`` of each (ids, first) row: (len(rows),)."""
    device = next(model.parameters()).device
    totals = []
    for begin in range(0, len(rows), batch_size):
        ids, scored = _padded(rows[begin:begin + batch_size], device)
        if ids.shape[1] > model.context_length + 1:
            raise ValueError(f"a document has {ids.shape[1]} tokens, more than context_length + 1 = "
                             f"{model.context_length + 1}")
        totals.append(batch_nats(model, ids, scored, double=True))  # (B,)
    return torch.cat(totals)


class FactFill(NamedTuple):
    """The encoder's fill of a fact's masked object in a one-sentence probe such as "Rozi lives in [MASK]."."""

    fact: Fact
    probe: str
    candidates: list[str]  # the k most probable tokens, best first, without their leading space
    probabilities: list[float]
    rank: int  # 1 + the number of ids the model scores above the true object


@torch.no_grad()
def evaluate_encoder(model: TinyEncoder, tokenizer: EncoderTokenizer, documents: Sequence[str], seed: int = 1000,
                     mask_prob: float = 0.15, max_sentences: int = 5) -> dict[str, float]:
    """Validation metrics on one NSP pair and one SOP pair per document, drawn with ``seed``.

    ``nsp_accuracy`` and ``sop_accuracy``: the pair head's argmax against the labels (for a model
    trained on NSP, its "is next" read as "in order"); ``mlm_loss`` (nats) and ``mlm_accuracy``
    (top-1) at the positions BERT's masking selects in the NSP pairs, ``mlm_positions`` of them.
    """
    docs, device = sentence_ids(tokenizer, documents), next(model.parameters()).device
    generator = torch.Generator().manual_seed(seed)
    metrics: dict[str, float] = {}
    for objective in PAIR_OBJECTIVES:
        batch = make_pair_batch(tokenizer, docs, objective, generator, max_sentences, model.context_length)
        segment_ids = batch.segment_ids.to(device)  # (N, L)
        predicted = model(batch.ids.to(device), segment_ids).pair_logits.argmax(dim=-1).cpu()  # (N,)
        metrics[f"{objective}_accuracy"] = (predicted == batch.labels).double().mean().item()
        if objective == "nsp":
            inputs, labels = mask_for_mlm(tokenizer, batch.ids, mask_prob, generator)  # drawn on the CPU
            logits = model(inputs.to(device), segment_ids).mlm_logits.double().cpu()  # (N, L, V)
            selected = labels != IGNORE_INDEX  # (N, L)
            metrics["mlm_loss"] = cross_entropy(logits, labels).item()
            metrics["mlm_accuracy"] = (logits.argmax(-1)[selected] == labels[selected]).double().mean().item()
            metrics["mlm_positions"] = int(selected.sum())
    return metrics


@torch.no_grad()
def fact_fills(model: TinyEncoder, tokenizer: EncoderTokenizer, facts: Sequence[Fact],
               generator: DocumentGenerator, k: int = 5) -> list[FactFill]:
    """The encoder's top-k fills of each fact's object, masked in the sentence `fact_prompt` writes.

    Each probe is one segment, ``[CLS] Rozi lives in [MASK]. [SEP]``: the person's name is the
    only clue, so a correct fill is a fact the model has memorised. (A job's article, "a" or "an",
    stays in the probe, as in the corpus.) Every object must be one token of the tokenizer.
    """
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= tokenizer.vocab_size:
        raise ValueError(f"k must be an int in [1, {tokenizer.vocab_size}], got {k!r}")
    if not facts:
        raise ValueError("facts must not be empty")
    rows, targets = [], []
    for fact in facts:
        prompt, answer = generator.fact_prompt(fact)
        target = tokenizer.encode(fact.object)
        if len(target) != 1:
            raise ValueError(f"the object of {fact} must be one token, got {len(target)}")
        ids = tokenizer.encode(prompt + answer)
        position = len(ids) - 1 - ids[::-1].index(target[0])  # the object's token, the last one it appears at
        ids[position] = tokenizer.mask_id
        rows.append((tokenizer.pack(ids)[0], position + 1))  # + 1: [CLS] comes first
        targets.append(target[0])
    batch = torch.full((len(rows), max(len(r) for r, _ in rows)), tokenizer.pad_id, dtype=torch.long)  # (N, L)
    for i, (row, _) in enumerate(rows):
        batch[i, :len(row)] = torch.tensor(row)
    logits = model(batch.to(next(model.parameters()).device)).mlm_logits.cpu()  # (N, L, V)
    at_mask = logits[torch.arange(len(rows)), torch.tensor([p for _, p in rows])].double()  # (N, V)
    probs = torch.softmax(at_mask, dim=-1)  # (N, V)
    top = probs.topk(k, dim=-1)
    target_probs = probs[torch.arange(len(rows)), torch.tensor(targets)]  # (N,)
    ranks = 1 + (probs > target_probs[:, None]).sum(dim=-1)  # (N,)
    return [FactFill(fact, tokenizer.decode(row[1:-1]), [s.strip() for s in tokenizer.token_strings(ids)],
                     values.tolist(), int(rank))
            for fact, (row, _), ids, values, rank in zip(facts, rows, top.indices, top.values, ranks)]


def fact_fill_accuracy(fills: Sequence[FactFill], k: int = 1) -> float:
    """Fraction of the fills whose true object is among the k most probable tokens."""
    if not fills:
        raise ValueError("fills must not be empty")
    return sum(f.rank <= k for f in fills) / len(fills)


@torch.no_grad()
def pseudo_log_likelihood(model: TinyEncoder, tokenizer: EncoderTokenizer, text: str) -> float:
    """The pseudo-log-likelihood of ``text`` under a masked LM (Salazar et al. 2020), in nats.

    ``text`` is one segment, ``[CLS] text [SEP]``; each of its T tokens is masked in turn, and the
    log-probabilities the model gives the original tokens at their masked positions are added up. The
    T masked copies run as one batch. Not a log-probability of the text: each term conditions on every
    other token, so the terms do not chain into a distribution over texts.
    """
    text = string(text, "text", nonempty=True)
    ids = tokenizer.encode(text)
    if len(ids) + 2 > model.context_length:
        raise ValueError(f"text must fit in the context_length {model.context_length} with [CLS] and [SEP], "
                         f"got {len(ids)} tokens")
    T, rows = len(ids), torch.arange(len(ids))
    positions = rows + 1  # (T,) each token's position after [CLS]
    copies = torch.tensor(tokenizer.pack(ids)[0]).repeat(T, 1)  # (T, T + 2)
    copies[rows, positions] = tokenizer.mask_id  # copy i masks token i
    logits = model(copies.to(next(model.parameters()).device)).mlm_logits.cpu()  # (T, T + 2, V)
    log_probs = torch.log_softmax(logits[rows, positions].double(), dim=-1)  # (T, V)
    return log_probs[rows, torch.tensor(ids)].sum().item()
