"""Text for trained checks: the grader's character ids, its train / held-out split, its
next-character windows, and the held-out loss of models that need no network.

Used in the grading process (the hidden text is read there and the targets are cut there) and
by visible checks that train on a small text of their own, so it ships with the public tests.
"""

from __future__ import annotations

import torch


def character_ids(text: str) -> tuple[torch.Tensor, int]:
    """``text`` as int64 ids over its sorted distinct characters, and the vocabulary size."""
    chars = sorted(set(text))
    index = {char: i for i, char in enumerate(chars)}
    return torch.tensor([index[char] for char in text], dtype=torch.long), len(chars)


def split_ids(text: str, train_share: float = 0.9) -> tuple[torch.Tensor, torch.Tensor, int]:
    """(train ids, held-out ids, V): the vocabulary comes from the whole text, so nothing held
    out is out of vocabulary; the first ``train_share`` of the text trains."""
    ids, vocab_size = character_ids(text)
    cut = int(train_share * len(ids))
    return ids[:cut], ids[cut:], vocab_size


def next_char_windows(ids: torch.Tensor, length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Consecutive, non-overlapping windows: inputs X (N, length) and targets Y (N, length),
    Y[i, t] the id after X[i, t]."""
    count = (len(ids) - 1) // length
    return (ids[:count * length].reshape(count, length).clone(),
            ids[1:count * length + 1].reshape(count, length).clone())


def ngram_losses(train: torch.Tensor, inputs: torch.Tensor, targets: torch.Tensor,
                 vocab_size: int) -> dict[str, float]:
    """Mean cross-entropy (nats) on ``targets`` of two models counted on ``train`` (add-0.1
    smoothing): character frequencies only, and the previous character only (``inputs`` holds
    the id before each target). A trained check's threshold must beat the first clearly."""
    unigram = torch.bincount(train, minlength=vocab_size).to(torch.float64) + 0.1
    pairs = torch.full((vocab_size, vocab_size), 0.1, dtype=torch.float64)
    pairs.index_put_((train[:-1], train[1:]), torch.ones(len(train) - 1, dtype=torch.float64), accumulate=True)
    targets, inputs = targets.reshape(-1), inputs.reshape(-1)
    return {"unigram (character frequencies)": float(-(unigram / unigram.sum()).log()[targets].mean()),
            "bigram (previous character only)": float(-(pairs / pairs.sum(1, keepdim=True)).log()[inputs, targets].mean())}
