import torch
import torch.nn as nn

x = (m := nn).RNN(2, 2)  # expect: nn.RNN | the module torch.nn used as a value
y = (torch.nn if x else None).LSTM  # expect: the module torch.nn used as a value
for mod in (torch.nn,):  # expect: the module torch.nn used as a value
    mod.GRU(2, 2)
z = lambda: torch.nn  # expect: the module torch.nn used as a value
names = dir(nn)  # expect: the module torch.nn used as a value
