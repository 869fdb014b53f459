import torch.nn as nn

RNNClass = vars(nn)["RNN"]  # expect: vars() of torch.nn
