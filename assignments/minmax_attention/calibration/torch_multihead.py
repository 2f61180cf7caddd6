# alternative: torch.nn.MultiheadAttention with post-norm Add & Norm and a GELU feed-forward block at every position, a learned position parameter; train_model with a shuffling DataLoader and nn.CrossEntropyLoss

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


import matplotlib.pyplot as plt
import torch
from torch import nn

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
    """Token and position embeddings -> torch.nn.MultiheadAttention with Add & Norm after it
    (post-norm, as in the original Transformer) -> a feed-forward block with Add & Norm at every
    position -> a linear layer at the SEP position."""

    def __init__(self, vocab_size=VOCAB_SIZE, d_model=64, num_heads=4):
        super().__init__()
        self.num_heads = num_heads
        self.token_embedding = nn.Embedding(vocab_size, d_model)
        self.position_embedding = nn.Parameter(0.02 * torch.randn(SEQ_LEN, d_model))
        self.attention = nn.MultiheadAttention(d_model, num_heads, batch_first=True)
        self.norm1 = nn.LayerNorm(d_model)
        self.feed_forward = nn.Sequential(nn.Linear(d_model, 2 * d_model), nn.GELU(), nn.Linear(2 * d_model, d_model))
        self.norm2 = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, NUM_VALUES)

    def forward(self, x, return_attention=False):
        h = self.token_embedding(x) + self.position_embedding[: x.shape[1]]
        attended, weights = self.attention(h, h, h, need_weights=True, average_attn_weights=False)
        h = self.norm1(h + attended)
        h = self.norm2(h + self.feed_forward(h))
        logits = self.head(h[:, -1])
        return (logits, weights) if return_attention else logits


def train_model(model, train_x, train_y, *, epochs, batch_size, lr=2e-3, weight_decay=1.0):
    """AdamW and cross-entropy, with a DataLoader that reshuffles every epoch."""
    device = next(model.parameters()).device
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(train_x.cpu(), train_y.cpu()),
                                         batch_size=batch_size, shuffle=True)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    history = {"train_loss": []}
    model.train()
    for _ in range(epochs):
        total, count = 0.0, 0
        for x, y in loader:
            x, y = x.to(device), y.to(device)
            loss = nn.CrossEntropyLoss()(model(x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total, count = total + loss.item(), count + 1
        history["train_loss"].append(total / count)
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
