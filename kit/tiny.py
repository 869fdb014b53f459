"""The handout's tiny command: its flags, its reference points, and the one comparison with them.

The handout's command writes tiny_metrics.txt, tiny_train_losses.txt and tiny_val_losses.txt
in the current folder, so the kit keeps its reference apart, where no run writes:
data/tiny_*.txt (the files as the course's environment wrote them) and data/tiny_reference.json
(their points and the command's settings, made from them by grader/make_test_data.py).
rnn.py's verdict line, the grader's program check, the case generator and the tests all
compare through ``worst_point``, to ``TOLERANCE``.
"""

import json

from kit.files import REPO, kit_path

TOLERANCE = 1e-4  # "to 4 decimals", as the handout asks of tiny_metrics.txt
REFERENCE = REPO / "data" / "tiny_reference.json"
REFERENCE_FILES = {"train_losses": REPO / "data" / "tiny_train_losses.txt",
                   "val_losses": REPO / "data" / "tiny_val_losses.txt",
                   "metrics": REPO / "data" / "tiny_metrics.txt"}
OUTPUTS = {"train": "tiny_train_losses.txt", "val": "tiny_val_losses.txt", "metrics": "tiny_metrics.txt"}
DATA = {"train": "data/tiny_train_stories.json", "val": "data/tiny_valid_stories.json"}
SIZES = {"embed_dim": 64, "hidden_dim": 128, "dk": 32, "dv": 32, "num_sequences": 128, "batch_size": 1}
# The handout's command line, as `python3 rnn.py *ARGS` (section 7.10).
ARGS = ["--train_data", DATA["train"], "--val_data", DATA["val"],
        "--train_losses_out", OUTPUTS["train"], "--val_losses_out", OUTPUTS["val"], "--metrics_out", OUTPUTS["metrics"],
        *(word for key, value in SIZES.items() for word in (f"--{key}", str(value)))]


def settings(tokenizer, activation, lr, grad_clip, seed, val_batches):
    """The settings that make the tiny command's numbers, as data/tiny_reference.json records them."""
    return {"train_data": DATA["train"], "val_data": DATA["val"], "tokenizer": tokenizer, **SIZES,
            "activation": activation, "lr": lr, "grad_clip": grad_clip, "seed": seed, "val_batches": val_batches}


def reference():
    """data/tiny_reference.json: {"settings", "train_losses", "val_losses", "made_with"}."""
    return json.loads(REFERENCE.read_text(encoding="utf-8"))


def reference_points():
    """The reference's points as data/tiny_*.txt hold them: (train_losses, val_losses)."""
    return tuple([float(line) for line in REFERENCE_FILES[key].read_text(encoding="utf-8").split()]
                 for key in ("train_losses", "val_losses"))


def worst_point(train_losses, val_losses, ref):
    """The point farthest from the reference: (kind "train" or "val", index, got, expected, |difference|).

    Raises ValueError when the number of points differs (the message says which and how).
    """
    worst = None
    for kind, got, expected in (("train", train_losses, ref["train_losses"]), ("val", val_losses, ref["val_losses"])):
        if len(got) != len(expected):
            raise ValueError(f"{len(got)} {kind} points, the reference has {len(expected)}")
        for i, (a, b) in enumerate(zip(got, expected)):
            gap = abs(a - b)
            if worst is None or not gap <= worst[4]:  # a NaN is the worst of all
                worst = (kind, i, a, b, gap)
    return worst


def matches(gap):
    return gap <= TOLERANCE


def verdict(args, train_losses, val_losses):
    """rnn.py's last line for the handout's tiny command: did it reproduce the reference to 4 decimals?

    ``args`` holds rnn.py's settings; for any other command, None.
    """
    try:
        ref = reference()
    except (OSError, ValueError):
        return None
    mine = {key: getattr(args, key) for key in ref["settings"]}
    for key in ("train_data", "val_data", "tokenizer"):
        path = kit_path(mine[key]).resolve()  # "my_tokenizer" from any folder is the kit's
        mine[key] = str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)
    if mine != ref["settings"]:
        return None
    where = REFERENCE.relative_to(REPO)
    try:
        kind, i, got, expected, gap = worst_point(train_losses, val_losses, ref)
    except ValueError:
        return f"tiny command: NOT reproduced: {len(train_losses)} points, {where} has {len(ref['train_losses'])}"
    if matches(gap):
        return (f"tiny command: reproduced {where} to 4 decimals (largest |difference| {gap:.1g} over "
                f"{len(train_losses) + len(val_losses)} points; made with {ref['made_with']})")
    name = "train" if kind == "train" else "valid"
    return (f"tiny command: NOT reproduced: {name} point {i} is {got:.6f}, {where} has {expected:.6f} "
            f"(|difference| {gap:.2g}; made with {ref['made_with']})")


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


def compare_files(files, ref):
    """None when a run's three files ({name: text}) match ``ref`` to TOLERANCE, else one line saying what differs."""
    try:
        train = _numbers(OUTPUTS["train"], files.get(OUTPUTS["train"]), len(ref["train_losses"]))
        val = _numbers(OUTPUTS["val"], files.get(OUTPUTS["val"]), len(ref["val_losses"]))
        kind, i, got, expected, gap = worst_point(train, val, ref)
        if not matches(gap):
            raise AssertionError(f"{OUTPUTS[kind]}: point {i} is {got:.6f}, the kit's run has {expected:.6f} "
                                 f"(|difference| {gap:.2g})")
        text = files.get(OUTPUTS["metrics"])
        if text is None:
            raise AssertionError(f"{OUTPUTS['metrics']} was not written")
        lines = [line.strip() for line in text.strip().splitlines()]
        for prefix, value in (("Final Train Loss:", ref["train_losses"][-1]), ("Final Valid Loss:", ref["val_losses"][-1])):
            line = next((line for line in lines if line.startswith(prefix)), None)
            if line is None:
                raise AssertionError(f"{OUTPUTS['metrics']}: no line '{prefix} ...'")
            try:
                got = float(line[len(prefix):])
            except ValueError:
                raise AssertionError(f"{OUTPUTS['metrics']}: {line!r} does not end in a number") from None
            if not matches(abs(got - value)):
                raise AssertionError(f"{OUTPUTS['metrics']}: {prefix} {got:.6f}, the kit's run has {value:.6f}")
    except AssertionError as e:
        return str(e)
    return None
