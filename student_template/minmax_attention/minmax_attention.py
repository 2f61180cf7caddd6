"""Assignment 6: an attention network that learns min and max.

Fill in the parts marked TODO (see handout.md). The autograder imports this file and calls the
functions and classes below; keep their names and signatures.

Tokens: the numbers 0 .. 127 are their own tokens, MAX_TOKEN = 128, MIN_TOKEN = 129,
SEP_TOKEN = 130 (131 tokens in all). An example is the sequence (a, op, b, SEP) and its label
is max(a, b) when op is MAX_TOKEN, min(a, b) when op is MIN_TOKEN.

Shapes: B batch, N number of examples, d model width (d_model), h number of heads.

    make_dataset(seed=0, train_fraction=1/3) -> train_x (N_train, 4), train_y (N_train,),
                                                test_x (N_test, 4), test_y (N_test,), all int64
    AttentionNetwork(vocab_size=131, d_model=64, num_heads=4)
        forward(x (B, 4))                        -> logits (B, 128)
        forward(x (B, 4), return_attention=True) -> logits (B, 128), weights (B, h, 4, 4)
    train_model(model, train_x, train_y, *, epochs, batch_size, lr=2e-3, weight_decay=1.0)
                                             -> {"train_loss": [one float per epoch]}
    plot_attention(weights (h, 4, 4), tokens [4 str]) -> matplotlib Figure, one panel per head
    token_labels(example (4,))               -> ["17", "max", "93", "SEP"]   (given)
"""

import math

import matplotlib.pyplot as plt
import torch
from torch import nn
from torch.nn import functional as F

NUM_VALUES = 128  # the numbers 0 .. 127, and the 128 classes of the output
MAX_TOKEN = 128
MIN_TOKEN = 129
SEP_TOKEN = 130
VOCAB_SIZE = 131
SEQ_LEN = 4  # (a, op, b, SEP)


def token_labels(example):
    """The four tokens of one example as strings, e.g. ["17", "max", "93", "SEP"]."""
    names = {MAX_TOKEN: "max", MIN_TOKEN: "min", SEP_TOKEN: "SEP"}
    return [names.get(int(token), str(int(token))) for token in example]


def make_dataset(seed=0, train_fraction=1 / 3):
    """Every example (a, op, b, SEP) for a, b in 0 .. 127 and op in (MAX_TOKEN, MIN_TOKEN):
    2 * 128 * 128 = 32768 examples, each exactly once, split at random.

    The split is a random permutation drawn from a torch.Generator seeded with ``seed``: the
    same seed gives the same split, another seed another one. The first
    round(train_fraction * 32768) examples of the permutation are the training set, the rest
    the test set. Returns train_x (N_train, 4), train_y (N_train,), test_x (N_test, 4),
    test_y (N_test,), all int64; y is max(a, b) or min(a, b).
    """
    # TODO: all (a, op, b, SEP) rows and their labels, then a seeded random split
    raise NotImplementedError('make_dataset: all (a, op, b, SEP) rows and their labels, then a seeded random split')
    return x[train], y[train], x[test], y[test]


class AttentionNetwork(nn.Module):
    """Token and position embeddings -> one multi-head self-attention layer (LayerNorm first,
    residual) -> at the last position (SEP) a feed-forward block (residual) -> LayerNorm ->
    a linear layer to the 128 numbers.

    forward(x (B, 4) int64, return_attention=False) -> logits (B, 128), and with
    return_attention=True -> (logits (B, 128), weights (B, num_heads, 4, 4)), where
    weights[:, i, q] is head i's softmax over the 4 keys for query position q.
    """

    def __init__(self, vocab_size=VOCAB_SIZE, d_model=64, num_heads=4):
        super().__init__()
        if d_model % num_heads:
            raise ValueError(f"d_model ({d_model}) must be a multiple of num_heads ({num_heads})")
        self.num_heads = num_heads
        # TODO: embeddings, attention projections, feed-forward block, output layer
        raise NotImplementedError('AttentionNetwork.__init__: embeddings, attention projections, feed-forward block, output layer')

    def forward(self, x, return_attention=False):
        # TODO: embed, attend (softmax over the keys), read the answer out at SEP
        raise NotImplementedError('AttentionNetwork.forward: embed, attend (softmax over the keys), read the answer out at SEP')
        return (logits, weights) if return_attention else logits


def train_model(model, train_x, train_y, *, epochs, batch_size, lr=2e-3, weight_decay=1.0):
    """Train ``model`` in place: AdamW(lr, weight_decay), created once; cross-entropy of the
    logits; each epoch one pass over a fresh random permutation of the training examples in
    mini-batches of ``batch_size`` (the last one may be smaller), one optimizer step per batch.

    Returns {"train_loss": [...]}: one float per epoch, the mean of that epoch's batch losses.
    """
    history = {"train_loss": []}
    # TODO: AdamW, then per epoch a shuffled pass of mini-batches
    raise NotImplementedError('train_model: AdamW, then per epoch a shuffled pass of mini-batches')
    return history


def plot_attention(weights, tokens):
    """One example's attention: ``weights`` (num_heads, 4, 4), ``tokens`` its 4 tokens as
    strings (see token_labels). One heatmap panel per head: row q is the query position,
    column k the key position; the tokens label both axes. Returns the matplotlib Figure.
    """
    # TODO: one imshow per head, tokens as tick labels on both axes, a colour bar
    raise NotImplementedError('plot_attention: one imshow per head, tokens as tick labels on both axes, a colour bar')
    return fig


if __name__ == "__main__":
    # Try it: train on a third of the examples, test on the rest, look at the attention.
    torch.manual_seed(0)
    train_x, train_y, test_x, test_y = make_dataset(seed=0)
    model = AttentionNetwork(d_model=64, num_heads=4)
    history = train_model(model, train_x, train_y, epochs=8, batch_size=128)
    print("train loss per epoch:", [round(loss, 3) for loss in history["train_loss"]])
    model.eval()
    with torch.no_grad():
        logits, weights = model(test_x, return_attention=True)
    correct = logits.argmax(-1) == test_y
    for op, name in ((MAX_TOKEN, "max"), (MIN_TOKEN, "min")):
        chosen = test_x[:, 1] == op
        print(f"held-out accuracy, {name}: {correct[chosen].float().mean():.1%}")
        first = int(chosen.nonzero()[0])
        plot_attention(weights[first], token_labels(test_x[first])).savefig(f"attention_{name}.png")
