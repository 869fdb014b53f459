"""The command line's shared rules: one-line errors, number types, the device, and Ctrl-C."""

import argparse
import contextlib
import difflib
import math
import sys


class OneLineParser(argparse.ArgumentParser):
    """argparse with one-line errors, no abbreviated flags, and a suggestion for a mistyped one.

    An abbreviation silently accepted (``--num_sequence`` for ``--num_sequences``) is how a
    typo overwrites a run; here it is an error that names the flag meant.
    """

    def __init__(self, **kwargs):
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(**kwargs)

    def error(self, message):
        if message.startswith("unrecognized arguments:"):
            known = [s for a in self._actions for s in a.option_strings]
            for word in message.split(":", 1)[1].split():
                close = difflib.get_close_matches(word.split("=")[0], known, n=1, cutoff=0.6)
                if word.startswith("-") and close:
                    message = f"unrecognized argument {word}: did you mean {close[0]}?"
                    break
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")

    def given(self, argv):
        """(flag, dest) of each option written out in ``argv``."""
        dests = []
        for word in argv:
            action = self._option_string_actions.get(word.split("=", 1)[0]) if word.startswith("--") else None
            if action is not None:
                dests.append((word.split("=", 1)[0], action.dest))
        return dests


def number(kind, *, above=None, at_least=None, below=None):
    """An argparse type: ``kind`` (int or float) parsed and held to its bounds, finite if a float.

    ``number(int, above=0)`` is a positive integer, ``number(float, at_least=0)`` a number >= 0,
    ``number(int, at_least=0, below=2**63)`` a seed.
    """
    if above is not None:
        what, bound = f"a positive {kind.__name__}", "must be positive" if above == 0 else f"must be > {above}"
    elif below is not None:
        what, bound = "an integer" if kind is int else "a number", f"must be between {at_least} and {_power(below)} - 1"
    else:
        what, bound = "an integer" if kind is int else "a number", f"must be >= {at_least}"

    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        ok = (kind is not float or math.isfinite(value)) and (above is None or value > above) and \
            (at_least is None or value >= at_least) and (below is None or value < below)
        if not ok:
            raise argparse.ArgumentTypeError(f"{bound}, got {text}")
        return value
    parse.__name__ = what.split(" ", 1)[1]
    return parse


def _power(n):
    """2**63 as the messages write it."""
    exponent = n.bit_length() - 1
    return f"2**{exponent}" if n == 2 ** exponent and exponent > 16 else str(n)


SEED_TYPE = number(int, at_least=0, below=2 ** 63)


def resolve_device(name):
    """auto, cpu, cuda or cuda:N -> torch.device; an InputError for anything else or a missing GPU."""
    import torch

    from kit.files import InputError
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        device = None
    if device is None or device.type not in ("cpu", "cuda"):
        raise InputError(f"--device {name}: not a device this kit runs on (use auto, cpu, cuda or cuda:N)")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"--device {name}: CUDA is not available on this machine")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise InputError(f"--device {name}: this machine has {torch.cuda.device_count()} GPU(s)")
    return device


@contextlib.contextmanager
def interrupt_exits(line, active=True):
    """Ctrl-C inside the block prints ``line`` and exits 130, with no traceback.

    A script wraps its imports in it (torch takes seconds to import on a busy machine) and its
    ``main``; imported as a module (``active`` false) the KeyboardInterrupt goes on up.
    """
    try:
        yield
    except KeyboardInterrupt:
        if not active:
            raise
        print(line, file=sys.stderr)
        sys.exit(130)
