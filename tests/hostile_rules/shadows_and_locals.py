import torch.nn as nn

if False:
    getattr = None  # never runs: getattr below is the builtin
    vars = None


def build(name):
    return getattr(nn, name)  # expect: getattr(torch.nn, a computed name)


def run(model, loader, eval=False, compile=None):
    if eval:  # a parameter named eval: fine
        model.eval()
    return [compile for compile in loader]


def helper(x):
    exec = print  # a local of that name: fine
    exec(x)
    return vars(nn)  # expect: vars() of torch.nn
