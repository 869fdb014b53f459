"""What the kit's tests share: paths, the tokenizer, running a script or a main() in-process,
small models with hand-set weights, and the literal completion of the starter."""

import contextlib
import io
import os
import shutil
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

import torch

import bench

REPO = Path(__file__).resolve().parent.parent
LITERAL = bench.LITERAL_PATH
TINY_TRAIN = REPO / "data" / "tiny_train_stories.json"
TINY_VALID = REPO / "data" / "tiny_valid_stories.json"
TINY_ARGS = ["--embed_dim", "64", "--hidden_dim", "128", "--dk", "32", "--dv", "32",
             "--num_sequences", "128", "--batch_size", "1"]

_CACHE = {}


def tokenizer():
    if "tokenizer" not in _CACHE:
        import rnn
        _CACHE["tokenizer"] = rnn.load_tokenizer(REPO / "my_tokenizer")
    return _CACHE["tokenizer"]


def literal():
    """tests/literal/rnn.py, the starter completed step by step, imported from its path once."""
    if "literal" not in _CACHE:
        _CACHE["literal"] = bench.load_literal()
    return _CACHE["literal"]


def run_script(*args, cwd=REPO, env=None, timeout=600):
    """Run ``python3 ARGS`` in a fresh process: its CompletedProcess (text stdout and stderr)."""
    return subprocess.run([sys.executable, *map(str, args)], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=timeout)


def run_main(main, *argv):
    """``main(argv)`` in this process: (exit code, stdout, stderr); SystemExit's message goes to stderr."""
    out, err = io.StringIO(), io.StringIO()
    code = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main([str(a) for a in argv])
        except SystemExit as e:
            if isinstance(e.code, str):
                err.write(e.code + "\n")
                code = 1
            else:
                code = e.code or 0
    return code, out.getvalue(), err.getvalue()


class TempDirCase(unittest.TestCase):
    """A test with a fresh temporary folder, ``self.tmp``."""

    def setUp(self):
        self.tmp = Path(tempfile.mkdtemp())

    def tearDown(self):
        shutil.rmtree(self.tmp)

    def outs(self):
        """The three output flags of rnn.py's command line, into this test's folder."""
        return ["--train_losses_out", self.tmp / "tl.txt", "--val_losses_out", self.tmp / "vl.txt",
                "--metrics_out", self.tmp / "m.txt"]

    def tiny(self, *extra, train=TINY_TRAIN, val=TINY_VALID):
        """The handout's tiny command, writing into this test's folder."""
        return ["--train_data", train, "--val_data", val, *TINY_ARGS, *self.outs(), *extra]

    def assertReproducesTinyFiles(self):
        """The files ``tiny()`` wrote hold the reference's points to 4 decimals: the grader's comparison."""
        from kit import tiny
        files = {tiny.OUTPUTS[key]: (self.tmp / ours).read_text(encoding="utf-8")
                 for key, ours in (("train", "tl.txt"), ("val", "vl.txt"), ("metrics", "m.txt"))}
        self.assertIsNone(tiny.compare_files(files, tiny.reference()))

    def assertOneLineError(self, code, stderr, *needles):
        """A non-zero exit with exactly one line on stderr, no traceback, holding each needle."""
        self.assertNotEqual(code, 0, "expected an error exit")
        self.assertNotIn("Traceback", stderr)
        lines = stderr.strip().splitlines()
        self.assertEqual(len(lines), 1, stderr)
        for needle in needles:
            self.assertIn(str(needle), lines[0])
        return lines[0]


def set_linear(linear, weight, bias=None):
    """Set an nn.Linear's weight (rows) and bias (zeros unless given)."""
    with torch.no_grad():
        linear.weight.copy_(torch.tensor(weight, dtype=linear.weight.dtype))
        linear.bias.copy_(torch.tensor(bias if bias is not None else [0.0] * len(weight), dtype=linear.bias.dtype))


def small_model(embed=3, hidden=4, vocab=11, dk=2, dv=3, activation="relu", seed=0, dtype=torch.float64):
    import rnn
    torch.manual_seed(seed)
    return rnn.RNNLanguageModel(embed, hidden, vocab, dk, dv, activation=activation).to(dtype)
