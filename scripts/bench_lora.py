"""One fine-tuning step of a TinyGPT with LoRA adapters against one step of full fine-tuning.

Both models start from the same weights and train on the same batch (B, T) with AdamW through
`course_lib.training.optimizer_step`: forward, cross-entropy of the next token, backward, update.
The LoRA model has adapters of rank r on every linear layer of its blocks (q, k, v, out, fc_in,
fc_out) and everything else frozen. Its backward pass still carries the gradient through every
layer (the adapters sit at every depth), but it skips the weight gradients of the frozen matrices
and of the tied embedding table, and AdamW updates only the adapters; its forward pass does more
(two thin matmuls and an addition per adapted layer). Per model size the script prints:

- the matmul FLOPs of one step (forward and backward, `course_lib.measure.count_flops`): exact,
  the same on every machine;
- the median CPU time of the steps (``time.process_time``: the CPU seconds of all of this
  process's threads, so time the process spends waiting for a busy core is not counted), the two
  models' steps alternating so that both see the same background load;
- the ratios LoRA / full (below 1: LoRA is cheaper).

Usage: python scripts/bench_lora.py [--d-model 64 256] [--n-layers 2] [--batch 32] [--context 64]
[--r 8] [--repeats 20] [--threads N]  (defaults: the zoo TinyGPT's shape and batch, and four times
its width; threads default to course_lib.notebook.runtime.default_threads()).
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time
from collections.abc import Callable

import torch

from course_lib.lora import add_lora, parameter_counts
from course_lib.losses import cross_entropy
from course_lib.measure import count_flops
from course_lib.models import TinyGPT, TinyGPTConfig
from course_lib.notebook.runtime import default_threads
from course_lib.training import optimizer_step
from course_lib.zoo import ZOO

TARGETS = ("q_proj", "k_proj", "v_proj", "out_proj", "fc_in", "fc_out")
LR = 1e-3


def make_models(d_model: int, n_layers: int, vocab_size: int, context_length: int,
                r: int) -> tuple[TinyGPT, TinyGPT]:
    """A TinyGPT and a copy with LoRA adapters (alpha = 2r) on every linear layer of its blocks."""
    torch.manual_seed(0)
    full = TinyGPT(TinyGPTConfig(vocab_size=vocab_size, context_length=context_length, d_model=d_model,
                                 n_heads=4, n_layers=n_layers))
    lora = copy.deepcopy(full)
    add_lora(lora, r=r, alpha=2 * r, targets=TARGETS)
    return full, lora


def make_step(model: TinyGPT, ids: torch.Tensor) -> Callable[[], None]:
    """One AdamW step of next-token training of model's trainable parameters on the batch ids (B, T)."""
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=LR)

    def step() -> None:
        logits = model(ids[:, :-1])  # (B, T-1, V)
        optimizer_step(optimizer, cross_entropy(logits, ids[:, 1:]), LR)

    return step


def median_ms(steps: dict[str, Callable[[], None]], repeats: int, warmup: int = 2) -> dict[str, float]:
    """Median CPU time (ms) of each step, the steps run alternately."""
    times: dict[str, list[float]] = {name: [] for name in steps}
    for i in range(warmup + repeats):
        for name, step in steps.items():
            start = time.process_time()
            step()
            if i >= warmup:
                times[name].append(time.process_time() - start)
    return {name: 1000 * statistics.median(t) for name, t in times.items()}


def main() -> None:
    zoo = ZOO["tiny_gpt"]
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--d-model", type=int, nargs="+", default=[zoo.d_model, 4 * zoo.d_model])
    parser.add_argument("--n-layers", type=int, default=zoo.n_layers)
    parser.add_argument("--vocab", type=int, default=zoo.tokenizer_vocab_size)
    parser.add_argument("--batch", type=int, default=zoo.batch_size)
    parser.add_argument("--context", type=int, default=zoo.context_length)
    parser.add_argument("--r", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads (default: $COURSE_TORCH_THREADS, else 1)")
    args = parser.parse_args()
    threads = default_threads() if args.threads is None else args.threads
    torch.set_num_threads(threads)
    print(f"One AdamW fine-tuning step, batch {args.batch} x {args.context} tokens, {args.n_layers} layers, "
          f"vocab {args.vocab}, LoRA r={args.r} on {', '.join(TARGETS)}; {threads} threads, "
          f"median of {args.repeats}")
    print(f"{'d_model':>8}{'trainable full':>16}{'trainable LoRA':>16}{'GFLOP full':>12}{'GFLOP LoRA':>12}"
          f"{'full (ms)':>11}{'LoRA (ms)':>11}{'LoRA / full: FLOPs':>20}{'time':>7}")
    for d_model in args.d_model:
        full, lora = make_models(d_model, args.n_layers, args.vocab, args.context, args.r)
        ids = torch.randint(0, args.vocab, (args.batch, args.context), generator=torch.Generator().manual_seed(1))
        steps = {"full": make_step(full, ids), "lora": make_step(lora, ids)}
        flops = {name: count_flops(step) / 1e9 for name, step in steps.items()}
        ms = median_ms(steps, args.repeats)
        print(f"{d_model:>8}{parameter_counts(full).trainable:>16,}{parameter_counts(lora).trainable:>16,}"
              f"{flops['full']:>12.3f}{flops['lora']:>12.3f}{ms['full']:>11.1f}{ms['lora']:>11.1f}"
              f"{flops['lora'] / flops['full']:>20.2f}{ms['lora'] / ms['full']:>7.2f}")


if __name__ == "__main__":
    main()
