"""BERT-style pretraining objectives: masked language modelling, next sentence prediction (NSP) and
sentence-order prediction (SOP), as data transformations that produce inputs and labels.

`mlm_mask` follows BERT (Devlin et al. 2019, section 3.1): each ordinary (non-special) position is
selected with probability p = 0.15; a selected position becomes [MASK] with probability 0.8, a
random token with probability 0.1, and stays unchanged with probability 0.1. Its label is the
original token; every other position gets the label -100, which `course_lib.losses.cross_entropy`
ignores, so the loss is computed on the selected positions only. Two details differ from BERT's
released data script and are deliberate: selection is one independent draw per position (as in
Hugging Face's data collator) rather than exactly round(0.15 n) positions per sequence, and random
tokens are drawn uniformly from the non-special ids only (BERT draws from the whole vocabulary),
so a random replacement is never [MASK], [CLS] or padding. A random draw may return the original
token, so about 10% + 10%/V of the selected positions show their own token.

NSP and SOP pairs are built from documents given as sequences of sentences. The sampling, exactly:

1. Each document is cut into consecutive chunks of `max_sentences` sentences (the last chunk keeps
   the remainder; a last chunk of a single sentence is dropped).
2. For each chunk of m >= 2 sentences, a split point s is drawn uniformly from 1..m-1: segment A is
   the first s sentences, segment B the remaining m - s. Segments are multi-sentence spans, as in
   BERT, not single sentences.
3. A fair coin decides the label. NSP: heads keeps B (label 0, "is next"); tails replaces B by
   len(B) consecutive sentences of another document, chosen uniformly among the others, starting at
   a uniform position (the whole document if it is shorter); label 1, "not next". SOP (Lan et al.
   2020, ALBERT): heads keeps (A, B) (label 0, "in order"), tails gives (B, A) (label 1, "swapped").

Labels follow the Hugging Face convention (0 = is next / in order). NSP negatives differ from their
context in topic as well as in coherence; SOP negatives share the topic, so only order tells them
apart.

BERT's pretraining data, for the course's tiny encoder (`course_lib.models.TinyEncoder`, trained by
`course_lib.zoo`): `split_sentences` cuts a corpus document back into its sentences and
`sentence_ids` encodes each one with the encoder's tokenizer (`course_lib.tokenization.EncoderTokenizer`); `pack_pairs`
writes NSP or SOP pairs as ``[CLS] A [SEP] B [SEP]``, right-padded with [PAD], with segment ids 0
and 1 (`PairBatch`), and `make_pair_batch` draws one pair per chunk of every document and packs
them; `mask_for_mlm` applies `mlm_mask` to packed ids, never selecting [CLS], [SEP] or [PAD]; and
`pretraining_losses` computes BERT's two losses, the masked-LM cross-entropy at the selected
positions and the pair cross-entropy from [CLS], whose sum BERT minimises.

Left out: BERT's token-length budget (chunks are counted in sentences), its reuse of the
sentences a negative pair leaves out, whole-word and span masking, and dynamic re-masking per epoch
(call `mlm_mask` again on each pass for that).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Generic, NamedTuple, TypeVar

import torch

from course_lib.losses import IGNORE_INDEX, cross_entropy
from course_lib.models import TinyEncoder
from course_lib.tokenization import EncoderTokenizer
from course_lib.validation import int_in_range, number_in_range, positive_int, type_name

__all__ = [
    "IS_NEXT", "NOT_NEXT", "IN_ORDER", "SWAPPED", "MASK_FRACTION", "RANDOM_FRACTION", "SegmentPair", "mlm_mask",
    "make_nsp_pairs", "make_sop_pairs", "PAIR_OBJECTIVES", "PairBatch", "split_sentences", "sentence_ids",
    "pack_pairs", "make_pair_batch", "mask_for_mlm", "pretraining_losses",
]

T = TypeVar("T")

IS_NEXT, NOT_NEXT = 0, 1
IN_ORDER, SWAPPED = 0, 1
MASK_FRACTION, RANDOM_FRACTION = 0.8, 0.1  # of the selected positions; the remaining 0.1 is kept


@dataclass(frozen=True)
class SegmentPair(Generic[T]):
    """Two segments (lists of sentences), the label, and the index of the document of each."""

    first: list[T]
    second: list[T]
    label: int
    documents: tuple[int, int]


def mlm_mask(
    ids: torch.Tensor,
    vocab_size: int,
    mask_id: int,
    special_ids: Iterable[int],
    p: float = 0.15,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT's masking of token ids (any shape): returns (inputs, labels), both of ids.shape.

    Special ids (and `mask_id`, which always counts as special) are never selected and never used
    as random replacements. `generator` (on ids.device) makes the draw reproducible.
    """
    special = _special_table(ids, vocab_size, mask_id, special_ids, p)  # (V,)
    shape, device = ids.shape, ids.device
    selected = (torch.rand(shape, generator=generator, device=device) < p) & ~special[ids]  # (...)
    action = torch.rand(shape, generator=generator, device=device)  # (...)
    to_mask = selected & (action < MASK_FRACTION)
    to_random = selected & (action >= MASK_FRACTION) & (action < MASK_FRACTION + RANDOM_FRACTION)
    ordinary = (~special).nonzero().squeeze(1)  # (V_ordinary,)
    random_tokens = ordinary[torch.randint(len(ordinary), shape, generator=generator, device=device)]  # (...)
    inputs = torch.where(to_mask, mask_id, torch.where(to_random, random_tokens, ids))  # (...)
    labels = torch.where(selected, ids, IGNORE_INDEX)  # (...)
    return inputs, labels


def make_nsp_pairs(
    documents: Sequence[Sequence[T]], generator: torch.Generator | None = None, max_sentences: int = 4
) -> list[SegmentPair[T]]:
    """Next-sentence-prediction pairs, sampled as in the module docstring (labels IS_NEXT / NOT_NEXT)."""
    _check_documents(documents, max_sentences)
    if len(documents) < 2:
        raise ValueError(f"NSP negatives come from another document: documents must hold at least 2, "
                         f"got {len(documents)}")
    pairs = []
    for d, first, second in _split_chunks(documents, generator, max_sentences):
        if _coin(generator):
            pairs.append(SegmentPair(first, second, IS_NEXT, (d, d)))
            continue
        other = _randint(len(documents) - 1, generator)
        other += other >= d  # uniform over the documents other than d
        doc = documents[other]
        length = min(len(second), len(doc))
        start = _randint(len(doc) - length + 1, generator)
        pairs.append(SegmentPair(first, list(doc[start:start + length]), NOT_NEXT, (d, other)))
    return pairs


def make_sop_pairs(
    documents: Sequence[Sequence[T]], generator: torch.Generator | None = None, max_sentences: int = 4
) -> list[SegmentPair[T]]:
    """Sentence-order-prediction pairs, sampled as in the module docstring (labels IN_ORDER / SWAPPED)."""
    _check_documents(documents, max_sentences)
    pairs = []
    for d, first, second in _split_chunks(documents, generator, max_sentences):
        if _coin(generator):
            pairs.append(SegmentPair(first, second, IN_ORDER, (d, d)))
        else:
            pairs.append(SegmentPair(second, first, SWAPPED, (d, d)))
    return pairs


def _split_chunks(
    documents: Sequence[Sequence[T]], generator: torch.Generator | None, max_sentences: int
) -> Iterator[tuple[int, list[T], list[T]]]:
    """Steps 1 and 2 of the sampling: (document index, segment A, segment B) for every chunk."""
    for d, doc in enumerate(documents):
        for start in range(0, len(doc), max_sentences):
            chunk = list(doc[start:start + max_sentences])
            if len(chunk) < 2:
                continue
            split = 1 + _randint(len(chunk) - 1, generator)
            yield d, chunk[:split], chunk[split:]


def _randint(high: int, generator: torch.Generator | None) -> int:
    """A uniform integer in [0, high)."""
    return int(torch.randint(high, (1,), generator=generator).item())


def _coin(generator: torch.Generator | None) -> bool:
    return _randint(2, generator) == 0


def _check_documents(documents: Sequence[Sequence[T]], max_sentences: int) -> None:
    int_in_range(max_sentences, "max_sentences", 2)  # two segments
    if isinstance(documents, str) or not isinstance(documents, Sequence):
        raise TypeError(f"documents must be a sequence of documents (each a sequence of sentences), "
                        f"got {type_name(documents)}")
    if len(documents) == 0:
        raise ValueError("documents must be a non-empty sequence of documents (each a sequence of sentences)")
    for d, doc in enumerate(documents):
        if isinstance(doc, str) or not isinstance(doc, Sequence):
            raise TypeError(f"documents[{d}] must be a sequence of sentences, got {type_name(doc)}")
        if len(doc) < 2:
            raise ValueError(f"documents[{d}] has {len(doc)} sentence(s); NSP and SOP pairs need at least 2")


def _special_table(
    ids: torch.Tensor, vocab_size: int, mask_id: int, special_ids: Iterable[int], p: float
) -> torch.Tensor:
    """Validate the inputs of `mlm_mask`; returns a (vocab_size,) bool table of special ids."""
    vocab_size = positive_int(vocab_size, "vocab_size")
    if not isinstance(ids, torch.Tensor) or ids.dtype != torch.long:
        what = ids.dtype if isinstance(ids, torch.Tensor) else type_name(ids)
        raise TypeError(f"ids must be a LongTensor (torch.long) of token ids, got {what}")
    if ids.numel() and not (int(ids.min()) >= 0 and int(ids.max()) < vocab_size):
        raise ValueError(f"ids must lie in [0, vocab_size) = [0, {vocab_size}), got values in "
                         f"[{int(ids.min())}, {int(ids.max())}]")
    number_in_range(p, "p", 0.0, 1.0, low_open=True, high_open=True)
    special_ids = [int_in_range(mask_id, "mask_id", 0, vocab_size - 1)] + [
        int_in_range(s, f"special_ids[{i}]", 0, vocab_size - 1) for i, s in enumerate(special_ids)]
    special = torch.zeros(vocab_size, dtype=torch.bool, device=ids.device)
    special[special_ids] = True
    if bool(special.all()):
        raise ValueError("every id is special: no ordinary token is left to mask or to draw at random")
    return special


# --- BERT's pretraining data: sentences, packed pairs, masking, the two losses -----------------------

PAIR_OBJECTIVES = ("nsp", "sop")


class PairBatch(NamedTuple):
    """Packed sentence pairs: ``[CLS] A [SEP] B [SEP]`` right-padded with [PAD], and their labels."""

    ids: torch.Tensor  # (N, L)
    segment_ids: torch.Tensor  # (N, L), 0 for [CLS] A [SEP], 1 for B [SEP] (and padding)
    labels: torch.Tensor  # (N,) NSP: 0 is next, 1 random; SOP: 0 in order, 1 swapped


def split_sentences(document: str) -> list[str]:
    """A corpus document's sentences: it ends with "." and its sentences are joined by single spaces."""
    if not isinstance(document, str) or not document.endswith("."):
        raise ValueError(f"document must be a str that ends with '.', got {document!r:.80}")
    return [piece + "." for piece in document[:-1].split(". ")]


def sentence_ids(tokenizer: EncoderTokenizer, documents: Sequence[str]) -> list[list[tuple[int, ...]]]:
    """Every document as a list of sentences, each sentence as its token ids (`EncoderTokenizer.encode`)."""
    return [[tuple(tokenizer.encode(s)) for s in split_sentences(d)] for d in documents]


def pack_pairs(tokenizer: EncoderTokenizer, pairs: Sequence[SegmentPair], context_length: int) -> PairBatch:
    """Pack NSP or SOP pairs (`make_nsp_pairs`, `make_sop_pairs`) into a right-padded batch.

    A pair's sentences may be strings (encoded here) or token ids (`sentence_ids`); encoding a
    segment's sentences one by one gives the ids of the segment's text, since each keeps its space.
    """
    if not pairs:
        raise ValueError("pairs must not be empty")
    packed = [tokenizer.pack(_segment(tokenizer, p.first), _segment(tokenizer, p.second)) for p in pairs]
    longest = max(len(ids) for ids, _ in packed)
    if longest > context_length:
        raise ValueError(f"a pair has {longest} tokens, more than context_length {context_length}")
    ids = torch.full((len(packed), longest), tokenizer.pad_id, dtype=torch.long)  # (N, L)
    segments = torch.zeros(len(packed), longest, dtype=torch.long)  # (N, L)
    for row, (pair_ids, pair_segments) in enumerate(packed):
        ids[row, :len(pair_ids)] = torch.tensor(pair_ids)
        segments[row, :len(pair_segments)] = torch.tensor(pair_segments)
    return PairBatch(ids, segments, torch.tensor([p.label for p in pairs]))  # labels (N,)


def _segment(tokenizer: EncoderTokenizer, sentences: Sequence[str | Sequence[int]]) -> list[int]:
    return [i for s in sentences for i in (tokenizer.encode(s) if isinstance(s, str) else s)]


def make_pair_batch(tokenizer: EncoderTokenizer, documents: Sequence[Sequence[tuple[int, ...]]], objective: str,
                    generator: torch.Generator, max_sentences: int, context_length: int) -> PairBatch:
    """One NSP or SOP pair per chunk of every document (`sentence_ids` form), packed."""
    if objective not in PAIR_OBJECTIVES:
        raise ValueError(f"objective must be one of {PAIR_OBJECTIVES}, got {objective!r}")
    make = make_nsp_pairs if objective == "nsp" else make_sop_pairs
    return pack_pairs(tokenizer, make(documents, generator, max_sentences), context_length)


def mask_for_mlm(tokenizer: EncoderTokenizer, ids: torch.Tensor, p: float = 0.15,
                 generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT's 80/10/10 masking (`mlm_mask`) of packed ids; [CLS], [SEP], [PAD] never selected."""
    specials = (tokenizer.cls_id, tokenizer.sep_id, tokenizer.pad_id)
    return mlm_mask(ids, tokenizer.vocab_size, tokenizer.mask_id, specials, p, generator)


def pretraining_losses(model: TinyEncoder, inputs: torch.Tensor, segment_ids: torch.Tensor,
                       mlm_labels: torch.Tensor, pair_labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(MLM loss, pair loss), both mean cross-entropies in nats; BERT minimises their sum.

    The MLM head runs only at the selected positions (labels != -100): the other positions carry
    no loss, so their logits need not be computed (BERT's code gathers the same positions).
    """
    h = model.encode(inputs, segment_ids)  # (B, T, d)
    selected = mlm_labels != IGNORE_INDEX  # (B, T)
    mlm_loss = cross_entropy(model.mlm_logits(h[selected]), mlm_labels[selected])  # logits (n_selected, V)
    return mlm_loss, cross_entropy(model.pair_logits(h), pair_labels)


