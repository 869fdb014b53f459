import operator
import string
import typing
import types

import torch.nn as nn


class Model(nn.Module):
    def __init__(self, name):
        super().__init__()
        self.x = getattr(self, name)  # expect: getattr with a computed name
        self.y = getattr(self, "__cl" + "ass__")  # expect: getattr with a computed name
        self.z = getattr(self, f"R{name}")  # expect: getattr with a computed name
        self.w = getattr(self, "RNN")  # expect: nn.RNN
        setattr(nn, name, None)  # expect: setattr(torch.nn, a computed name)
        self.v = vars(type)  # expect: vars() used as a value
        self.u = vars()  # expect: vars()


get = operator.attrgetter("RNN")  # expect: operator.attrgetter
fmt = string.Formatter()  # expect: string.Formatter
hints = typing.get_type_hints(Model)  # expect: typing.get_type_hints
code = types.CodeType  # expect: types.CodeType
base = ().__class__.__base__  # expect: .__class__ (as a value) | .__base__
