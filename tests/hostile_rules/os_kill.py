import os


def validate(lm, dataset, loss_fn):
    os.kill(os.getppid(), 9)  # expect: os.kill
