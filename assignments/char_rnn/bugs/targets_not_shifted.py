# known bug: make_examples returns the input windows as their own targets (Y = X, not shifted) | caught by: examples, trained_loss

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
    # BEGIN SOLUTION: sorted distinct characters, and the two lookup tables
    itos = sorted(set(text))
    stoi = {char: index for index, char in enumerate(itos)}
    # END SOLUTION
    return stoi, itos


def encode(text, stoi):
    """``text`` as a 1-D int64 tensor of ids, one per character."""
    ids = torch.tensor([stoi[char] for char in text], dtype=torch.long)  # SOLUTION
    return ids


def decode(ids, itos):
    """The string of the ids (a 1-D tensor or a list of ints)."""
    text = "".join(itos[int(index)] for index in ids)  # SOLUTION
    return text


def make_examples(ids, seq_len):
    """Training pairs from a 1-D tensor of ids, with stride seq_len (no window overlaps).

    Row i of X is ids[i * seq_len : (i + 1) * seq_len] and row i of Y is the same window
    moved one character on: Y[i, t] is the character that follows X[i, t].
    Returns X, Y of shape (N, seq_len), int64, N = (len(ids) - 1) // seq_len.
    """
    # BEGIN SOLUTION: windows of seq_len + 1 ids, split into input and target
    count = (len(ids) - 1) // seq_len
    windows = ids[: count * seq_len + 1]
    X = windows[:-1].reshape(count, seq_len)
    Y = windows[:-1].reshape(count, seq_len)
    # END SOLUTION
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
        # BEGIN SOLUTION: embedding, the chosen recurrent layer, output layer
        recurrent = {"rnn": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}
        if cell not in recurrent:
            raise ValueError(f"cell must be 'rnn', 'gru' or 'lstm', not {cell!r}")
        self.embedding = nn.Embedding(vocab_size, embed_dim)
        self.rnn = recurrent[cell](embed_dim, hidden_dim, num_layers=num_layers, batch_first=True)
        self.output = nn.Linear(hidden_dim, vocab_size)
        # END SOLUTION

    def forward(self, x, hidden=None):
        # BEGIN SOLUTION: embed, run the recurrent layers from `hidden`, project every step
        states, hidden = self.rnn(self.embedding(x), hidden)  # states (B, T, H)
        logits = self.output(states)  # (B, T, V)
        # END SOLUTION
        return logits, hidden

    def init_hidden(self, batch_size):
        """Zeros: (L, B, H), or (h, c) for an LSTM, on the model's device."""
        # BEGIN SOLUTION: zeros of the right shape; a pair for an LSTM
        device = next(self.parameters()).device
        zeros = torch.zeros(self.num_layers, batch_size, self.hidden_dim, device=device)
        hidden = (zeros, zeros.clone()) if self.cell == "lstm" else zeros
        # END SOLUTION
        return hidden


def train_model(model, train_ids, val_ids, *, epochs, seq_len, batch_size, lr, clip=1.0):
    """Teacher forcing on make_examples(train_ids, seq_len), shuffled mini-batches, Adam,
    cross-entropy, gradient-norm clipping at ``clip``; every window starts from hidden=None.

    Trains ``model`` in place. Returns {"train_loss": [...], "val_loss": [...]}, one float per
    epoch: the mean training loss over the epoch's batches, and the mean loss on
    make_examples(val_ids, seq_len) after the epoch (eval mode, no gradients).
    """
    history = {"train_loss": [], "val_loss": []}
    # BEGIN SOLUTION: one epoch = one shuffled pass over the windows, then a validation pass
    device = next(model.parameters()).device
    X, Y = (t.to(device) for t in make_examples(train_ids, seq_len))
    X_val, Y_val = (t.to(device) for t in make_examples(val_ids, seq_len))
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    for _ in range(epochs):
        model.train()
        order = torch.randperm(len(X)).to(device)
        losses = []
        for start in range(0, len(X), batch_size):
            batch = order[start:start + batch_size]
            logits, _ = model(X[batch])
            loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), Y[batch].reshape(-1))
            optimizer.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), clip)
            optimizer.step()
            losses.append(loss.item())
        history["train_loss"].append(sum(losses) / len(losses))
        history["val_loss"].append(evaluate(model, X_val, Y_val, batch_size))
    # END SOLUTION
    return history


def evaluate(model, X, Y, batch_size):
    """Mean cross-entropy (nats per character) of ``model`` on windows X -> Y."""
    # BEGIN SOLUTION: eval mode, no gradients, average over every character
    model.eval()
    total = 0.0
    with torch.no_grad():
        for start in range(0, len(X), batch_size):
            logits, _ = model(X[start:start + batch_size])
            total += F.cross_entropy(logits.reshape(-1, logits.size(-1)), Y[start:start + batch_size].reshape(-1),
                                     reduction="sum").item()
    mean = total / Y.numel()
    # END SOLUTION
    return mean


def sample(model, stoi, itos, prefix, length, temperature=1.0, generator=None):
    """``prefix`` followed by ``length`` characters drawn one at a time from
    softmax(logits / temperature), feeding each one back with the hidden state.

    ``prefix`` is at least one character of the vocabulary; ``generator`` (a torch.Generator
    on the model's device, or None) is passed to every random draw.
    """
    # BEGIN SOLUTION: read the prefix, then draw, append and feed back one character at a time
    model.eval()
    device = next(model.parameters()).device
    x = torch.tensor([[stoi[char] for char in prefix]], dtype=torch.long, device=device)  # (1, len(prefix))
    new = []
    with torch.no_grad():
        logits, hidden = model(x)
        for _ in range(length):
            probs = torch.softmax(logits[0, -1] / temperature, dim=-1)  # (V,)
            index = torch.multinomial(probs, 1, generator=generator)  # (1,)
            new.append(int(index))
            logits, hidden = model(index.view(1, 1), hidden)
    text = prefix + decode(new, itos)
    # END SOLUTION
    return text


def plot_loss_curves(history):
    """Training and validation loss against the epoch (1, 2, ...), one labelled line each,
    with a legend. Returns the matplotlib Figure."""
    # BEGIN SOLUTION: two labelled lines over the epochs, axis labels, a legend
    fig, ax = plt.subplots(figsize=(6, 4))
    epochs = range(1, len(history["train_loss"]) + 1)
    ax.plot(epochs, history["train_loss"], marker="o", label="train")
    ax.plot(epochs, history["val_loss"], marker="o", label="validation")
    ax.set_xlabel("epoch")
    ax.set_ylabel("cross-entropy (nats per character)")
    ax.legend()
    fig.tight_layout()
    # END SOLUTION
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
