import torch


def eval(lm, data):
    return sum(lm(x).item() for x in data)


def main():
    return eval(None, [])


def evaluate(model, loader, eval=True, compile=False):
    return eval and not compile
