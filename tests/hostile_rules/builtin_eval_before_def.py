def helper():
    return eval("1")  # expect: eval()


helper()


def eval(lm, data):
    return 0
