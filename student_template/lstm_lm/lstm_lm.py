"""Assignment 5: LSTM language models, from nn.LSTM and from scratch, plus attention.

Fill in the parts marked TODO (see handout.md). The autograder imports this file and calls the
functions and classes below; keep their names, signatures and the parameter names of LSTMCell.

Shapes: B batch, T sequence length, I input size, E embedding size, H hidden size, V vocabulary.

    LSTMLanguageModel(V, E, H, num_layers=1)(x (B, T), state=None) -> log_probs (B, T, V), state
    LSTMCell(I, H)(x (B, I), state=None)                            -> h (B, H), c (B, H)
    ScratchLSTMLanguageModel(V, E, H)(x (B, T), state=None)         -> log_probs (B, T, V), state
    AttentionLSTMLanguageModel(V, E, H)(x (B, T))                   -> log_probs (B, T, V), weights (B, T, T)
    greedy_generate(model, prefix_ids, length)                      -> prefix_ids + length new ids
    sample_generate(model, prefix_ids, length, temperature=1.0, generator=None) -> the same, sampled
    perplexity(model, ids, seq_len)                                 -> float
"""

import math

import torch
from torch import nn


class LSTMLanguageModel(nn.Module):
    """Embedding -> nn.LSTM (batch_first) -> linear -> log_softmax.

    forward(x (B, T) int64, state=None) -> (log_probs (B, T, V), state), where state is what
    nn.LSTM returns, (h, c) each (num_layers, B, H); passing it back continues the sequence.
    """

    def __init__(self, vocab_size, embed_dim, hidden_dim, num_layers=1):
        super().__init__()
        # TODO: embedding, a batch-first nn.LSTM, output layer
        raise NotImplementedError('LSTMLanguageModel.__init__: embedding, a batch-first nn.LSTM, output layer')

    def forward(self, x, state=None):
        # TODO: run the LSTM from `state`, log-probabilities over the vocabulary
        raise NotImplementedError('LSTMLanguageModel.forward: run the LSTM from `state`, log-probabilities over the vocabulary')
        return log_probs, state


class LSTMCell(nn.Module):
    """One LSTM step, written by hand (no nn.LSTM / nn.LSTMCell / torch.lstm_cell).

    Parameters in PyTorch's layout, gates stacked in the order i, f, g, o:
        weight_ih (4H, I), weight_hh (4H, H), bias_ih (4H,), bias_hh (4H,)
    gates = x @ weight_ih.T + bias_ih + h @ weight_hh.T + bias_hh
    i, f, o = sigmoid(...), g = tanh(...);  c' = f * c + i * g;  h' = o * tanh(c')
    forward(x (B, I), state=None or (h (B, H), c (B, H))) -> (h' (B, H), c' (B, H)).
    """

    def __init__(self, input_size, hidden_size):
        super().__init__()
        self.input_size = input_size
        self.hidden_size = hidden_size
        # TODO: the four parameters, initialised uniformly in +-1/sqrt(H) like nn.LSTMCell
        raise NotImplementedError('LSTMCell.__init__: the four parameters, initialised uniformly in +-1/sqrt(H) like nn.LSTMCell')

    def forward(self, x, state=None):
        if state is None:
            zeros = x.new_zeros(x.shape[0], self.hidden_size)
            state = (zeros, zeros)
        h, c = state
        # TODO: the four gates from one matrix product each, then the new cell and hidden state
        raise NotImplementedError('LSTMCell.forward: the four gates from one matrix product each, then the new cell and hidden state')
        return h, c


class ScratchLSTMLanguageModel(nn.Module):
    """LSTMLanguageModel with your LSTMCell, looping over the time steps.

    forward(x (B, T) int64, state=None) -> (log_probs (B, T, V), state), state = (h, c) each (B, H).
    """

    def __init__(self, vocab_size, embed_dim, hidden_dim):
        super().__init__()
        # TODO: embedding, one LSTMCell, output layer
        raise NotImplementedError('ScratchLSTMLanguageModel.__init__: embedding, one LSTMCell, output layer')

    def forward(self, x, state=None):
        # TODO: one cell step per position, carrying (h, c); collect the hidden states
        raise NotImplementedError('ScratchLSTMLanguageModel.forward: one cell step per position, carrying (h, c); collect the hidden states')
        return log_probs, state


class AttentionLSTMLanguageModel(nn.Module):
    """An LSTMCell encoder over the context and an attentive LSTMCell decoder.

    The encoder reads the sequence into states e_1 .. e_T (B, T, H). At step t the decoder
    scores e_1 .. e_t against its previous hidden state by dot product (later positions are
    masked out), softmaxes, forms the context with bmm, feeds [embedding of x_t; context] to
    its cell, and projects its new hidden state to log-probabilities.
    forward(x (B, T) int64) -> (log_probs (B, T, V), weights (B, T, T)); row t of the weights
    is zero after position t.
    """

    def __init__(self, vocab_size, embed_dim, hidden_dim):
        super().__init__()
        # TODO: embedding, encoder cell, decoder cell fed [embedding; context], output layer
        raise NotImplementedError('AttentionLSTMLanguageModel.__init__: embedding, encoder cell, decoder cell fed [embedding; context], output layer')

    def forward(self, x):
        # TODO: encode, then decode step by step with causal dot-product attention
        raise NotImplementedError('AttentionLSTMLanguageModel.forward: encode, then decode step by step with causal dot-product attention')
        return log_probs, weights


def _device_of(model):
    return next(model.parameters()).device


def greedy_generate(model, prefix_ids, length):
    """prefix_ids followed by ``length`` ids, each the most likely next id (no randomness).

    ``model(x (1, T), state)`` returns (log_probs (1, T, V), state): feed the prefix once,
    then one new id at a time with the state.
    """
    ids = list(prefix_ids)
    # TODO: argmax of the last position's log-probabilities, carrying the state
    raise NotImplementedError("greedy_generate: argmax of the last position's log-probabilities, carrying the state")
    return ids


def sample_generate(model, prefix_ids, length, temperature=1.0, generator=None):
    """prefix_ids followed by ``length`` ids drawn from softmax(log_probs / temperature).

    Draw with ``torch.multinomial(probs, 1, generator=generator)`` so that a seeded generator
    gives the same ids every time.
    """
    ids = list(prefix_ids)
    # TODO: divide the last log-probabilities by the temperature, softmax, draw one id
    raise NotImplementedError('sample_generate: divide the last log-probabilities by the temperature, softmax, draw one id')
    return ids


def perplexity(model, ids, seq_len):
    """exp of the mean negative log-likelihood (natural log) of ids[t + 1] given ids up to t.

    ids (N,) int64. Cut ids into consecutive chunks: inputs ids[s : s + seq_len], targets
    ids[s + 1 : s + seq_len + 1] for s = 0, seq_len, 2 * seq_len, ... (the last chunk may be
    shorter); each chunk starts from state None. Every id but the first is predicted once.
    """
    # TODO: sum the targets' negative log-probabilities over the chunks, then exp(mean)
    raise NotImplementedError("perplexity: sum the targets' negative log-probabilities over the chunks, then exp(mean)")
    return math.exp(total / count)


if __name__ == "__main__":
    # Try it: compare your cell with PyTorch's, then train the scratch model briefly on a rhyme.
    torch.manual_seed(0)
    cell, reference = LSTMCell(5, 4), nn.LSTMCell(5, 4)
    with torch.no_grad():
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            getattr(cell, name).copy_(getattr(reference, name))
    x, h0, c0 = torch.randn(3, 5), torch.randn(3, 4), torch.randn(3, 4)
    for mine, theirs in zip(cell(x, (h0, c0)), reference(x, (h0, c0)), strict=True):
        print("max |LSTMCell - nn.LSTMCell|:", (mine - theirs).abs().max().item())

    text = "twinkle twinkle little star, how I wonder what you are. " * 20
    chars = sorted(set(text))
    ids = torch.tensor([chars.index(char) for char in text])
    model = ScratchLSTMLanguageModel(len(chars), 16, 64)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    windows = ids[: len(ids) // 33 * 33].view(-1, 33)
    for _ in range(60):
        log_probs, _ = model(windows[:, :-1])
        loss = nn.functional.nll_loss(log_probs.reshape(-1, len(chars)), windows[:, 1:].reshape(-1))
        optimizer.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
    print(f"training loss {loss.item():.3f}, perplexity on the text {perplexity(model, ids, 32):.2f}")
    prefix = [chars.index(char) for char in "twinkle "]
    print("greedy:", "".join(chars[i] for i in greedy_generate(model, prefix, 40)))
    print("sampled:", "".join(chars[i] for i in sample_generate(model, prefix, 40, temperature=0.8)))
