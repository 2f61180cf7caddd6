"""Helpers shared by the `char_rnn` checks: the cells compared, unpacking a forward call's
(logits, hidden) pair, running recurrent layers without cuDNN, and the cross-entropy the grading
process computes itself from the logits that come back.
"""

from __future__ import annotations

import torch

from autograder.sandbox.wire import describe
from autograder.toolkit.probe import ContractError

CELLS = ("rnn", "gru", "lstm")


def forward_pair(output, call: str):
    """(logits, hidden) from a forward call, or a ContractError (probe side)."""
    if not isinstance(output, (tuple, list)) or len(output) != 2:
        raise ContractError(f"{call} should return a pair (logits, hidden)", expected="(logits, hidden)",
                            got=describe(output))
    return output


def exact_rnn():
    """A context in which PyTorch runs recurrent layers without cuDNN: on a GPU cuDNN may use
    TF32 (about 1e-3 relative error), too coarse for comparing two ways of computing the same
    logits. The flags are restored afterwards; on a CPU nothing changes (probe side)."""
    return torch.backends.cudnn.flags(enabled=False)


def cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> float:
    """Mean cross-entropy in nats, computed here in float64 (grading side)."""
    log_probs = torch.log_softmax(logits.to(torch.float64), dim=-1)
    return float(-log_probs.gather(-1, targets.unsqueeze(-1)).mean())

