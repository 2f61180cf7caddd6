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
    # BEGIN SOLUTION: all (a, op, b, SEP) rows and their labels, then a seeded random split
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
    # END SOLUTION
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
        # BEGIN SOLUTION: embeddings, attention projections, feed-forward block, output layer
        self.token_embedding = nn.Embedding(vocab_size, d_model)
        self.position_embedding = nn.Embedding(SEQ_LEN, d_model)
        self.attention_norm = nn.LayerNorm(d_model)
        self.qkv = nn.Linear(d_model, 3 * d_model)  # queries, keys and values of every head at once
        self.out_proj = nn.Linear(d_model, d_model)
        self.feed_forward_norm = nn.LayerNorm(d_model)
        self.feed_forward = nn.Sequential(nn.Linear(d_model, 4 * d_model), nn.ReLU(), nn.Linear(4 * d_model, d_model))
        self.output_norm = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, NUM_VALUES)
        # END SOLUTION

    def forward(self, x, return_attention=False):
        # BEGIN SOLUTION: embed, attend (softmax over the keys), read the answer out at SEP
        B, T = x.shape
        h = self.token_embedding(x) + self.position_embedding(torch.arange(T, device=x.device))  # (B, T, d)
        q, k, v = self.qkv(self.attention_norm(h)).view(B, T, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4)
        weights = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(q.size(-1)), dim=-1)  # (B, heads, T, T)
        h = h + self.out_proj((weights @ v).transpose(1, 2).reshape(B, T, -1))  # heads side by side again
        z = h[:, -1]  # the SEP position, (B, d)
        z = z + self.feed_forward(self.feed_forward_norm(z))
        logits = self.head(self.output_norm(z))  # (B, 128)
        # END SOLUTION
        return (logits, weights) if return_attention else logits


def train_model(model, train_x, train_y, *, epochs, batch_size, lr=2e-3, weight_decay=1.0):
    """Train ``model`` in place: AdamW(lr, weight_decay), created once; cross-entropy of the
    logits; each epoch one pass over a fresh random permutation of the training examples in
    mini-batches of ``batch_size`` (the last one may be smaller), one optimizer step per batch.

    Returns {"train_loss": [...]}: one float per epoch, the mean of that epoch's batch losses.
    """
    history = {"train_loss": []}
    # BEGIN SOLUTION: AdamW, then per epoch a shuffled pass of mini-batches
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
    # END SOLUTION
    return history


def plot_attention(weights, tokens):
    """One example's attention: ``weights`` (num_heads, 4, 4), ``tokens`` its 4 tokens as
    strings (see token_labels). One heatmap panel per head: row q is the query position,
    column k the key position; the tokens label both axes. Returns the matplotlib Figure.
    """
    # BEGIN SOLUTION: one imshow per head, tokens as tick labels on both axes, a colour bar
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
    # END SOLUTION
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
