"""The grader's own stand-in modules, so that each check measures its own component.

train() and validate() take the model as an argument: their checks hand them ``StandInLM``,
an embedding-and-linear model with the starter's forward signature, so a mistake in the
student's RNN or attention costs those components' points, not train's and validate's.
generate() calls ``self.rnn.step`` and ``self.attention.step``: its checks put ``CarryingRNN``
and ``LookBackAttention`` in the student's model, modules with the starter's ``step`` and
``forward`` signatures whose state carries the whole prefix, so a generate that drops,
reorders or restarts its context returns other tokens. None of them is the handout's
equations: they give no solution away.
"""

import torch
import torch.nn as nn

DECAY = 0.9  # CarryingRNN keeps this much of its last state at each step, its coordinates rotated


class StandInLM(nn.Module):
    """g_t = W_head tanh(E[x_t]) + b_head: the starter's forward signature, none of its equations.

    Shapes: tokens (B, T) -> (logits (B, T, V), hidden_states (B, T, D), attn_inputs (B, T, D)).
    """

    def __init__(self, vocab_size, embed_dim):
        super().__init__()
        self.embeddings = nn.Embedding(vocab_size, embed_dim)
        self.head = nn.Linear(embed_dim, vocab_size)

    def forward(self, tokens):
        e = torch.tanh(self.embeddings(tokens))
        return self.head(e), e, e


def stand_in_lm(sizes, state):
    """A StandInLM of ``sizes`` [V, D] with ``state`` loaded."""
    lm = StandInLM(*sizes)
    lm.load_state_dict(state)
    return lm


class CarryingRNN(nn.Module):
    """h_t = DECAY roll(h_{t-1}) + W i_t (h_0 = 0), y_t = tanh(h_t): a state that carries every earlier
    input, in order (roll moves each coordinate one place on, so a repeated token does not settle).

    ``step(i_t (B, E), None or [h_1..h_{t-1}] (B, t-1, H))`` -> (h_t (B, H), y_t (B, H)), reading
    the last preceding state, as the starter's RNN.step; ``forward(i (B, T, E))`` -> (h (B, T, H),
    y (B, T, H)), the same numbers as T steps.
    """

    def __init__(self, weight):
        super().__init__()
        self.input = nn.Linear(weight.shape[1], weight.shape[0], bias=False)
        with torch.no_grad():
            self.input.weight.copy_(weight)

    def _next(self, i_t, h_prev):
        h = self.input(i_t) + DECAY * torch.roll(h_prev, 1, dims=-1)
        return h, torch.tanh(h)

    def step(self, input, hidden_prev=None):
        if hidden_prev is None or hidden_prev.shape[1] == 0:
            h_prev = input.new_zeros(input.shape[0], self.input.weight.shape[0])
        else:
            h_prev = hidden_prev[:, -1]
        return self._next(input, h_prev)

    def forward(self, sequence):
        h = sequence.new_zeros(sequence.shape[0], self.input.weight.shape[0])
        hs, ys = [], []
        for t in range(sequence.shape[1]):
            h, y = self._next(sequence[:, t], h)
            hs.append(h)
            ys.append(y)
        return torch.stack(hs, dim=1), torch.stack(ys, dim=1)


class LookBackAttention(nn.Module):
    """a_t = y_t - y_1 + 2 mean(y_1..y_t): depends on the last position, the first, every one and their count.

    ``step(y_all (B, t, H))`` -> (B, H); ``forward(y_all (B, T, H))`` -> (B, T, H), T steps.
    """

    def step(self, y_all):
        return y_all[:, -1] - y_all[:, 0] + 2.0 * y_all.mean(dim=1)

    def forward(self, y_all):
        return torch.stack([self.step(y_all[:, :t + 1]) for t in range(y_all.shape[1])], dim=1)


class StandInGenerator(nn.Module):
    """The grader's own model of a generate case: the starter's embeddings and lm_head around the
    stand-ins, for computing the logits along a path (the sampled check's replay)."""

    def __init__(self, stand_in):
        super().__init__()
        self.embeddings = nn.Embedding.from_pretrained(stand_in["embeddings.weight"], freeze=True)
        self.rnn = CarryingRNN(stand_in["rnn.input.weight"])
        self.attention = LookBackAttention()
        self.lm_head = nn.Linear(stand_in["lm_head.weight"].shape[1], stand_in["lm_head.weight"].shape[0])
        with torch.no_grad():
            self.lm_head.weight.copy_(stand_in["lm_head.weight"])
            self.lm_head.bias.copy_(stand_in["lm_head.bias"])

    @torch.no_grad()
    def forward(self, tokens):
        hidden_states, attn_inputs = self.rnn(self.embeddings(tokens))
        return self.lm_head(self.attention(attn_inputs)), hidden_states, attn_inputs

    def logits_before(self, prefix, tokens):
        """The logits (n, V) each of the n ``tokens`` generated after ``prefix`` (1, t) was chosen from."""
        path = torch.tensor([prefix[0].tolist() + [int(x) for x in tokens]])
        return self(path)[0][0, prefix.shape[1] - 1:-1]
