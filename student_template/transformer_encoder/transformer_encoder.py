"""Assignment 2: a mini Transformer encoder.

Implement the pieces below with plain tensor operations and small `nn` building blocks
(`nn.Linear`, `nn.Embedding`, `nn.LayerNorm`, `nn.Dropout`, `nn.ModuleList`); see
handout.md. The autograder imports this file and uses these names; keep the names,
signatures and the attribute names the handout fixes.

Shapes: B batch, L sequence length, d = d_model, h = num_heads, d_ff feed-forward width.

    sinusoidal_positional_encoding(L, d)        -> (L, d) float32
    MultiHeadSelfAttention(d, h)(x (B, L, d))   -> out (B, L, d), weights (B, h, L, L)
    FeedForward(d, d_ff)(x (B, L, d))           -> (B, L, d)
    EncoderLayer(d, h, d_ff)(x (B, L, d))       -> out (B, L, d), weights (B, h, L, L)
    MiniTransformerEncoder(...)(tokens (B, L))  -> x (B, L, d), [weights (B, h, L, L)] * num_layers
    build_vocab(sentences)                      -> {token: id}, "<PAD>" = 0
    encode_batch(sentences, vocab)              -> LongTensor (B, L_max), padded with 0
    plot_attention_heatmap(weights (L, L), tokens) -> matplotlib Figure
"""

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
    # TODO: one frequency per pair of columns; sin in the even columns, cos in the odd ones
    raise NotImplementedError('sinusoidal_positional_encoding: one frequency per pair of columns; sin in the even columns, cos in the odd ones')
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
        # TODO: check d_model % num_heads == 0; create q_proj, k_proj, v_proj, out_proj
        raise NotImplementedError('MultiHeadSelfAttention.__init__: check d_model % num_heads == 0; create q_proj, k_proj, v_proj, out_proj')

    def forward(self, x, key_padding_mask=None):
        # TODO: project, split the heads, scaled scores, mask the padded keys, softmax, merge heads, out_proj
        raise NotImplementedError('MultiHeadSelfAttention.forward: project, split the heads, scaled scores, mask the padded keys, softmax, merge heads, out_proj')
        return out, weights


class FeedForward(nn.Module):
    """Position-wise feed-forward network: Linear(d_model, d_ff) -> ReLU -> Linear(d_ff, d_model).

    forward(x (B, L, d_model)) -> (B, L, d_model)
    """

    def __init__(self, d_model, d_ff):
        super().__init__()
        # TODO: two linear layers with a ReLU between them
        raise NotImplementedError('FeedForward.__init__: two linear layers with a ReLU between them')

    def forward(self, x):
        # TODO: Linear -> ReLU -> Linear
        raise NotImplementedError('FeedForward.forward: Linear -> ReLU -> Linear')


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
        # TODO: create self_attn, feed_forward, norm1, norm2 and dropout
        raise NotImplementedError('EncoderLayer.__init__: create self_attn, feed_forward, norm1, norm2 and dropout')

    def forward(self, x, key_padding_mask=None):
        # TODO: attention sub-layer, then feed-forward sub-layer, each followed by Add & Norm
        raise NotImplementedError('EncoderLayer.forward: attention sub-layer, then feed-forward sub-layer, each followed by Add & Norm')
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
        # TODO: embedding, positional-encoding buffer, nn.ModuleList of EncoderLayers
        raise NotImplementedError('MiniTransformerEncoder.__init__: embedding, positional-encoding buffer, nn.ModuleList of EncoderLayers')

    def forward(self, tokens):
        # TODO: padding mask from pad_idx, scaled embeddings plus positions, then every layer
        raise NotImplementedError('MiniTransformerEncoder.forward: padding mask from pad_idx, scaled embeddings plus positions, then every layer')
        return x, all_weights


def build_vocab(sentences):
    """{token: id} over lower-cased, whitespace-split tokens: "<PAD>" = 0, then every other
    token numbered 1, 2, ... in the order it is first seen."""
    # TODO: start from {"<PAD>": 0}; add each new lower-cased token with the next id
    raise NotImplementedError('build_vocab: start from {"<PAD>": 0}; add each new lower-cased token with the next id')
    return vocab


def encode_batch(sentences, vocab):
    """LongTensor (B, L_max): row b holds the ids of sentence b's lower-cased tokens, followed
    by 0 (the "<PAD>" id) up to the length of the longest sentence."""
    # TODO: look the tokens up, then pad every row with 0 to the longest one
    raise NotImplementedError('encode_batch: look the tokens up, then pad every row with 0 to the longest one')
    return batch


def plot_attention_heatmap(weights, tokens):
    """A heatmap of one attention matrix: weights (L, L), rows = queries, columns = keys.

    Column i is labelled tokens[i] on the x axis (keys), row i tokens[i] on the y axis
    (queries), with a colour bar. Returns the matplotlib Figure.
    """
    # TODO: imshow the weights, one tick per token on both axes, a colour bar, return the figure
    raise NotImplementedError('plot_attention_heatmap: imshow the weights, one tick per token on both axes, a colour bar, return the figure')
    return fig


if __name__ == "__main__":
    torch.manual_seed(0)
    sentences = ["The cat sat on the mat", "A dog barked", "the mat was red"]
    vocab = build_vocab(sentences)
    tokens = encode_batch(sentences, vocab)
    print("vocab:", vocab)
    print("tokens:", tokens)

    model = MiniTransformerEncoder(len(vocab), d_model=32, num_heads=4, d_ff=64, num_layers=2, max_len=16)
    model.eval()
    with torch.no_grad():
        x, weights = model(tokens)
    print("encoder output:", tuple(x.shape), "weights per layer:", [tuple(w.shape) for w in weights])
    print("weight on padded keys (should be 0):", weights[0][1, :, :, 3:].abs().max().item())

    # Compare with PyTorch's own multi-head attention (allowed here, outside the graded code).
    attention = MultiHeadSelfAttention(32, 4).eval()
    reference = nn.MultiheadAttention(32, 4, batch_first=True).eval()
    with torch.no_grad():
        for index, name in enumerate(("q_proj", "k_proj", "v_proj")):
            getattr(attention, name).weight.copy_(reference.in_proj_weight[32 * index:32 * (index + 1)])
            getattr(attention, name).bias.copy_(reference.in_proj_bias[32 * index:32 * (index + 1)])
        attention.out_proj.load_state_dict(reference.out_proj.state_dict())
        inputs = torch.randn(2, 5, 32)
        padding = torch.tensor([[False] * 5, [False, False, False, True, True]])
        mine, my_weights = attention(inputs, key_padding_mask=padding)
        theirs, their_weights = reference(inputs, inputs, inputs, key_padding_mask=padding,
                                          average_attn_weights=False)
    print("max |out - nn.MultiheadAttention|:", (mine - theirs).abs().max().item())
    print("max |weights - nn.MultiheadAttention|:", (my_weights - their_weights).abs().max().item())

    words = sentences[0].lower().split()
    figure = plot_attention_heatmap(weights[0][0, 0, : len(words), : len(words)], words)
    figure.savefig("attention_heatmap.png")
    print("saved attention_heatmap.png")
