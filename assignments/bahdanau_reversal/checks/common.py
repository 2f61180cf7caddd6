"""Shared pieces of the visible checks of `bahdanau_reversal`: the special ids (<PAD> = 0,
<SOS> = 1, <EOS> = 2, <UNK> = 3), the sizes V, E, H of the small models the checks build, and
the probe-side helpers that call the student's code: unpacking the tuple a forward returns,
building Seq2SeqWithAttention from the student's classes, reading returned ids as a list,
drawing padded batches, and requiring a returned loss to be a finite number. It holds no check.
"""

from __future__ import annotations

import math

import torch

from autograder.sandbox.wire import describe
from autograder.toolkit.probe import ContractError, build_module
from autograder.toolkit.verdict import Mismatch

PAD, SOS, EOS, UNK = 0, 1, 2, 3
SPECIALS = {"<PAD>": PAD, "<SOS>": SOS, "<EOS>": EOS, "<UNK>": UNK}
V, E, H = 13, 8, 16  # the small models of the visible checks: vocabulary, embedding, hidden sizes


# ---- probe side: calling the student's code ---------------------------------------------

def items(value, count: int, what: str) -> list:
    """The ``count`` items of a tuple a forward must return, or a ContractError."""
    if not isinstance(value, (tuple, list)) or len(value) != count:
        got = f"one tensor of shape {tuple(value.shape)}" if isinstance(value, torch.Tensor) else describe(value)
        raise ContractError(f"{what} should return a tuple of {count} items", expected=f"a tuple of {count} items",
                            got=got)
    return list(value)


def build_seq2seq(student, device: str, vocab_size: int, embed_dim: int, hidden_dim: int, **options):
    """Seq2SeqWithAttention(Encoder(...), Decoder(...)) from the student's classes."""
    encoder = build_module(student, device, "Encoder", vocab_size, embed_dim, hidden_dim, **options)
    decoder = build_module(student, device, "Decoder", vocab_size, embed_dim, hidden_dim, **options)
    return build_module(student, device, "Seq2SeqWithAttention", encoder, decoder)


def id_list(value):
    """Returned ids as a list of ints where they are a list/tuple of ints or a 1-D int tensor;
    anything else unchanged, for the verdict to describe."""
    if isinstance(value, torch.Tensor) and value.dim() == 1 and not value.is_floating_point():
        return [int(i) for i in value.tolist()]
    if isinstance(value, (list, tuple)) and all(isinstance(i, int) or (isinstance(i, torch.Tensor) and i.numel() == 1
                                                                       and not i.is_floating_point()) for i in value):
        return [int(i) for i in value]
    return value


def random_batch(generator, lengths: list[int], width: int, vocab_size: int, prefix: int | None = None):
    """(B, width) ids: row b holds lengths[b] ids (words 4.., then <EOS> last when prefix is None),
    padded with 0; with ``prefix`` (<SOS>) the row starts with it instead."""
    rows = torch.zeros(len(lengths), width, dtype=torch.long)
    for b, length in enumerate(lengths):
        words = torch.randint(4, vocab_size, (length,), generator=generator)
        if prefix is None:
            words[-1] = EOS
        else:
            words[0], words[-1] = prefix, EOS
        rows[b, :length] = words
    return rows


def require_number(value, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise Mismatch(f"{what} should return a finite number (a Python float; use loss.item())",
                       expected="a finite float", got=describe(value))
    return float(value)
