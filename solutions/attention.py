"""Assignment 1: scaled dot-product attention.

Implement the two functions below with plain tensor operations (see handout.md). The
autograder imports this file and calls them; keep their names and signatures.
"""

import math

import torch


def scaled_dot_product_attention(Q, K, V, mask=None):
    """Attention of queries over keys, returning the mixed values and the weights.

    Q: (..., Lq, dk)   K: (..., Lk, dk)   V: (..., Lk, dv)   any number of leading batch dims.
    mask: optional bool tensor broadcastable to (..., Lq, Lk); True where attention is allowed.

    Returns (output (..., Lq, dv), weights (..., Lq, Lk)) with
    weights = softmax(Q K^T / sqrt(dk)) over the last axis, exactly 0 where masked, and a
    fully masked row giving all-zero weights and a zero output (never NaN).
    """
    # BEGIN SOLUTION: scores, masking, softmax over the keys, then the weighted sum of V
    d_k = Q.size(-1)
    scores = Q @ K.transpose(-2, -1) / math.sqrt(d_k)
    if mask is not None:
        # The most negative finite number, not -inf: a fully masked row then stays finite
        # (uniform before re-masking) instead of producing NaN in the forward or backward pass.
        scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
    weights = torch.softmax(scores, dim=-1)
    if mask is not None:
        weights = weights.masked_fill(~mask, 0.0)
    output = weights @ V
    # END SOLUTION
    return output, weights


def softmax_with_and_without_scaling(Q, K):
    """The stability demonstration: softmax of the raw and of the scaled scores.

    Q: (..., Lq, dk)   K: (..., Lk, dk)
    Returns (weights_unscaled, weights_scaled), each (..., Lq, Lk):
    softmax(Q K^T) and softmax(Q K^T / sqrt(dk)) over the last axis.
    """
    # BEGIN SOLUTION: two softmaxes over the same scores, one of them scaled by 1/sqrt(dk)
    scores = Q @ K.transpose(-2, -1)
    weights_unscaled = torch.softmax(scores, dim=-1)
    weights_scaled = torch.softmax(scores / math.sqrt(Q.size(-1)), dim=-1)
    # END SOLUTION
    return weights_unscaled, weights_scaled


if __name__ == "__main__":
    torch.manual_seed(0)
    Q, K, V = torch.randn(2, 4, 8), torch.randn(2, 6, 8), torch.randn(2, 6, 3)
    output, weights = scaled_dot_product_attention(Q, K, V)
    print(output.shape, weights.shape, weights.sum(-1))
