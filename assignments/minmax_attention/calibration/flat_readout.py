# alternative: no LayerNorm and no feed-forward block; separate bias-free query/key/value layers with einsum; the output head reads the four positions side by side through a hidden ReLU layer

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
    a, b = torch.meshgrid(torch.arange(NUM_VALUES), torch.arange(NUM_VALUES), indexing="ij")
    a, b = a.flatten(), b.flatten()
    rows, labels = [], []
    for op, label in ((MAX_TOKEN, torch.maximum(a, b)), (MIN_TOKEN, torch.minimum(a, b))):
        rows.append(torch.stack([a, torch.full_like(a, op), b, torch.full_like(a, SEP_TOKEN)], dim=1))
        labels.append(label)
    x, y = torch.cat(rows), torch.cat(labels)  # (32768, 4), (32768,)
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    n_train = round(train_fraction * len(x))
    train, test = order[:n_train], order[n_train:]
    return x[train], y[train], x[test], y[test]


class AttentionNetwork(nn.Module):
    """No LayerNorm and no feed-forward block after the attention: token and position
    embeddings -> multi-head self-attention with separate query, key and value layers
    (residual) -> the four positions side by side -> a hidden ReLU layer -> 128 logits."""

    def __init__(self, vocab_size=VOCAB_SIZE, d_model=64, num_heads=4):
        super().__init__()
        self.num_heads = num_heads
        self.token_embedding = nn.Embedding(vocab_size, d_model)
        self.position_embedding = nn.Embedding(SEQ_LEN, d_model)
        self.query = nn.Linear(d_model, d_model, bias=False)
        self.key = nn.Linear(d_model, d_model, bias=False)
        self.value = nn.Linear(d_model, d_model, bias=False)
        self.out_proj = nn.Linear(d_model, d_model)
        self.head = nn.Sequential(nn.Linear(SEQ_LEN * d_model, 2 * d_model), nn.ReLU(), nn.Linear(2 * d_model, NUM_VALUES))

    def split_heads(self, t):  # (B, T, d) -> (B, heads, T, d / heads)
        B, T, _ = t.shape
        return t.view(B, T, self.num_heads, -1).transpose(1, 2)

    def forward(self, x, return_attention=False):
        B, T = x.shape
        positions = torch.arange(T, device=x.device).expand(B, T)
        h = self.token_embedding(x) + self.position_embedding(positions)
        q, k, v = self.split_heads(self.query(h)), self.split_heads(self.key(h)), self.split_heads(self.value(h))
        scores = torch.einsum("bhqd,bhkd->bhqk", q, k) / math.sqrt(q.shape[-1])
        weights = scores.softmax(dim=-1)
        h = h + self.out_proj(torch.einsum("bhqk,bhkd->bhqd", weights, v).transpose(1, 2).reshape(B, T, -1))
        logits = self.head(h.reshape(B, -1))
        return (logits, weights) if return_attention else logits


def train_model(model, train_x, train_y, *, epochs, batch_size, lr=2e-3, weight_decay=1.0):
    """Train ``model`` in place: AdamW(lr, weight_decay), created once; cross-entropy of the
    logits; each epoch one pass over a fresh random permutation of the training examples in
    mini-batches of ``batch_size`` (the last one may be smaller), one optimizer step per batch.

    Returns {"train_loss": [...]}: one float per epoch, the mean of that epoch's batch losses.
    """
    history = {"train_loss": []}
    device = next(model.parameters()).device
    train_x, train_y = train_x.to(device), train_y.to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(train_x), device=device)
        losses = []
        for start in range(0, len(train_x), batch_size):
            batch = order[start:start + batch_size]
            loss = F.cross_entropy(model(train_x[batch]), train_y[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        history["train_loss"].append(sum(losses) / len(losses))
    return history


def plot_attention(weights, tokens):
    """One example's attention: ``weights`` (num_heads, 4, 4), ``tokens`` its 4 tokens as
    strings (see token_labels). One heatmap panel per head: row q is the query position,
    column k the key position; the tokens label both axes. Returns the matplotlib Figure.
    """
    weights = torch.as_tensor(weights).detach().cpu()
    fig, axes = plt.subplots(1, len(weights), figsize=(3 * len(weights) + 1, 3.6), squeeze=False,
                             layout="constrained")
    for head, ax in enumerate(axes[0]):
        image = ax.imshow(weights[head].numpy(), vmin=0.0, vmax=1.0, cmap="viridis")
        ax.set_xticks(range(len(tokens)))
        ax.set_xticklabels(tokens)
        ax.set_yticks(range(len(tokens)))
        ax.set_yticklabels(tokens)
        ax.set_title(f"head {head}")
        ax.set_xlabel("key")
    axes[0, 0].set_ylabel("query")
    fig.colorbar(image, ax=list(axes[0]), shrink=0.8)
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
