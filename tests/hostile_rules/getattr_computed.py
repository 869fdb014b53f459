import torch.nn as nn


class RNN(nn.Module):
    def __init__(self, input_dim, hidden_dim):
        super().__init__()
        self.rnn = getattr(nn, "R" + "NN")(input_dim, hidden_dim)  # expect: getattr(torch.nn, a computed name)
