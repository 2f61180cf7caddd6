"""Assignment 3: a character-level RNN language model.

Fill in the parts marked TODO (see handout.md). The autograder imports this file and calls the
functions and classes below; keep their names and signatures.

Shapes: B batch, T sequence length, V vocabulary size, E embedding size, H hidden size,
L number of recurrent layers.

    build_vocab(text)                        -> stoi {char: id}, itos [char]
    encode(text, stoi)                       -> (len(text),) int64
    decode(ids, itos)                        -> str
    make_examples(ids, seq_len)              -> X (N, seq_len), Y (N, seq_len), Y = X shifted by one
    CharRNN(V, E, H, L, cell)(x (B, T), hidden=None) -> logits (B, T, V), hidden
    train_model(model, train_ids, val_ids, *, epochs, seq_len, batch_size, lr, clip=1.0)
                                             -> {"train_loss": [...], "val_loss": [...]}
    sample(model, stoi, itos, prefix, length, temperature=1.0, generator=None) -> str
    plot_loss_curves(history)                -> matplotlib Figure
"""

import matplotlib.pyplot as plt
import torch
from torch import nn
from torch.nn import functional as F


def build_vocab(text):
    """The characters of ``text``: stoi maps each distinct character to an id 0 .. V-1 and
    itos[id] is the character back (a list of length V)."""
    # TODO: sorted distinct characters, and the two lookup tables
    raise NotImplementedError('build_vocab: sorted distinct characters, and the two lookup tables')
    return stoi, itos


def encode(text, stoi):
    """``text`` as a 1-D int64 tensor of ids, one per character."""
    ids = None  # TODO: compute ids
    return ids


def decode(ids, itos):
    """The string of the ids (a 1-D tensor or a list of ints)."""
    text = None  # TODO: compute text
    return text


def make_examples(ids, seq_len):
    """Training pairs from a 1-D tensor of ids, with stride seq_len (no window overlaps).

    Row i of X is ids[i * seq_len : (i + 1) * seq_len] and row i of Y is the same window
    moved one character on: Y[i, t] is the character that follows X[i, t].
    Returns X, Y of shape (N, seq_len), int64, N = (len(ids) - 1) // seq_len.
    """
    # TODO: windows of seq_len + 1 ids, split into input and target
    raise NotImplementedError('make_examples: windows of seq_len + 1 ids, split into input and target')
    return X, Y


class CharRNN(nn.Module):
    """Embedding -> recurrent layers (nn.RNN, nn.GRU or nn.LSTM, batch first) -> linear to V.

    forward(x (B, T) int64, hidden=None) -> (logits (B, T, V), hidden) where hidden is
    (L, B, H), or a pair (h, c) of (L, B, H) tensors for an LSTM; hidden=None starts from
    zeros, and the returned hidden continues the sequence in the next call.
    """

    def __init__(self, vocab_size, embed_dim, hidden_dim, num_layers=1, cell="gru"):
        super().__init__()
        self.cell, self.num_layers, self.hidden_dim = cell, num_layers, hidden_dim
        # TODO: embedding, the chosen recurrent layer, output layer
        raise NotImplementedError('CharRNN.__init__: embedding, the chosen recurrent layer, output layer')

    def forward(self, x, hidden=None):
        # TODO: embed, run the recurrent layers from `hidden`, project every step
        raise NotImplementedError('CharRNN.forward: embed, run the recurrent layers from `hidden`, project every step')
        return logits, hidden

    def init_hidden(self, batch_size):
        """Zeros: (L, B, H), or (h, c) for an LSTM, on the model's device."""
        # TODO: zeros of the right shape; a pair for an LSTM
        raise NotImplementedError('CharRNN.init_hidden: zeros of the right shape; a pair for an LSTM')
        return hidden


def train_model(model, train_ids, val_ids, *, epochs, seq_len, batch_size, lr, clip=1.0):
    """Teacher forcing on make_examples(train_ids, seq_len), shuffled mini-batches, Adam,
    cross-entropy, gradient-norm clipping at ``clip``; every window starts from hidden=None.

    Trains ``model`` in place. Returns {"train_loss": [...], "val_loss": [...]}, one float per
    epoch: the mean training loss over the epoch's batches, and the mean loss on
    make_examples(val_ids, seq_len) after the epoch (eval mode, no gradients).
    """
    history = {"train_loss": [], "val_loss": []}
    # TODO: one epoch = one shuffled pass over the windows, then a validation pass
    raise NotImplementedError('train_model: one epoch = one shuffled pass over the windows, then a validation pass')
    return history


def evaluate(model, X, Y, batch_size):
    """Mean cross-entropy (nats per character) of ``model`` on windows X -> Y."""
    # TODO: eval mode, no gradients, average over every character
    raise NotImplementedError('evaluate: eval mode, no gradients, average over every character')
    return mean


def sample(model, stoi, itos, prefix, length, temperature=1.0, generator=None):
    """``prefix`` followed by ``length`` characters drawn one at a time from
    softmax(logits / temperature), feeding each one back with the hidden state.

    ``prefix`` is at least one character of the vocabulary; ``generator`` (a torch.Generator
    on the model's device, or None) is passed to every random draw.
    """
    # TODO: read the prefix, then draw, append and feed back one character at a time
    raise NotImplementedError('sample: read the prefix, then draw, append and feed back one character at a time')
    return text


def plot_loss_curves(history):
    """Training and validation loss against the epoch (1, 2, ...), one labelled line each,
    with a legend. Returns the matplotlib Figure."""
    # TODO: two labelled lines over the epochs, axis labels, a legend
    raise NotImplementedError('plot_loss_curves: two labelled lines over the epochs, axis labels, a legend')
    return fig


if __name__ == "__main__":
    # Try it: a few epochs on a short text, then a sample and the loss curves.
    text = ("It was the best of times, it was the worst of times, it was the age of wisdom, "
            "it was the age of foolishness, it was the epoch of belief, it was the epoch of "
            "incredulity, it was the season of Light, it was the season of Darkness. ") * 20
    stoi, itos = build_vocab(text)
    ids = encode(text, stoi)
    split = int(0.9 * len(ids))
    model = CharRNN(len(stoi), embed_dim=32, hidden_dim=128, cell="gru")
    history = train_model(model, ids[:split], ids[split:], epochs=10, seq_len=64, batch_size=16, lr=1e-2)
    print("train loss per epoch:", [round(x, 3) for x in history["train_loss"]])
    print("val loss per epoch:  ", [round(x, 3) for x in history["val_loss"]])
    print(sample(model, stoi, itos, "it was ", 120, temperature=0.8, generator=torch.Generator().manual_seed(0)))
    plot_loss_curves(history).savefig("loss_curves.png")
