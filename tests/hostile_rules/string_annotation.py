import functools


@functools.singledispatch
def f(x):
    return x


@f.register
def _(x: "__import__('torch').nn.RNN"):  # expect: __import__()
    return x
