import functools
import torch.nn as nn


def make(m, name):
    return m.RNN(2, 2)


made = make(nn, "x")  # expect: the module torch.nn used as a value
modules = [nn]  # expect: the module torch.nn used as a value
lookup = functools.partial(getattr, nn)  # expect: getattr used as a value | the module torch.nn used as a value


class Holder:
    mod = nn  # expect: the module torch.nn used as a value


def give():
    return nn  # expect: the module torch.nn used as a value


class Carrier:
    import torch.nn as nn  # expect: an import in a class body
