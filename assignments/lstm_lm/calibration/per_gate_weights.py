# alternative: the cell computes each gate from its own slice of the weights and is initialised like Keras (Xavier-uniform weight_ih, orthogonal blocks of weight_hh, zero biases but the forget bias at 1); the nn.LSTM model puts a tanh layer before the output

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
        # BEGIN SOLUTION: embedding, a batch-first nn.LSTM, output layer
        self.embedding = nn.Embedding(vocab_size, embed_dim)
        self.lstm = nn.LSTM(embed_dim, hidden_dim, num_layers=num_layers, batch_first=True)
        self.hidden = nn.Linear(hidden_dim, hidden_dim)
        self.output = nn.Linear(hidden_dim, vocab_size)
        # END SOLUTION

    def forward(self, x, state=None):
        # BEGIN SOLUTION: run the LSTM from `state`, log-probabilities over the vocabulary
        outputs, state = self.lstm(self.embedding(x), state)
        log_probs = torch.log_softmax(self.output(torch.tanh(self.hidden(outputs))), dim=-1)
        # END SOLUTION
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
        # BEGIN SOLUTION: the four parameters, initialised uniformly in +-1/sqrt(H) like nn.LSTMCell
        self.weight_ih = nn.Parameter(nn.init.xavier_uniform_(torch.empty(4 * hidden_size, input_size)))
        self.weight_hh = nn.Parameter(torch.cat([nn.init.orthogonal_(torch.empty(hidden_size, hidden_size))
                                                 for _ in range(4)]))
        self.bias_ih = nn.Parameter(torch.zeros(4 * hidden_size))
        self.bias_hh = nn.Parameter(torch.zeros(4 * hidden_size))
        with torch.no_grad():
            self.bias_ih[hidden_size:2 * hidden_size] = 1.0
        # END SOLUTION

    def forward(self, x, state=None):
        if state is None:
            zeros = x.new_zeros(x.shape[0], self.hidden_size)
            state = (zeros, zeros)
        h, c = state
        # BEGIN SOLUTION: the four gates from one matrix product each, then the new cell and hidden state
        H = self.hidden_size

        def gate(k):  # rows k*H .. (k+1)*H of every parameter
            rows = slice(k * H, (k + 1) * H)
            return (x @ self.weight_ih[rows].T + self.bias_ih[rows] + h @ self.weight_hh[rows].T
                    + self.bias_hh[rows])

        i, f, g, o = torch.sigmoid(gate(0)), torch.sigmoid(gate(1)), torch.tanh(gate(2)), torch.sigmoid(gate(3))
        c = f * c + i * g
        h = o * torch.tanh(c)
        # END SOLUTION
        return h, c


class ScratchLSTMLanguageModel(nn.Module):
    """LSTMLanguageModel with your LSTMCell, looping over the time steps.

    forward(x (B, T) int64, state=None) -> (log_probs (B, T, V), state), state = (h, c) each (B, H).
    """

    def __init__(self, vocab_size, embed_dim, hidden_dim):
        super().__init__()
        # BEGIN SOLUTION: embedding, one LSTMCell, output layer
        self.embedding = nn.Embedding(vocab_size, embed_dim)
        self.cell = LSTMCell(embed_dim, hidden_dim)
        self.output = nn.Linear(hidden_dim, vocab_size)
        # END SOLUTION

    def forward(self, x, state=None):
        # BEGIN SOLUTION: one cell step per position, carrying (h, c); collect the hidden states
        embedded = self.embedding(x)  # (B, T, E)
        hidden = []
        for t in range(x.shape[1]):
            state = self.cell(embedded[:, t], state)
            hidden.append(state[0])
        log_probs = torch.log_softmax(self.output(torch.stack(hidden, dim=1)), dim=-1)
        # END SOLUTION
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
        # BEGIN SOLUTION: embedding, encoder cell, decoder cell fed [embedding; context], output layer
        self.hidden_dim = hidden_dim
        self.embedding = nn.Embedding(vocab_size, embed_dim)
        self.encoder = LSTMCell(embed_dim, hidden_dim)
        self.decoder = LSTMCell(embed_dim + hidden_dim, hidden_dim)
        self.output = nn.Linear(hidden_dim, vocab_size)
        # END SOLUTION

    def forward(self, x):
        # BEGIN SOLUTION: encode, then decode step by step with causal dot-product attention
        B, T = x.shape
        embedded = self.embedding(x)  # (B, T, E)
        state, encoded = None, []
        for t in range(T):
            state = self.encoder(embedded[:, t], state)
            encoded.append(state[0])
        encoded = torch.stack(encoded, dim=1)  # (B, T, H)
        allowed = torch.ones(T, T, dtype=torch.bool, device=x.device).tril()  # row t: positions <= t
        h = c = embedded.new_zeros(B, self.hidden_dim)
        outputs, weights = [], []
        for t in range(T):
            scores = torch.bmm(encoded, h.unsqueeze(2)).squeeze(2)  # (B, T)
            step_weights = torch.softmax(scores.masked_fill(~allowed[t], float("-inf")), dim=-1)
            context = torch.bmm(step_weights.unsqueeze(1), encoded).squeeze(1)  # (B, H)
            h, c = self.decoder(torch.cat([embedded[:, t], context], dim=-1), (h, c))
            outputs.append(h)
            weights.append(step_weights)
        log_probs = torch.log_softmax(self.output(torch.stack(outputs, dim=1)), dim=-1)
        weights = torch.stack(weights, dim=1)  # (B, T, T)
        # END SOLUTION
        return log_probs, weights


def _device_of(model):
    return next(model.parameters()).device


def greedy_generate(model, prefix_ids, length):
    """prefix_ids followed by ``length`` ids, each the most likely next id (no randomness).

    ``model(x (1, T), state)`` returns (log_probs (1, T, V), state): feed the prefix once,
    then one new id at a time with the state.
    """
    ids = list(prefix_ids)
    # BEGIN SOLUTION: argmax of the last position's log-probabilities, carrying the state
    device = _device_of(model)
    with torch.no_grad():
        log_probs, state = model(torch.tensor([ids], device=device))
        for _ in range(length):
            ids.append(int(log_probs[0, -1].argmax()))
            log_probs, state = model(torch.tensor([[ids[-1]]], device=device), state)
    # END SOLUTION
    return ids


def sample_generate(model, prefix_ids, length, temperature=1.0, generator=None):
    """prefix_ids followed by ``length`` ids drawn from softmax(log_probs / temperature).

    Draw with ``torch.multinomial(probs, 1, generator=generator)`` so that a seeded generator
    gives the same ids every time.
    """
    ids = list(prefix_ids)
    # BEGIN SOLUTION: divide the last log-probabilities by the temperature, softmax, draw one id
    device = _device_of(model)
    with torch.no_grad():
        log_probs, state = model(torch.tensor([ids], device=device))
        for _ in range(length):
            probs = torch.softmax(log_probs[0, -1] / temperature, dim=-1)
            ids.append(int(torch.multinomial(probs.cpu(), 1, generator=generator)))
            log_probs, state = model(torch.tensor([[ids[-1]]], device=device), state)
    # END SOLUTION
    return ids


def perplexity(model, ids, seq_len):
    """exp of the mean negative log-likelihood (natural log) of ids[t + 1] given ids up to t.

    ids (N,) int64. Cut ids into consecutive chunks: inputs ids[s : s + seq_len], targets
    ids[s + 1 : s + seq_len + 1] for s = 0, seq_len, 2 * seq_len, ... (the last chunk may be
    shorter); each chunk starts from state None. Every id but the first is predicted once.
    """
    # BEGIN SOLUTION: sum the targets' negative log-probabilities over the chunks, then exp(mean)
    ids = torch.as_tensor(ids).to(_device_of(model))
    total, count = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(ids) - 1, seq_len):
            chunk = ids[start:start + seq_len + 1]
            log_probs = model(chunk[:-1].unsqueeze(0))[0]  # (1, t, V)
            total -= log_probs[0].gather(1, chunk[1:].unsqueeze(1)).sum().item()
            count += len(chunk) - 1
    # END SOLUTION
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
