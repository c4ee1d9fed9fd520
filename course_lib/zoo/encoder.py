"""The tiny encoder (`ENCODER_ZOO`, `train_tiny_encoder`): BERT's masked LM and a sentence-pair objective.

A `course_lib.models.TinyEncoder` trained as BERT was, masked LM (15% of positions, 80/10/10) plus
next sentence prediction, on pairs of sentence spans of the corpus documents
(`course_lib.objectives`). Its own BPE has 560 ids, enough for every object of the world's facts to
be one token (the 512-id BPE of `tiny_gpt` splits ten of the world's words), so one [MASK] asks for
one fact; [CLS], [SEP], [MASK] and [PAD] follow as ids 560-563
(`course_lib.tokenization.EncoderTokenizer`). Weights start at BERT's N(0, 0.02) rescaled to the
width, 0.02 sqrt(768 / d_model): with a plain 0.02 at width 64, the same 2,000 steps ended at 55%
validation NSP accuracy (95% rescaled) and filled 28% of the facts (71%). Training takes about 80
seconds of one core. The card records validation NSP accuracy, the NSP head's accuracy on SOP
pairs, MLM loss and accuracy, and how many of the world's facts it fills in
(`course_lib.evaluation`). Files: ``tiny_encoder.safetensors``, ``tiny_encoder.json``,
``tiny_encoder_tokenizer.json`` (the BPE). Load them with `load_tiny_encoder`. A second
checkpoint, ``tiny_encoder_sop``, is trained identically with ALBERT's sentence-order prediction in
place of NSP, so that the two pair objectives can be compared on the same model.

Left out: whole-word masking, static masking in 10 copies (each batch is masked afresh, as RoBERTa).
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from course_lib.checkpoints import checkpoint_paths, load_card, read_weights, write_checkpoint
from course_lib.datasets import WORLD_FILE, data_file, load_corpus, load_generator, sha256
from course_lib.evaluation import evaluate_encoder, fact_fill_accuracy, fact_fills
from course_lib.models import TinyEncoder, TinyEncoderConfig
from course_lib.objectives import PAIR_OBJECTIVES, make_pair_batch, mask_for_mlm, pretraining_losses, sentence_ids
from course_lib.tokenization import SPECIAL_TOKENS, BPETokenizer, EncoderTokenizer
from course_lib.training import TrainingConfig, deterministic, learning_rate, train_loop
from course_lib.validation import positive_int
from course_lib.zoo.common import Recipe, adamw, corpus_hashes, train_tokenizer

__all__ = ["ENCODER_ZOO", "RECIPES", "EncoderTrainConfig", "load_tiny_encoder", "save_tiny_encoder",
           "train_tiny_encoder"]


@dataclass(frozen=True)
class EncoderTrainConfig(TrainingConfig):
    """A TinyEncoder trained with BERT's masked LM plus NSP (``pair_objective="nsp"``) or ALBERT's SOP."""

    name: str = "tiny_encoder"
    tokenizer_vocab_size: int = 560
    context_length: int = 64
    d_model: int = 64
    n_heads: int = 4
    n_layers: int = 2
    d_ff: int | None = None
    pair_objective: str = "nsp"
    mask_prob: float = 0.15
    max_sentences: int = 5
    batch_size: int = 64
    steps: int = 2000
    learning_rate: float = 2e-3
    weight_decay: float = 0.0
    eval_seed: int = 1000

    FIELD_ORDER = ("name", "tokenizer_vocab_size", "context_length", "d_model", "n_heads", "n_layers", "d_ff",
                   "pair_objective", "mask_prob", "max_sentences", "batch_size", "steps", "learning_rate",
                   "warmup_steps", "final_lr_ratio", "weight_decay", "seed", "eval_seed", "threads")

    def __post_init__(self) -> None:
        super().__post_init__()
        for field in ("tokenizer_vocab_size", "context_length"):
            positive_int(getattr(self, field), field)
        if not self.weight_decay >= 0:
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay!r}")
        if self.pair_objective not in PAIR_OBJECTIVES:
            raise ValueError(f"pair_objective must be one of {PAIR_OBJECTIVES}, got {self.pair_objective!r}")
        if isinstance(self.mask_prob, bool) or not isinstance(self.mask_prob, float) or not 0 < self.mask_prob < 1:
            raise ValueError(f"mask_prob must be a float in (0, 1), got {self.mask_prob!r}")
        if isinstance(self.max_sentences, bool) or not isinstance(self.max_sentences, int) or self.max_sentences < 2:
            raise ValueError(f"max_sentences must be an int >= 2, got {self.max_sentences!r}")
        self.model_config(self.tokenizer_vocab_size + len(SPECIAL_TOKENS))  # the model's own checks

    def model_config(self, vocab_size: int) -> TinyEncoderConfig:
        """The TinyEncoder shape for an `EncoderTokenizer` of ``vocab_size`` ids (the last one, [PAD], masked)."""
        return TinyEncoderConfig(vocab_size=vocab_size, context_length=self.context_length, d_model=self.d_model,
                                 n_heads=self.n_heads, n_layers=self.n_layers, d_ff=self.d_ff,
                                 pad_id=vocab_size - 1)


#: The shipped encoders, by name: MLM plus NSP, as BERT was trained, and MLM plus SOP, as ALBERT was.
ENCODER_ZOO: dict[str, EncoderTrainConfig] = {
    "tiny_encoder": EncoderTrainConfig(),
    "tiny_encoder_sop": EncoderTrainConfig(name="tiny_encoder_sop", pair_objective="sop"),
}


def _pair_batches(tokenizer: EncoderTokenizer, documents: Sequence[Sequence[tuple[int, ...]]],
                  config: EncoderTrainConfig, generator: torch.Generator
                  ) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Endless (ids, segment_ids, labels) of ``config.batch_size`` pairs, each batch trimmed to its longest
    pair; every epoch draws fresh pairs (one per chunk of every document) in a fresh order."""
    while True:
        data = make_pair_batch(tokenizer, documents, config.pair_objective, generator, config.max_sentences,
                               config.context_length)
        order = torch.randperm(len(data.labels), generator=generator)  # (N,)
        for used in range(0, len(order) - config.batch_size + 1, config.batch_size):
            rows = order[used:used + config.batch_size]  # (B,)
            length = int((data.ids[rows] != tokenizer.pad_id).sum(dim=1).max())
            yield data.ids[rows, :length], data.segment_ids[rows, :length], data.labels[rows]  # (B, T), (B, T), (B,)


def train_tiny_encoder(config: EncoderTrainConfig = ENCODER_ZOO["tiny_encoder"], progress: bool = True,
                       data_dir: Path | None = None) -> tuple[TinyEncoder, EncoderTokenizer, dict[str, object]]:
    """Train a TinyEncoder with MLM plus the pair objective on the course corpus, on the CPU.

    Every epoch draws fresh pairs (one per document, `course_lib.objectives`), shuffles them and
    cuts batches, each trimmed to its longest pair; each batch is masked afresh (dynamic masking,
    as RoBERTa; BERT masked its data once, in 10 copies). The loss is the sum of the MLM and pair
    losses (`pretraining_losses`). Returns (model, tokenizer, metrics): `evaluate_encoder` on the
    validation documents, ``fact_accuracy`` and ``fact_top5_accuracy`` (`fact_fills` over the
    world's facts), ``final_mlm_loss`` and ``final_pair_loss`` (training, last 100 steps),
    ``parameters``, ``steps``, ``sequences_seen``, ``train_seconds`` and ``train_cpu_seconds`` (see
    `train_tiny_gpt`), ``threads``, and the sha256 of the corpus and world files.
    """
    if not isinstance(config, EncoderTrainConfig):
        raise ValueError(f"config must be an EncoderTrainConfig, got {config!r}")
    train_docs, val_docs = load_corpus("train", data_dir), load_corpus("val", data_dir)
    with deterministic(config.threads):
        start, start_cpu = time.perf_counter(), time.process_time()
        tokenizer = EncoderTokenizer(train_tokenizer(train_docs, config.tokenizer_vocab_size))
        documents = sentence_ids(tokenizer, train_docs)
        torch.manual_seed(config.seed)
        model = TinyEncoder(config.model_config(tokenizer.vocab_size))
        generator = torch.Generator().manual_seed(config.seed)
        batches = _pair_batches(tokenizer, documents, config, generator)

        def step_losses(step: int) -> dict[str, torch.Tensor]:
            ids, segments, labels = next(batches)  # (B, T), (B, T), (B,)
            inputs, mlm_labels = mask_for_mlm(tokenizer, ids, config.mask_prob, generator)  # (B, T) each
            mlm_loss, pair_loss = pretraining_losses(model, inputs, segments, mlm_labels, labels)
            return {"mlm": mlm_loss, "pair": pair_loss}

        losses = train_loop(model, adamw(model, config), step_losses, config.steps,
                            lambda step: learning_rate(step, config), progress=progress,
                            desc=f"training {config.name}")
        train_seconds, train_cpu_seconds = time.perf_counter() - start, time.process_time() - start_cpu
        metrics: dict[str, object] = evaluate_encoder(model, tokenizer, val_docs, config.eval_seed, config.mask_prob,
                                                      config.max_sentences)
        generator_of_documents = load_generator(data_dir)
        fills = fact_fills(model, tokenizer, generator_of_documents.world.facts(), generator_of_documents)
    mlm_losses, pair_losses = losses["mlm"][-100:], losses["pair"][-100:]
    metrics |= {
        "val_documents": len(val_docs),
        "fact_accuracy": fact_fill_accuracy(fills),
        "fact_top5_accuracy": fact_fill_accuracy(fills, k=5),
        "facts": len(fills),
        "final_mlm_loss": sum(mlm_losses) / len(mlm_losses),
        "final_pair_loss": sum(pair_losses) / len(pair_losses),
        "parameters": model.num_parameters(),
        "steps": config.steps,
        "sequences_seen": config.steps * config.batch_size,
        "train_seconds": train_seconds,
        "train_cpu_seconds": train_cpu_seconds,
        "threads": config.threads,
        "corpus_sha256": corpus_hashes(data_dir) | {WORLD_FILE: sha256(data_file(WORLD_FILE, data_dir))},
    }
    return model, tokenizer, metrics


def save_tiny_encoder(model: TinyEncoder, tokenizer: EncoderTokenizer, config: EncoderTrainConfig,
                      metrics: dict[str, object], zoo_dir: Path | None = None) -> dict[str, Path]:
    """Write the weights, the card (configs, special-token ids, metrics) and the BPE; returns their paths."""
    special = dict(zip(SPECIAL_TOKENS, tokenizer.special_ids))
    return write_checkpoint(model, config, metrics, zoo_dir, tokenizer=tokenizer.bpe, special_tokens=special)


def load_tiny_encoder(name: str = "tiny_encoder", zoo_dir: Path | None = None,
                      device: torch.device | str | None = None) -> tuple[TinyEncoder, EncoderTokenizer]:
    """Load encoder ``name`` (safetensors: no pickle) in eval mode, with its tokenizer."""
    card = load_card(name, zoo_dir)
    paths = checkpoint_paths(name, zoo_dir)
    if "special_tokens" not in card:
        raise ValueError(f"name must be a tiny encoder in {paths['card'].parent} (its card lists special tokens), "
                         f"got {name!r}")
    tokenizer = EncoderTokenizer(BPETokenizer.load(paths["tokenizer"]))
    if card["special_tokens"] != dict(zip(SPECIAL_TOKENS, tokenizer.special_ids)):
        raise ValueError(f"the card of {name!r} lists special ids {card['special_tokens']}, which its tokenizer "
                         f"does not give")
    return read_weights(TinyEncoder(TinyEncoderConfig(**card["model"])), name, zoo_dir, device), tokenizer


#: How ``python -m course_lib.zoo --retrain`` makes each of them.
RECIPES: dict[str, Recipe] = {name: Recipe(config, train_tiny_encoder, save_tiny_encoder)
                              for name, config in ENCODER_ZOO.items()}
