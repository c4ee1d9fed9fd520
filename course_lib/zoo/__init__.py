"""The model zoo: the course's tiny trained models, trained once and shipped in data/zoo/.

Notebooks must run in seconds, so they load a small checkpoint instead of training. Each model
family has a module of its own, with its shipped configurations, the recipe that trains them
deterministically (on `course_lib.training.train_loop` or the family's own fit), and its ``save_*``
and ``load_*`` functions:

- `course_lib.zoo.gpt`: the tiny GPT (`ZOO`, `train_tiny_gpt`, `load_tiny_gpt`);
- `course_lib.zoo.seq2seq`: the GRU encoder-decoders (`SEQ2SEQ_ZOO`, `load_seq2seq`);
- `course_lib.zoo.encoder`: the BERT-style tiny encoder (`ENCODER_ZOO`, `load_tiny_encoder`);
- `course_lib.zoo.arithmetic`: chains of additions, direct and with a scratchpad (`ARITHMETIC_ZOO`, `load_chain_sum`);
- `course_lib.zoo.distill`: small students of the tiny GPT (`DISTILL_ZOO`, `load_student`);
- `course_lib.zoo.moe`: the mixture-of-experts tiny GPT (`MOE_ZOO`, `load_moe_gpt`);
- `course_lib.zoo.finetune`: the tiny GPT fine-tuned on a second world (`FINETUNE_ZOO`, `load_finetuned`);
- `course_lib.zoo.scaling`: the measured scaling curve, a card of losses without weights
  (`SCALING_ZOO`, `load_scaling_curve`);
- `course_lib.zoo.icl`: the in-context learner trained on prompts of demonstrations (`ICL_ZOO`, `load_icl_gpt`);
- `course_lib.zoo.reader`: the tiny GPT trained to answer from passages (`READER_ZOO`, `load_tiny_reader`);
- `course_lib.zoo.common`: what the recipes share (`Recipe`, the BPE trainer, token windows).

The names above are importable from `course_lib.zoo` itself. `RECIPES` maps every shipped model's
name to its `Recipe`; the command line ``python -m course_lib.zoo --retrain [--name NAME] [--zoo-dir
DIR]`` retrains them (all, or one), writes their files and prints the metrics. The files are written
and read by `course_lib.checkpoints` (safetensors: no pickle, no code runs on load).

Determinism: seeded generators, a fixed thread count, deterministic algorithms, CPU
(`course_lib.training.deterministic`). Retraining on the same machine reproduces the checkpoint bit
for bit; on another CPU, float rounding may differ slightly, and the metrics agree to a fraction of
a percent. Training uses one thread: at this size a second thread saved only about 15% per step
with both cores free, and made steps several times slower when another process kept the second
core busy.

Left out: GPU training (the point is a laptop), checkpoint averaging and hyper-parameter search (the
chosen configurations are in each module).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path

from course_lib.checkpoints import load_card  # scripts read cards through the zoo
from course_lib.datasets import sha256
from course_lib.zoo import arithmetic, distill, encoder, finetune, gpt, icl, moe, reader, scaling, seq2seq
from course_lib.zoo.arithmetic import (
    ARITHMETIC_ZOO,
    ArithmeticTrainConfig,
    load_chain_sum,
    save_chain_sum,
    train_chain_sum,
)
from course_lib.zoo.common import Recipe, train_tokenizer
from course_lib.zoo.distill import DISTILL_ZOO, DistillConfig, load_student, save_student, train_student
from course_lib.zoo.encoder import (
    ENCODER_ZOO,
    EncoderTrainConfig,
    load_tiny_encoder,
    save_tiny_encoder,
    train_tiny_encoder,
)
from course_lib.zoo.finetune import FINETUNE_ZOO, FinetuneConfig, load_finetuned, save_finetuned, train_finetune
from course_lib.zoo.gpt import ZOO, TrainConfig, load_tiny_gpt, save_tiny_gpt, train_tiny_gpt
from course_lib.zoo.icl import ICL_ZOO, ICLTrainConfig, evaluate_icl, load_icl_gpt, save_icl_gpt, train_icl_gpt
from course_lib.zoo.moe import MOE_ZOO, MoETrainConfig, load_moe_gpt, save_moe_gpt, train_moe_gpt
from course_lib.zoo.reader import READER_ZOO, ReaderTrainConfig, load_tiny_reader, save_tiny_reader, train_tiny_reader
from course_lib.zoo.scaling import (
    SCALING_ZOO,
    ScalingConfig,
    load_scaling_curve,
    save_scaling_curve,
    train_scaling_curve,
)
from course_lib.zoo.seq2seq import SEQ2SEQ_ZOO, Seq2SeqTrainConfig, load_seq2seq, save_seq2seq, train_seq2seq

__all__ = ["RECIPES", "main"]

#: Every shipped model, by name: how to retrain it.
RECIPES: dict[str, Recipe] = {**gpt.RECIPES, **seq2seq.RECIPES, **encoder.RECIPES, **arithmetic.RECIPES,
                              **distill.RECIPES, **moe.RECIPES, **finetune.RECIPES, **scaling.RECIPES, **icl.RECIPES,
                              **reader.RECIPES}


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m course_lib.zoo --retrain [--name NAME] [--zoo-dir DIR]``: retrain and rewrite checkpoints."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--retrain", action="store_true", help="train and overwrite the checkpoint(s)")
    parser.add_argument("--name", choices=list(RECIPES), help="only this model (default: all)")
    parser.add_argument("--zoo-dir", type=Path, default=None,
                        help="write the checkpoints into this folder (default: zoo/ of the course data folder)")
    args = parser.parse_args(argv)
    if not args.retrain:
        parser.error("nothing to do: pass --retrain")
    for name in [args.name] if args.name else list(RECIPES):
        recipe = RECIPES[name]
        model, extra, metrics = recipe.train(recipe.config, progress=True)
        paths = recipe.save(model, extra, recipe.config, metrics, args.zoo_dir)
        print(json.dumps(metrics, indent=2))
        for path in paths.values():
            print(f"{path}  {path.stat().st_size} bytes  sha256 {sha256(path)}")
