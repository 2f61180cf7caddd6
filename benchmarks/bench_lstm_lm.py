"""Forward + backward time of the lstm_lm reference models: the from-scratch LSTM (a Python loop
over LSTMCell steps) and the attention model against nn.LSTM, same batch and sizes, one torch
thread (as the grader's worker runs). Median of N timed runs after a few warm-up runs.

    python benchmarks/bench_lstm_lm.py [--runs 20] [--batch 64] [--seq-len 32] [--embed 32] [--hidden 128]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from medians import print_medians  # benchmarks/medians.py (scripts run from this folder)

from autograder.toolkit.check import import_file

ROOT = Path(__file__).resolve().parent.parent
VOCAB = 77  # the character vocabulary of the grader's corpus
MODELS = ["LSTMLanguageModel", "ScratchLSTMLanguageModel", "AttentionLSTMLanguageModel"]


def step_seconds(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """One forward + NLL + backward, timed."""
    started = time.perf_counter()
    log_probs = model(x)[0]
    torch.nn.functional.nll_loss(log_probs.reshape(-1, VOCAB), y.reshape(-1)).backward()
    seconds = time.perf_counter() - started
    model.zero_grad(set_to_none=True)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--seq-len", type=int, default=32)
    parser.add_argument("--embed", type=int, default=32)
    parser.add_argument("--hidden", type=int, default=128)
    args = parser.parse_args()
    torch.set_num_threads(1)
    reference = import_file(ROOT / "solutions" / "lstm_lm.py", "_bench_lstm_lm_reference")
    generator = torch.Generator().manual_seed(0)
    x = torch.randint(0, VOCAB, (args.batch, args.seq_len), generator=generator)
    y = torch.randint(0, VOCAB, (args.batch, args.seq_len), generator=generator)
    samples: dict[str, list[float]] = {}
    for name in MODELS:
        torch.manual_seed(0)
        model = getattr(reference, name)(VOCAB, args.embed, args.hidden)
        for _ in range(args.warmup):
            step_seconds(model, x, y)
        samples[name] = [step_seconds(model, x, y) for _ in range(args.runs)]
    baseline = sorted(samples[MODELS[0]])[len(samples[MODELS[0]]) // 2]
    title = (f"lstm_lm forward + backward, batch {args.batch} x {args.seq_len} characters, E={args.embed}, "
             f"H={args.hidden}, V={VOCAB}, 1 thread: median of {args.runs} runs")
    print_medians(title, samples, first="model", compare="x nn.LSTM", digits=4,
                  compared=lambda name, median: f"{median / baseline:.1f}x")


if __name__ == "__main__":
    main()
