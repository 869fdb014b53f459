import sys
import torch.nn as nn

cls = globals()["n" + "n"]  # expect: globals()
names = locals()  # expect: locals()
builtins_dict = __builtins__  # expect: __builtins__
loader = __loader__  # expect: __loader__


def where():
    try:
        raise ValueError
    except ValueError as e:
        return e.__traceback__.tb_frame.f_globals  # expect: .__traceback__ | .tb_frame | .f_globals


def hooks():
    sys.settrace(None)  # expect: sys.settrace
    breakpoint()  # expect: breakpoint()
