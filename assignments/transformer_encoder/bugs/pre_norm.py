# known bug: a pre-norm layer: LayerNorm before each sub-layer instead of after the residual addition | caught by: add_and_norm, encoder_layer_structure

import math

import matplotlib.pyplot as plt
import torch
from torch import nn


def sinusoidal_positional_encoding(seq_len, d_model):
    """The fixed positional encodings of "Attention Is All You Need".

    Returns a float32 tensor (seq_len, d_model) with, for position pos and i = 0, 1, ...:
        pe[pos, 2i]     = sin(pos / 10000 ** (2i / d_model))
        pe[pos, 2i + 1] = cos(pos / 10000 ** (2i / d_model))
    """
    position = torch.arange(seq_len, dtype=torch.float64)[:, None]  # (L, 1)
    even = torch.arange(0, d_model, 2, dtype=torch.float64)  # 2i
    angles = position / torch.pow(10000.0, even / d_model)  # (L, ceil(d / 2))
    pe = torch.zeros(seq_len, d_model, dtype=torch.float64)
    pe[:, 0::2] = torch.sin(angles)
    pe[:, 1::2] = torch.cos(angles)[:, : d_model // 2]
    return pe.to(torch.float32)


class MultiHeadSelfAttention(nn.Module):
    """Multi-head self-attention over a batch of sequences.

    Attributes (fixed by the handout; the grader loads weights into them):
        q_proj, k_proj, v_proj, out_proj: nn.Linear(d_model, d_model), bias on.

    forward(x (B, L, d_model), key_padding_mask=None (B, L) bool, True = padding)
        -> out (B, L, d_model), weights (B, num_heads, L, L)
    Heads: (B, L, d_model) -> view (B, L, num_heads, d_head) -> transpose -> (B, num_heads, L, d_head),
    d_head = d_model // num_heads; scores scaled by 1 / sqrt(d_head); padded keys get weight 0.
    """

    def __init__(self, d_model, num_heads):
        super().__init__()
        if d_model % num_heads != 0:
            raise ValueError(f"d_model ({d_model}) must be divisible by num_heads ({num_heads})")
        self.d_model = d_model
        self.num_heads = num_heads
        self.d_head = d_model // num_heads
        self.q_proj = nn.Linear(d_model, d_model)
        self.k_proj = nn.Linear(d_model, d_model)
        self.v_proj = nn.Linear(d_model, d_model)
        self.out_proj = nn.Linear(d_model, d_model)

    def forward(self, x, key_padding_mask=None):
        batch, length, _ = x.shape

        def split_heads(t):  # (B, L, d) -> (B, h, L, d_head)
            return t.view(batch, length, self.num_heads, self.d_head).transpose(1, 2)

        q = split_heads(self.q_proj(x))
        k = split_heads(self.k_proj(x))
        v = split_heads(self.v_proj(x))
        scores = q @ k.transpose(-2, -1) / math.sqrt(self.d_head)  # (B, h, L, L)
        if key_padding_mask is not None:
            padded = key_padding_mask.to(torch.bool)[:, None, None, :]  # (B, 1, 1, L)
            # The most negative finite number rather than -inf: never NaN, even for a row
            # with nothing to attend to; masking the weights again makes them exactly 0.
            scores = scores.masked_fill(padded, torch.finfo(scores.dtype).min)
        weights = torch.softmax(scores, dim=-1)
        if key_padding_mask is not None:
            weights = weights.masked_fill(padded, 0.0)
        context = (weights @ v).transpose(1, 2).reshape(batch, length, self.d_model)
        out = self.out_proj(context)
        return out, weights


class FeedForward(nn.Module):
    """Position-wise feed-forward network: Linear(d_model, d_ff) -> ReLU -> Linear(d_ff, d_model).

    forward(x (B, L, d_model)) -> (B, L, d_model)
    """

    def __init__(self, d_model, d_ff):
        super().__init__()
        self.linear1 = nn.Linear(d_model, d_ff)
        self.linear2 = nn.Linear(d_ff, d_model)

    def forward(self, x):
        return self.linear2(torch.relu(self.linear1(x)))


class EncoderLayer(nn.Module):
    """One post-norm encoder layer (Add & Norm after each sub-layer).

    Attributes (fixed by the handout): self_attn (MultiHeadSelfAttention), feed_forward
    (FeedForward), norm1, norm2 (nn.LayerNorm(d_model)), dropout (nn.Dropout(dropout)).

    forward(x (B, L, d_model), key_padding_mask=None (B, L) bool)
        -> out (B, L, d_model), weights (B, num_heads, L, L), where
        h   = norm1(x + dropout(self_attn(x, key_padding_mask)[0]))
        out = norm2(h + dropout(feed_forward(h)))
    """

    def __init__(self, d_model, num_heads, d_ff, dropout=0.0):
        super().__init__()
        self.self_attn = MultiHeadSelfAttention(d_model, num_heads)
        self.feed_forward = FeedForward(d_model, d_ff)
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x, key_padding_mask=None):
        # BUG: pre-norm instead of post-norm
        attended, weights = self.self_attn(self.norm1(x), key_padding_mask=key_padding_mask)
        h = x + self.dropout(attended)
        out = h + self.dropout(self.feed_forward(self.norm2(h)))
        return out, weights


class MiniTransformerEncoder(nn.Module):
    """Token embedding + sinusoidal positions + a stack of EncoderLayers.

    forward(tokens (B, L) long, L <= max_len)
        -> x (B, L, d_model), list of num_layers attention weights, each (B, num_heads, L, L)
    x starts as embedding(tokens) * sqrt(d_model) + pe[:L]; positions where tokens == pad_idx
    are padding (the key padding mask of every layer).
    """

    def __init__(self, vocab_size, d_model, num_heads, d_ff, num_layers, max_len, pad_idx=0):
        super().__init__()
        self.d_model = d_model
        self.pad_idx = pad_idx
        self.max_len = max_len
        self.embedding = nn.Embedding(vocab_size, d_model, padding_idx=pad_idx)
        # A buffer, not a parameter: it moves with .to(device) but is never trained.
        self.register_buffer("positional_encoding", sinusoidal_positional_encoding(max_len, d_model),
                             persistent=False)
        self.layers = nn.ModuleList(EncoderLayer(d_model, num_heads, d_ff) for _ in range(num_layers))

    def forward(self, tokens):
        length = tokens.shape[1]
        if length > self.max_len:
            raise ValueError(f"sequence length {length} exceeds max_len {self.max_len}")
        key_padding_mask = tokens == self.pad_idx  # (B, L), True = padding
        x = self.embedding(tokens) * math.sqrt(self.d_model) + self.positional_encoding[:length]
        all_weights = []
        for layer in self.layers:
            x, weights = layer(x, key_padding_mask=key_padding_mask)
            all_weights.append(weights)
        return x, all_weights


def build_vocab(sentences):
    """{token: id} over lower-cased, whitespace-split tokens: "<PAD>" = 0, then every other
    token numbered 1, 2, ... in the order it is first seen."""
    vocab = {"<PAD>": 0}
    for sentence in sentences:
        for token in sentence.lower().split():
            if token not in vocab:
                vocab[token] = len(vocab)
    return vocab


def encode_batch(sentences, vocab):
    """LongTensor (B, L_max): row b holds the ids of sentence b's lower-cased tokens, followed
    by 0 (the "<PAD>" id) up to the length of the longest sentence."""
    rows = [[vocab[token] for token in sentence.lower().split()] for sentence in sentences]
    longest = max((len(row) for row in rows), default=0)
    batch = torch.zeros(len(rows), longest, dtype=torch.long)
    for index, row in enumerate(rows):
        batch[index, : len(row)] = torch.tensor(row, dtype=torch.long)
    return batch


def plot_attention_heatmap(weights, tokens):
    """A heatmap of one attention matrix: weights (L, L), rows = queries, columns = keys.

    Column i is labelled tokens[i] on the x axis (keys), row i tokens[i] on the y axis
    (queries), with a colour bar. Returns the matplotlib Figure.
    """
    matrix = weights.detach().cpu().numpy() if torch.is_tensor(weights) else weights
    size = max(3.0, 0.5 * len(tokens) + 1.5)
    fig, ax = plt.subplots(figsize=(size + 1.0, size))
    image = ax.imshow(matrix, cmap="viridis", vmin=0.0)
    ax.set_xticks(range(len(tokens)))
    ax.set_xticklabels(tokens, rotation=45, ha="right")
    ax.set_yticks(range(len(tokens)))
    ax.set_yticklabels(tokens)
    ax.set_xlabel("key (attended to)")
    ax.set_ylabel("query (attending)")
    fig.colorbar(image, ax=ax, label="attention weight")
    fig.tight_layout()
    return fig
