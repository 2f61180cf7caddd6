# known bug: nn.LSTM without batch_first=True reads the batch axis as time | caught by: trained_accuracy

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
    # BEGIN SOLUTION: normalise, build the vocabulary, slide a window over the ids
    normalised = " ".join(text.lower().split())
    chars = sorted(set(normalised))
    stoi = {char: index for index, char in enumerate(chars)}
    itos = {index: char for char, index in stoi.items()}
    ids = torch.tensor([stoi[char] for char in normalised], dtype=torch.long)
    X = ids.unfold(0, seq_length, 1)[:-1].clone()
    y = ids[seq_length:].clone()
    # END SOLUTION
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
        # BEGIN SOLUTION: query, key and value projections
        self.query = nn.Linear(hidden_dim, hidden_dim)
        self.key = nn.Linear(hidden_dim, hidden_dim)
        self.value = nn.Linear(hidden_dim, hidden_dim)
        # END SOLUTION

    def forward(self, h):
        # BEGIN SOLUTION: scores divided by sqrt(H) * temperature, softmax, weighted sum
        Q, K, V = self.query(h), self.key(h), self.value(h)
        scores = Q @ K.transpose(-2, -1) / (math.sqrt(Q.size(-1)) * self.temperature)
        weights = torch.softmax(scores, dim=-1)
        out = weights @ V
        # END SOLUTION
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
        # BEGIN SOLUTION: projections for all heads at once, and the output projection
        self.query = nn.Linear(hidden_dim, hidden_dim)
        self.key = nn.Linear(hidden_dim, hidden_dim)
        self.value = nn.Linear(hidden_dim, hidden_dim)
        self.out_proj = nn.Linear(hidden_dim, hidden_dim)
        # END SOLUTION

    def forward(self, h):
        # BEGIN SOLUTION: split into heads, attend per head with the temperature, merge heads
        B, T, H = h.shape

        def heads(x):  # (B, T, H) -> (B, num_heads, T, head_dim)
            return x.view(B, T, self.num_heads, self.head_dim).transpose(1, 2)

        Q, K, V = heads(self.query(h)), heads(self.key(h)), heads(self.value(h))
        scores = Q @ K.transpose(-2, -1) / (math.sqrt(self.head_dim) * self.temperature)
        weights = torch.softmax(scores, dim=-1)
        out = (weights @ V).transpose(1, 2).reshape(B, T, H)
        out = self.out_proj(out)
        # END SOLUTION
        return out, weights


class LSTMAttentionPredictor(nn.Module):
    """Embedding -> LSTM -> self-attention -> linear: predicts the character after a sequence.

    forward(x (B, T) int64) -> (logits (B, V), weights (B, T, T), or (B, num_heads, T, T)
    when num_heads > 1).
    """

    def __init__(self, vocab_size, hidden_dim=256, num_heads=1, temperature=0.3):
        super().__init__()
        # BEGIN SOLUTION: embedding, LSTM (batch_first), attention, output layer
        self.embedding = nn.Embedding(vocab_size, hidden_dim)
        self.lstm = nn.LSTM(hidden_dim, hidden_dim)
        if num_heads == 1:
            self.attention = TemperatureSelfAttention(hidden_dim, temperature)
        else:
            self.attention = MultiHeadTemperatureAttention(hidden_dim, num_heads, temperature)
        self.output = nn.Linear(2 * hidden_dim, vocab_size)
        # END SOLUTION

    def forward(self, x):
        # BEGIN SOLUTION: the last position's LSTM state and attention output -> logits
        states, _ = self.lstm(self.embedding(x))       # (B, T, H)
        attended, weights = self.attention(states)     # (B, T, H)
        last = torch.cat([states[:, -1], attended[:, -1]], dim=-1)
        logits = self.output(last)
        # END SOLUTION
        return logits, weights


def strongest_connection(weights, output_index):
    """The input position that output ``output_index`` attends to most, and that weight.

    weights (T, T): rows are outputs (queries), columns are inputs (keys).
    Returns (input_index: int, weight: float).
    """
    # BEGIN SOLUTION: argmax along the row of this output
    row = weights[output_index]
    input_index = int(torch.argmax(row))
    weight = float(row[input_index])
    # END SOLUTION
    return input_index, weight


def plot_connectivity_heatmap(weights, input_chars, output_chars, log_scale=False):
    """Heatmap of attention weights: one row per output character, one column per input.

    weights: (T, T), or (num_heads, T, T) for one panel per head. x tick labels are
    ``input_chars``, y tick labels ``output_chars``; ``log_scale=True`` gives a logarithmic
    colour scale. Returns the matplotlib Figure.
    """
    # BEGIN SOLUTION: one imshow panel per head, character ticks, optional LogNorm
    weights = torch.as_tensor(weights).detach().cpu()
    panels = weights.unsqueeze(0) if weights.dim() == 2 else weights
    fig, axes = plt.subplots(1, len(panels), figsize=(4.5 * len(panels), 4), squeeze=False)
    for head, (ax, panel) in enumerate(zip(axes[0], panels, strict=True)):
        values = panel.numpy()
        norm = None
        if log_scale:
            positive = values[values > 0]
            norm = LogNorm(vmin=max(float(positive.min()), 1e-6) if positive.size else 1e-6, vmax=1.0)
        image = ax.imshow(values, cmap="viridis", norm=norm)
        ax.set_xticks(range(len(input_chars)))
        ax.set_xticklabels(list(input_chars))
        ax.set_yticks(range(len(output_chars)))
        ax.set_yticklabels(list(output_chars))
        ax.set_xlabel("input character")
        ax.set_ylabel("output character")
        if len(panels) > 1:
            ax.set_title(f"head {head}")
        fig.colorbar(image, ax=ax, fraction=0.046)
    fig.tight_layout()
    # END SOLUTION
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
