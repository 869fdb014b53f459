import torch
import torch.nn as nn
from torch import nn as q

m = torch.nn
n = m


class RNN(nn.Module):
    def __init__(self, input_dim, hidden_dim):
        super().__init__()
        self.a = m.RNN(input_dim, hidden_dim)  # expect: nn.RNN
        self.b = q.LSTM(input_dim, hidden_dim)  # expect: nn.LSTM
        self.c = n.GRUCell(input_dim, hidden_dim)  # expect: nn.GRUCell
        R = nn.MultiheadAttention  # expect: nn.MultiheadAttention
        self.d = R(hidden_dim, 1)
        self.e = getattr(m, "RNNCell")(input_dim, hidden_dim)  # expect: nn.RNNCell
