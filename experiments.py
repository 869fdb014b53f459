"""Section 5 of the handout, one command: every sweep, plot, table and sample.

    python3 experiments.py all                 # the handout's full scale (about 1.3 h on 2 CPU cores)
    python3 experiments.py all --scale 0.02    # a quick run of the whole section
    python3 experiments.py batch --device cuda

Subcommands (defaults are the handout's: embed = hidden = 128, dk = dv = 128, batch 128,
50,000 sequences):
  sizes      embed = hidden in {64, 128, 256, 512}: training and validation loss curves
  batch      batch in {32, 64, 128, 256}: loss curves and a table of total time
  sequences  num_sequences in {10k, 20k, 50k, 100k}: final losses against num_sequences
  samples    250,000 sequences, embed = hidden = 512, dk = dv = 256: final losses, time, its
             loss curves, and three completions of "Once upon a time there was a" at each
             temperature 0, 0.3, 0.8
  all        the four, in that order

Each run is rnn.py's own training (its command line, in this process) writing its loss
files, run.json (losses, time, commit, machine) and model.pt under OUT/runs/NAME/. Its
validation points are the starter's (the first validation batch); run.json also records the
loss of the final weights on the whole validation set, and the tables show both. A finished
run is not repeated, so a stopped sweep resumes, and identical settings shared by several
questions run once. The completions are kept in the large run's samples.json. --force redoes runs.
A run's model.pt holds its whole state from its first validation point on (rnn.py --checkpoint):
Ctrl-C, a kill or a disconnect keeps the finished runs and the unfinished one's last save, from
which the same command resumes it, to the numbers of an unbroken run. Plots need matplotlib:
pip install -r requirements-plots.txt.
"""

import argparse
import csv
import io
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

from kit import runs
from kit.cli import SEED_TYPE, OneLineParser, interrupt_exits, number, resolve_device
from kit.data import DEFAULT_TOKENIZER, check_stackable, load_tokenizer
from kit.files import InputError, atomic_write, atomic_write_text

with interrupt_exits("experiments.py: interrupted", active=__name__ == "__main__"):  # rnn imports torch: seconds
    import rnn

REPO = Path(__file__).resolve().parent
BASE = dict(embed_dim=128, hidden_dim=128, dk=128, dv=128, batch_size=128, num_sequences=50_000)
PROMPT = "Once upon a time there was a"
TEMPERATURES = (0.0, 0.3, 0.8)
NUM_SAMPLES = 3
# The handout's own figures (Colab T4), shown beside ours.
HANDOUT_BATCH_SECONDS = {32: 482, 64: 240, 128: 125, 256: 100}
HANDOUT_LARGE = {"train_loss": 2.03271, "val_loss": 2.279308, "seconds": 2040}
QUESTIONS = ("sizes", "batch", "sequences", "samples")


def question_runs(question):
    """The (label, settings) of each run a question needs, before --scale."""
    if question == "sizes":
        return [(f"embed = hidden = {d}", {**BASE, "embed_dim": d, "hidden_dim": d}) for d in (64, 128, 256, 512)]
    if question == "batch":
        return [(f"batch {b}", {**BASE, "batch_size": b}) for b in (32, 64, 128, 256)]
    if question == "sequences":
        return [(f"{n:,} sequences", {**BASE, "num_sequences": n}) for n in (10_000, 20_000, 50_000, 100_000)]
    if question == "samples":
        return [("embed = hidden = 512, dk = dv = 256", {**BASE, "embed_dim": 512, "hidden_dim": 512, "dk": 256,
                                                         "dv": 256, "num_sequences": 250_000})]
    raise ValueError(question)


def scaled(settings, scale):
    return {**settings, "num_sequences": max(settings["batch_size"], round(settings["num_sequences"] * scale))}


def cost(s):
    """Rough relative cost of a run, for the time-left estimate only: multiply-adds per
    token (LM head over 1024 pieces, recurrence, attention projections) times sequences,
    plus ten one-batch validations and a final pass over about 2,000 validation sequences, at
    a third of a training step each."""
    H, E, dk, dv = s["hidden_dim"], s["embed_dim"], s["dk"], s["dv"]
    per_token = 1024 * H + E * H + 2 * H * H + H * (2 * dk + dv) + dv * H + 100 * (dk + dv)
    return per_token * (s["num_sequences"] + (10 * s["batch_size"] + 2000) // 3)


def git_commit():
    """HEAD's short hash, with '+changes' when rnn.py or this file differ from it."""
    def git(*argv):
        return subprocess.run(["git", *argv], cwd=REPO, capture_output=True, text=True, check=True).stdout.strip()
    try:
        commit = git("rev-parse", "--short", "HEAD")
        return commit + ("+changes" if git("status", "--porcelain", "--", "rnn.py", "experiments.py") else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def cpu_name():
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine(device):
    import torch
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{cpu_name()}, {os.cpu_count()} cores, {torch.get_num_threads()} threads"


def whole_set_loss(checkpoint, val_data, batch_size, device):
    """The loss of the checkpoint's weights on the whole validation set, per target token.

    The starter's validation points read the first batch only, and its last point comes before
    the last batches; this is the number that says how good the final model is.
    """
    import torch
    import torch.nn as nn
    lm, _ = rnn.load_checkpoint(checkpoint, resolve_device(device))
    loss_fn, total, targets = nn.CrossEntropyLoss(reduction="sum"), 0.0, 0
    loader = torch.utils.data.DataLoader(rnn.SentenceDataset(val_data), batch_size=batch_size, shuffle=False)
    with torch.no_grad():
        for sequence in loader:
            sequence = sequence.to(next(lm.parameters()).device)
            total += rnn.next_token_loss(lm, sequence, loss_fn).item()
            targets += sequence[:, 1:].numel()
    return total / targets


class Runner:
    """Runs (or finds finished) training runs and reports progress with a time-left estimate."""

    def __init__(self, args, planned, train_size):
        self.args = args
        self.planned = planned  # every distinct run this invocation needs, in order
        self.train_size = train_size
        self.finished = []
        self.current = None  # the folder of the run in progress
        self.done_cost = self.spent = 0.0
        # Runs finished by an earlier invocation cost nothing now: keep them out of the estimate.
        self.to_train = [s for s in planned if args.force or self.finished_record(s) is None]

    def folder(self, settings):
        return self.args.out / "runs" / runs.run_name(settings, self.args.seed)

    def finished_record(self, settings):
        """The run's record if it finished earlier with these settings, else None.

        Finished is what rnn.py says of its checkpoint (kit/runs.py); run.json, written after
        it, holds what this script adds (the whole-set loss, the machine).
        """
        if not runs.finished(self.folder(settings) / "model.pt"):
            return None
        try:
            result = json.loads((self.folder(settings) / "run.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):  # absent, or damaged: the run is done (again)
            return None
        return result if result.get("settings") == settings else None

    def run(self, settings):
        args = self.args
        folder = self.folder(settings)
        progress = f"[{self.planned.index(settings) + 1}/{len(self.planned)}] {folder.name}"
        if not args.force or settings in self.finished:
            result = self.finished_record(settings)
            if result is not None:
                if settings not in self.finished:
                    print(f"{progress}: finished earlier, not repeated")
                    self.finished.append(settings)
                return result
        remaining = sum(cost(s) for s in self.to_train if s not in self.finished)
        eta = f", about {self.spent / self.done_cost * remaining / 60:.0f} min left" if self.done_cost else ""
        if args.force and folder.exists():
            shutil.rmtree(folder)  # --force: what an earlier run left is not resumed
        # An earlier, unfinished run's model.pt holds its last save: rnn.py --resume continues it.
        resuming = (folder / "model.pt").exists()
        print(f"{progress}: {'resuming its last save' if resuming else 'training'}{eta}", flush=True)
        folder.mkdir(parents=True, exist_ok=True)
        self.current = folder
        argv = ["--train_data", str(args.train_data), "--val_data", str(args.val_data),
                "--tokenizer", str(args.tokenizer), "--device", args.device, "--seed", str(args.seed),
                "--train_losses_out", str(folder / "train_losses.txt"),
                "--val_losses_out", str(folder / "val_losses.txt"),
                "--metrics_out", str(folder / "metrics.txt"), "--checkpoint", str(folder / "model.pt")]
        for key, value in settings.items():
            argv += [f"--{key}", str(value)]
        if resuming:
            argv.append("--resume")
        train_losses, val_losses, seconds = rnn.train_main(rnn.parse_args(argv))
        whole = whole_set_loss(folder / "model.pt", args.val_data, settings["batch_size"], args.device)
        self.spent += seconds
        self.done_cost += cost(settings)
        self.finished.append(settings)
        B, n = settings["batch_size"], settings["num_sequences"]
        device = resolve_device(args.device)
        result = {"settings": settings, "seed": args.seed, "train_losses": train_losses, "val_losses": val_losses,
                  "sequences_seen": runs.point_sequences(n, B, len(train_losses)), "seconds": round(seconds, 1),
                  "final_val_loss_whole_set": round(whole, 6),
                  "passes": round(n // B * B / self.train_size, 2), "train_file_sequences": self.train_size,
                  "commit": git_commit(), "device": str(device), "machine": machine(device),
                  "torch": __import__("torch").__version__, "date": time.strftime("%Y-%m-%d")}
        atomic_write_text(folder / "run.json", json.dumps(result, indent=1) + "\n")
        self.current = None
        return result

    def leave_current(self):
        """What becomes of the run that did not finish, in words, or None: kept at its last save,
        for the next invocation to resume, or removed when nothing was saved yet."""
        if self.current is None or not self.current.exists():
            return None
        try:
            checkpoint = runs.saved_run(self.current / "model.pt")
        except InputError:  # unreadable: the next invocation cannot resume it
            checkpoint = None
        if checkpoint is None:
            shutil.rmtree(self.current)
            return f"the unfinished {self.current.name} removed (nothing saved yet)"
        return (f"the unfinished {self.current.name} kept, {runs.saved_position(checkpoint)}: "
                "the same command resumes it")


# ----------------------------------------------------------------------------- outputs

def provenance_line(results):
    """Where a table's numbers come from: machine, torch, commit(s), as the runs recorded them."""
    def values(key):
        return ", ".join(sorted({f"{r[key]:,}" if isinstance(r[key], int) else str(r[key]) for r in results}))
    return (f"Machine: {values('machine')}; torch {values('torch')}; trained at commit {values('commit')}; "
            f"training file of {values('train_file_sequences')} sequences.\n")


def markdown_table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def save_figure(fig, path):
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110, metadata={"Software": None}))


def plot_curves(plt, results, labels, title, out_png, key):
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for label, result in zip(labels, results):
        ax.plot(result["sequences_seen"], result[key], marker="o", markersize=3, label=label)
    ax.set_xlabel("sequences seen in training")
    ax.set_ylabel("loss (cross entropy, nats/token)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    save_figure(fig, out_png)
    plt.close(fig)


def whole(result, digits=4):
    """The final weights' whole-validation-set loss, or a dash for a run recorded before it was kept."""
    value = result.get("final_val_loss_whole_set")
    return "-" if value is None else f"{value:.{digits}f}"


def final_rows(labels, results):
    return [(label, f"{r['train_losses'][-1]:.4f}", f"{r['val_losses'][-1]:.4f}", whole(r), f"{r['seconds']:.0f}",
             f"{r['passes']:.2f}") for label, r in zip(labels, results)]


# The starter's last points (its validate() reads the first validation batch), then the final
# weights on every validation sequence.
LOSS_HEADER = ["Final train loss", "Final valid loss (first batch)", "Valid loss, whole set, final weights"]
FINAL_HEADER = [*LOSS_HEADER, "Time (sec)", "Passes over the training file"]


def do_curves(question, runner, plt, args, name_for_title):
    runs = [(label, scaled(s, args.scale)) for label, s in question_runs(question)]
    results = [runner.run(s) for _, s in runs]
    labels = [label for label, _ in runs]
    for key, which in (("train_losses", "Training"), ("val_losses", "Validation (first batch)")):
        png = args.out / f"{question}_{'train' if key == 'train_losses' else 'val'}.png"
        plot_curves(plt, results, labels, f"{which} loss by {name_for_title}", png, key)
        print(f"wrote {png}")
    return runs, results


def do_sizes(runner, plt, args):
    runs, results = do_curves("sizes", runner, plt, args, "embedding/hidden size")
    table = markdown_table(["embed = hidden", *FINAL_HEADER],
                           final_rows([s["embed_dim"] for _, s in runs], results))
    atomic_write_text(args.out / "sizes.md", table + "\n" + provenance_line(results))
    print(table, end="")


def do_batch(runner, plt, args):
    runs, results = do_curves("batch", runner, plt, args, "batch size")
    rows = [(s["batch_size"], f"{r['seconds']:.0f}", HANDOUT_BATCH_SECONDS[s["batch_size"]],
             f"{r['train_losses'][-1]:.4f}", f"{r['val_losses'][-1]:.4f}", whole(r), f"{r['passes']:.2f}")
            for (_, s), r in zip(runs, results)]
    header = ["Batch Size", "Time (sec)", "Handout, Colab T4 (sec)", *LOSS_HEADER, "Passes over the training file"]
    atomic_write_text(args.out / "batch_times.md", markdown_table(header, rows) + "\n" + provenance_line(results))
    text = io.StringIO()
    csv.writer(text, lineterminator="\n").writerows([header, *rows])
    atomic_write_text(args.out / "batch_times.csv", text.getvalue())
    print(f"wrote {args.out / 'batch_times.md'}, {args.out / 'batch_times.csv'}")
    print(markdown_table(header, rows), end="")


def do_sequences(runner, plt, args):
    runs = [scaled(s, args.scale) for _, s in question_runs("sequences")]
    results = [runner.run(s) for s in runs]
    xs = [s["num_sequences"] for s in runs]
    for key, which, tag in (("train_losses", "training", "train"), ("val_losses", "validation (first batch)", "val")):
        fig, ax = plt.subplots(figsize=(6.4, 4.2))
        ax.plot(xs, [r[key][-1] for r in results], marker="o")
        ax.set_xlabel("num_sequences")
        ax.set_ylabel(f"final {which} loss")
        ax.set_title(f"Final {which} loss by number of training sequences")
        ax.grid(alpha=0.3)
        fig.tight_layout()
        png = args.out / f"sequences_{tag}.png"
        save_figure(fig, png)
        plt.close(fig)
        print(f"wrote {png}")
    table = markdown_table(["num_sequences", *FINAL_HEADER], final_rows([f"{n:,}" for n in xs], results))
    atomic_write_text(args.out / "sequences.md", table + "\n" + provenance_line(results))
    print(table, end="")


def completions(runner, settings, args):
    """The large run's completions: kept in its samples.json, made from its model.pt once."""
    folder = runner.folder(settings)
    path = folder / "samples.json"
    wanted = {"prompt": PROMPT, "num_tokens": args.num_tokens, "seed": args.seed}
    try:
        kept = json.loads(path.read_text(encoding="utf-8"))
        if kept.get("made_with") == wanted and not args.force:
            return kept["completions"]
    except (OSError, ValueError):
        pass
    import torch
    device = resolve_device(args.device)
    lm, checkpoint = rnn.load_checkpoint(folder / "model.pt", device)
    tokenizer = load_tokenizer(args.tokenizer)
    torch.manual_seed(args.seed)
    made = {f"{t:g}": [rnn.complete(lm, tokenizer, PROMPT, args.num_tokens, t) for _ in range(NUM_SAMPLES)]
            for t in TEMPERATURES}
    atomic_write_text(path, json.dumps({"made_with": wanted, "completions": made}, indent=1) + "\n")
    return made


def do_samples(runner, plt, args):
    label, settings = question_runs("samples")[0]
    settings = scaled(settings, args.scale)
    result = runner.run(settings)
    # Both of its curves in one figure: the second "run" plotted is its validation loss.
    both = [result, dict(result, train_losses=result["val_losses"])]
    plot_curves(plt, both, ["training loss", "validation loss (first batch)"],
                f"The large run: {settings['num_sequences']:,} sequences, {label}", args.out / "large_losses.png",
                "train_losses")
    made = completions(runner, settings, args)
    lines = [f"# The large run: {settings['num_sequences']:,} sequences, batch {settings['batch_size']}, {label}\n\n",
             markdown_table(["", "Train Loss", "Validation Loss (first batch)", "Valid loss, whole set, final weights",
                             "Time (sec)", "Passes over the training file"],
                            [("this kit", result["train_losses"][-1], result["val_losses"][-1], whole(result, 6),
                              f"{result['seconds']:.0f}", f"{result['passes']:.2f}"),
                             ("handout, Colab T4", HANDOUT_LARGE["train_loss"], HANDOUT_LARGE["val_loss"], "",
                              HANDOUT_LARGE["seconds"], "")]),
             "\n" + provenance_line([result]),
             f"\nCompletions of \"{PROMPT}\" by `rnn.complete` ({args.num_tokens} tokens, seed {args.seed}, the "
             "model reloaded from its checkpoint), shown up to the first `</s>`, where the model starts a new "
             "story:\n"]
    for temperature, texts in made.items():
        lines.append(f"\n## Temperature = {temperature}\n")
        for i, text in enumerate(texts):
            lines.append(f"\n{i + 1}.\n```text\n{PROMPT} {text.split('</s>')[0].strip()}\n```\n")
    atomic_write_text(args.out / "samples.md", "".join(lines))
    print(f"wrote {args.out / 'samples.md'}, {args.out / 'large_losses.png'}")


def check_inputs(args, planned):
    """Fail before the first run, not in the middle of a sweep, on bad data, tokenizer or device."""
    resolve_device(args.device)
    tokenizer = load_tokenizer(args.tokenizer)
    datasets = [rnn.SentenceDataset(path, vocab_size=len(tokenizer), flag=flag)
                for path, flag in ((args.train_data, "--train_data"), (args.val_data, "--val_data"))]
    for dataset, flag in zip(datasets, ("--train_data", "--val_data")):
        check_stackable(dataset, max(s["batch_size"] for s in planned), flag)
    if args.out.exists() and not args.out.is_dir():
        raise InputError(f"--out {args.out}: is a file, not a folder")
    return len(datasets[0])


def parse_args(argv=None):
    p = OneLineParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                          formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("question", type=str, choices=(*QUESTIONS, "all"), help="which question of section 5 to run")
    p.add_argument("--scale", type=number(float, above=0), default=1.0,
                   help="multiplies every num_sequences (at least one batch each) (default: %(default)s)")
    p.add_argument("--device", type=str, default="auto", help="auto (CUDA when present), cpu or cuda (default: %(default)s)")
    p.add_argument("--out", type=Path, default=Path("results"), help="output folder (default: %(default)s)")
    p.add_argument("--force", action="store_true", default=False,
                   help="redo runs and completions that finished earlier, and start unfinished runs over")
    p.add_argument("--train_data", type=Path, default=Path("data/train_stories.json"), help="training sequences (default: %(default)s)")
    p.add_argument("--val_data", type=Path, default=Path("data/valid_stories.json"), help="validation sequences (default: %(default)s)")
    p.add_argument("--tokenizer", type=str, default=DEFAULT_TOKENIZER, help="tokenizer folder (default: %(default)s)")
    p.add_argument("--seed", type=SEED_TYPE, default=rnn.SEED, help="seed of every run and of the samples (default: %(default)s)")
    p.add_argument("--num_tokens", type=number(int, above=0), default=64,
                   help="tokens per completion, the starter's complete() default (default: %(default)s)")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        sys.exit("experiments.py: error: the plots need matplotlib: pip install -r requirements-plots.txt")
    questions = QUESTIONS if args.question == "all" else (args.question,)
    planned = []
    for q in questions:
        for _, s in question_runs(q):
            s = scaled(s, args.scale)
            if s not in planned:
                planned.append(s)
    runner = None
    try:
        train_size = check_inputs(args, planned)
        args.out.mkdir(parents=True, exist_ok=True)
        runner = Runner(args, planned, train_size)
        start = time.perf_counter()
        for q in questions:
            print(f"== {q}")
            {"sizes": do_sizes, "batch": do_batch, "sequences": do_sequences, "samples": do_samples}[q](runner, plt, args)
        print(f"done in {time.perf_counter() - start:.0f} s; results in {args.out}/ (scale {args.scale})")
    except (InputError, FloatingPointError) as e:
        sys.exit(f"experiments.py: error: {e}")
    except OSError as e:  # --out is a file, or not writable
        sys.exit(f"experiments.py: error: {e.filename or args.out}: {e.strerror or e}")
    except KeyboardInterrupt:
        current = runner.leave_current() if runner is not None else None
        kept = len(list(args.out.glob("runs/*/run.json")))
        print(f"experiments.py: interrupted; {kept} finished run(s) kept in {args.out / 'runs'}"
              + (f", {current}" if current else ""), file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    main()
