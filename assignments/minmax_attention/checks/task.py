"""The max/min task as the grader knows it, shared by the `minmax_attention` checks: the token
constants, every example with its label, one code per example, how an example is shown, and
random draws of distinct examples.
"""

from __future__ import annotations

import torch

NUM_VALUES = 128  # the numbers 0 .. 127 (and the 128 output classes)
MAX_TOKEN, MIN_TOKEN, SEP_TOKEN = 128, 129, 130
VOCAB_SIZE = 131
N_EXAMPLES = 2 * NUM_VALUES * NUM_VALUES  # 32768
OPS = {MAX_TOKEN: "max", MIN_TOKEN: "min"}


# ---- the task itself, as the grader knows it ---------------------------------------------

def all_examples() -> tuple[torch.Tensor, torch.Tensor]:
    """Every example (a, op, b, SEP), max examples first, and its label: (32768, 4), (32768,)."""
    a, b = torch.meshgrid(torch.arange(NUM_VALUES), torch.arange(NUM_VALUES), indexing="ij")
    a, b = a.flatten(), b.flatten()
    x = torch.cat([torch.stack([a, torch.full_like(a, op), b, torch.full_like(a, SEP_TOKEN)], dim=1)
                   for op in (MAX_TOKEN, MIN_TOKEN)])
    return x, labels_of(x)


def labels_of(x: torch.Tensor) -> torch.Tensor:
    """max(a, b) for rows with MAX_TOKEN, min(a, b) otherwise."""
    a, b = x[:, 0], x[:, 2]
    return torch.where(x[:, 1] == MAX_TOKEN, torch.maximum(a, b), torch.minimum(a, b))


def codes(x: torch.Tensor) -> torch.Tensor:
    """One integer per valid example (a, op, b, SEP), 0 .. 32767, max examples first."""
    return (x[:, 1] - MAX_TOKEN) * NUM_VALUES * NUM_VALUES + x[:, 0] * NUM_VALUES + x[:, 2]


def show(example) -> str:
    """(17, max, 93, SEP) for a row of tokens."""
    names = {MAX_TOKEN: "max", MIN_TOKEN: "min", SEP_TOKEN: "SEP"}
    return "(" + ", ".join(names.get(int(token), str(int(token))) for token in example) + ")"


def random_examples(count: int, generator: torch.Generator) -> torch.Tensor:
    """``count`` distinct examples drawn at random, as (count, 4) int64."""
    x, _ = all_examples()
    return x[torch.randperm(N_EXAMPLES, generator=generator)[:count]]
