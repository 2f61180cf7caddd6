"""The grader-made model the `minmax_attention` training checks hand to train_model
(:class:`TinyNetwork`, which records the batches it is fed), and what the grading process
computes from it itself: its loss, one optimizer step, its gradient, how far a step may land
from the grader's, and the checked train_loss list of a history.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from autograder.sandbox.wire import describe
from autograder.toolkit.verdict import Mismatch

from .task import NUM_VALUES, VOCAB_SIZE, labels_of

# ---- train_model, on a grader-made model -------------------------------------------------

class TinyNetwork(nn.Module):
    """A grader-made model with AttentionNetwork's forward signature: each token's embedding
    (131 x 4), the four side by side, a linear layer to the 128 logits. It records every call
    made with gradients enabled (training): the batch, and the parameters at that moment."""

    def __init__(self, state: dict):
        super().__init__()
        self.embedding = nn.Embedding(VOCAB_SIZE, 4)
        self.output = nn.Linear(16, NUM_VALUES)
        self.load_state_dict({key: value.detach().cpu() for key, value in state.items()})
        self.batches, self.snapshots = [], []

    def forward(self, x, return_attention=False):
        if torch.is_grad_enabled():
            self.batches.append(x.detach().cpu().clone())
            self.snapshots.append(self.flat())
        logits = self.output(self.embedding(x).flatten(1))
        if return_attention:
            B, T = x.shape
            return logits, torch.full((B, 1, T, T), 1 / T, device=x.device)
        return logits

    def flat(self) -> torch.Tensor:
        return torch.cat([p.detach().reshape(-1) for p in self.parameters()]).cpu().clone()


def tiny_state(generator: torch.Generator) -> dict[str, torch.Tensor]:
    return {"embedding.weight": torch.randn(VOCAB_SIZE, 4, generator=generator),
            "output.weight": 0.3 * torch.randn(NUM_VALUES, 16, generator=generator),
            "output.bias": 0.1 * torch.randn(NUM_VALUES, generator=generator)}


def tiny_from_flat(flat: torch.Tensor) -> TinyNetwork:
    """A TinyNetwork holding the parameters ``flat`` (as recorded by TinyNetwork.flat)."""
    model = TinyNetwork(tiny_state(torch.Generator().manual_seed(0)))
    torch.nn.utils.vector_to_parameters(flat.to(torch.float32), model.parameters())
    return model




def train_losses(history, epochs: int, call: str) -> list[float]:
    """history["train_loss"]: one finite float per epoch (grading side)."""
    if not isinstance(history, dict):
        raise Mismatch(f"{call} should return a dict {{'train_loss': [...]}}", expected="a dict",
                       got=describe(history))
    values = history.get("train_loss")
    if not isinstance(values, list) or len(values) != epochs:
        raise Mismatch(f"{call}: history['train_loss'] should be a list with one loss per epoch",
                       expected=f"a list of {epochs} floats",
                       got="no such key" if "train_loss" not in history else describe(values))
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in values):
        raise Mismatch(f"{call}: history['train_loss'] should hold finite Python floats (use loss.item())",
                       expected="finite floats", got=", ".join(describe(v) for v in values)[:200])
    return [float(v) for v in values]


def mean_cross_entropy(flat: torch.Tensor, x: torch.Tensor) -> float:
    """The mean cross-entropy of the TinyNetwork with parameters ``flat`` on examples ``x``."""
    with torch.no_grad():
        return float(F.cross_entropy(tiny_from_flat(flat)(x).to(torch.float64), labels_of(x)))


def optimizer_step(state: dict, x: torch.Tensor, optimizer: str, **options) -> dict[str, torch.Tensor]:
    """The parameters after one step of ``optimizer`` ("AdamW", "Adam" or "SGD") on the mean
    cross-entropy of the TinyNetwork ``state`` on ``x`` (grading side, CPU, float32)."""
    model = TinyNetwork(state)
    kind = getattr(torch.optim, optimizer)
    step = kind(model.parameters(), **options)
    loss = F.cross_entropy(model.output(model.embedding(x).flatten(1)), labels_of(x))
    step.zero_grad()
    loss.backward()
    step.step()
    return {name: p.detach().clone() for name, p in model.named_parameters()}


def gradients(state: dict, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """The float64 gradient of the mean cross-entropy at ``state`` (grading side)."""
    model = TinyNetwork(state).double()
    loss = F.cross_entropy(model.output(model.embedding(x).flatten(1)), labels_of(x))
    loss.backward()
    return {name: p.grad.detach().clone() for name, p in model.named_parameters()}


def step_allowance(gradient: torch.Tensor, lr: float, atol: float, eps: float = 1e-8) -> torch.Tensor:
    """How far each parameter may land from the grader's AdamW step. Adam's first step is
    lr * g / (|g| + eps): the same for a loss scaled by s (a sum instead of a mean, clipping)
    except where eps matters, by up to lr * eps / (min(s, 1) |g| + eps); allowed for s >= 0.01.
    Where |g| < 1e-6 its sign (so the step of +-lr) is float32 rounding noise: allowed too."""
    scaled = lr * eps / (0.01 * gradient.abs() + eps)
    return atol + torch.where(gradient.abs() < 1e-6, torch.full_like(scaled, 2.0 * lr), scaled)


def step_error(after: dict, wanted: dict, allowance: dict) -> float:
    """The largest |after - wanted| beyond each coordinate's allowance (<= 0: within it)."""
    return max(float(((after[name].to(torch.float64) - wanted[name].to(torch.float64)).abs()
                      - allowance[name]).max()) for name in wanted)
