"""The autograder's own run: the student's file as a program, ``python3 rnn.py [the handout's tiny
command]``, in a scratch folder holding a copy of my_tokenizer/ and the tiny data, time-limited,
and its three output files compared with the kit's run (data/tiny_reference.json, which holds
the committed tiny_*.txt points) to 1e-4, the handout's "4 decimals"."""

import json

from test_cases import isolation
from test_cases.helpers import REPO

LABEL = "rnn.py as a program: the handout's tiny command, its three files against the kit's run to 1e-4"
COMPONENT = "tiny command"
DEFAULT_TIMEOUT = 300.0  # the literal completion trains in 7 to 15 s on 2 shared cores, the kit's in about 5
TOLERANCE = 1e-4
OUTPUTS = {"train": "tiny_train_losses.txt", "val": "tiny_val_losses.txt", "metrics": "tiny_metrics.txt"}
ARGS = ["--train_data", "data/tiny_train_stories.json", "--val_data", "data/tiny_valid_stories.json",
        "--train_losses_out", OUTPUTS["train"], "--val_losses_out", OUTPUTS["val"],
        "--metrics_out", OUTPUTS["metrics"], "--embed_dim", "64", "--hidden_dim", "128", "--dk", "32", "--dv", "32",
        "--num_sequences", "128", "--batch_size", "1"]
FILES = {"my_tokenizer": REPO / "my_tokenizer", "data/tiny_train_stories.json": REPO / "data/tiny_train_stories.json",
         "data/tiny_valid_stories.json": REPO / "data/tiny_valid_stories.json"}


def reference():
    data = json.loads((REPO / "data" / "tiny_reference.json").read_text(encoding="utf-8"))
    return data["train_losses"], data["val_losses"]


def _numbers(name, text, expected_count):
    if text is None:
        raise AssertionError(f"{name} was not written")
    try:
        values = [float(line) for line in text.split()]
    except ValueError:
        raise AssertionError(f"{name}: expected one number a line, got {text.strip()[:60]!r}") from None
    if len(values) != expected_count:
        raise AssertionError(f"{name}: {len(values)} points, the kit's run has {expected_count}")
    return values


def compare(files):
    """None when the three files match the kit's run to TOLERANCE, else one line saying what differs."""
    train, val = reference()
    try:
        for key, points in (("train", train), ("val", val)):
            got = _numbers(OUTPUTS[key], files.get(OUTPUTS[key]), len(points))
            for i, (a, b) in enumerate(zip(got, points)):
                if not abs(a - b) <= TOLERANCE:
                    raise AssertionError(f"{OUTPUTS[key]}: point {i} is {a:.6f}, the kit's run has {b:.6f} "
                                         f"(|difference| {abs(a - b):.2g})")
        text = files.get(OUTPUTS["metrics"])
        if text is None:
            raise AssertionError(f"{OUTPUTS['metrics']} was not written")
        lines = [line.strip() for line in text.strip().splitlines()]
        for prefix, value in (("Final Train Loss:", train[-1]), ("Final Valid Loss:", val[-1])):
            line = next((line for line in lines if line.startswith(prefix)), None)
            if line is None:
                raise AssertionError(f"{OUTPUTS['metrics']}: no line '{prefix} ...'")
            try:
                got = float(line[len(prefix):])
            except ValueError:
                raise AssertionError(f"{OUTPUTS['metrics']}: {line!r} does not end in a number") from None
            if not abs(got - value) <= TOLERANCE:
                raise AssertionError(f"{OUTPUTS['metrics']}: {prefix} {got:.6f}, the kit's run has {value:.6f}")
    except AssertionError as e:
        return str(e)
    return None


def run(student, timeout=DEFAULT_TIMEOUT, memory_gb=isolation.DEFAULT_MEMORY_GB):
    """{"ok", "message", "uses", "output"}: the run and its comparison (the rule is the caller's)."""
    result = isolation.run_program(student, ARGS, FILES, timeout, memory_gb)
    if result["ok"]:
        result["message"] = compare(result["files"])
        result["ok"] = result["message"] is None
    return result
