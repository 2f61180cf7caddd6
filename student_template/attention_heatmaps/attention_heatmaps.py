"""Assignment 7: an LSTM with self-attention, attention temperature, and connectivity heatmaps.

Fill in the parts marked TODO (see handout.md). The autograder imports this file and calls the
functions and classes below; keep their names and signatures.

Shapes: B batch, T sequence length, H hidden size, V vocabulary size.
"""

import math

import matplotlib.pyplot as plt
import torch
from matplotlib.colors import LogNorm
from torch import nn


def make_sequences(text, seq_length=20):
    """Next-character training pairs from ``text``.

    The text is lower-cased and every run of whitespace becomes one space; the vocabulary is
    built on that normalised text. Returns (X, y, stoi, itos):
      X (N, seq_length) int64: every window of seq_length consecutive characters,
      y (N,) int64: the character right after each window, N = len(normalised) - seq_length,
      stoi: dict char -> id, itos: the inverse (itos[id] is the character).
    """
    # TODO: normalise, build the vocabulary, slide a window over the ids
    raise NotImplementedError('make_sequences: normalise, build the vocabulary, slide a window over the ids')
    return X, y, stoi, itos


class TemperatureSelfAttention(nn.Module):
    """Single-head self-attention with a temperature.

    weights = softmax(Q K^T / (sqrt(H) * temperature)) over the keys, out = weights @ V.
    ``self.temperature`` is read in forward, so changing it changes the next call.
    forward(h (B, T, H)) -> (out (B, T, H), weights (B, T, T)).
    """

    def __init__(self, hidden_dim, temperature=0.3):
        super().__init__()
        self.temperature = temperature
        # TODO: query, key and value projections
        raise NotImplementedError('TemperatureSelfAttention.__init__: query, key and value projections')

    def forward(self, h):
        # TODO: scores divided by sqrt(H) * temperature, softmax, weighted sum
        raise NotImplementedError('TemperatureSelfAttention.forward: scores divided by sqrt(H) * temperature, softmax, weighted sum')
        return out, weights


class MultiHeadTemperatureAttention(nn.Module):
    """num_heads temperature attentions over slices of width H / num_heads, recombined.

    forward(h (B, T, H)) -> (out (B, T, H), weights (B, num_heads, T, T)).
    """

    def __init__(self, hidden_dim, num_heads, temperature=0.3):
        super().__init__()
        assert hidden_dim % num_heads == 0, "hidden_dim must be divisible by num_heads"
        self.num_heads = num_heads
        self.head_dim = hidden_dim // num_heads
        self.temperature = temperature
        # TODO: projections for all heads at once, and the output projection
        raise NotImplementedError('MultiHeadTemperatureAttention.__init__: projections for all heads at once, and the output projection')

    def forward(self, h):
        # TODO: split into heads, attend per head with the temperature, merge heads
        raise NotImplementedError('MultiHeadTemperatureAttention.forward: split into heads, attend per head with the temperature, merge heads')
        return out, weights


class LSTMAttentionPredictor(nn.Module):
    """Embedding -> LSTM -> self-attention -> linear: predicts the character after a sequence.

    forward(x (B, T) int64) -> (logits (B, V), weights (B, T, T), or (B, num_heads, T, T)
    when num_heads > 1).
    """

    def __init__(self, vocab_size, hidden_dim=256, num_heads=1, temperature=0.3):
        super().__init__()
        # TODO: embedding, LSTM (batch_first), attention, output layer
        raise NotImplementedError('LSTMAttentionPredictor.__init__: embedding, LSTM (batch_first), attention, output layer')

    def forward(self, x):
        # TODO: the last position's LSTM state and attention output -> logits
        raise NotImplementedError("LSTMAttentionPredictor.forward: the last position's LSTM state and attention output -> logits")
        return logits, weights


def strongest_connection(weights, output_index):
    """The input position that output ``output_index`` attends to most, and that weight.

    weights (T, T): rows are outputs (queries), columns are inputs (keys).
    Returns (input_index: int, weight: float).
    """
    # TODO: argmax along the row of this output
    raise NotImplementedError('strongest_connection: argmax along the row of this output')
    return input_index, weight


def plot_connectivity_heatmap(weights, input_chars, output_chars, log_scale=False):
    """Heatmap of attention weights: one row per output character, one column per input.

    weights: (T, T), or (num_heads, T, T) for one panel per head. x tick labels are
    ``input_chars``, y tick labels ``output_chars``; ``log_scale=True`` gives a logarithmic
    colour scale. Returns the matplotlib Figure.
    """
    # TODO: one imshow panel per head, character ticks, optional LogNorm
    raise NotImplementedError('plot_connectivity_heatmap: one imshow panel per head, character ticks, optional LogNorm')
    return fig


if __name__ == "__main__":
    # Try it: train briefly on a sentence and look at what the model attends to.
    text = "the quick brown fox jumps over the lazy dog. " * 8
    X, y, stoi, itos = make_sequences(text, seq_length=12)
    model = LSTMAttentionPredictor(len(stoi), hidden_dim=64)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(200):
        logits, _ = model(X)
        loss = nn.functional.cross_entropy(logits, y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    print(f"loss after training: {loss.item():.3f}")
    _, weights = model(X[:1])
    chars = [itos[int(i)] for i in X[0]]
    print("strongest connection of the last output:", strongest_connection(weights[0], len(chars) - 1))
    plot_connectivity_heatmap(weights[0].detach(), chars, chars, log_scale=True).savefig("connectivity.png")
