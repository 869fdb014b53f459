"""Section 5 of the handout, one command: every sweep, plot, table and sample.

    python3 experiments.py all                 # the handout's full scale (a GPU job)
    python3 experiments.py all --scale 0.02    # a CPU smoke run of the whole section
    python3 experiments.py batch --device cuda

Subcommands (defaults are the handout's: embed = hidden = 128, dk = dv = 128, batch 128,
50,000 sequences):
  sizes      embed = hidden in {64, 128, 256, 512}: training and validation loss curves
  batch      batch in {32, 64, 128, 256}: loss curves and a table of total time
  sequences  num_sequences in {10k, 20k, 50k, 100k}: final losses against num_sequences
  samples    250,000 sequences, embed = hidden = 512, dk = dv = 256: final losses, time and
             three completions of "Once upon a time there was a" at temperatures 0, 0.3, 0.8
  all        the four, in that order

Each run is rnn.py's own training (its command line, in this process) writing its loss
files under OUT/runs/NAME/; a finished run (its run.json exists) is not repeated, so a
killed sweep resumes, and identical settings shared by two questions run once. --force
redoes them. Plots need matplotlib: pip install -r requirements-plots.txt.
"""

import argparse
import csv
import io
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

import rnn

REPO = Path(__file__).resolve().parent
BASE = dict(embed_dim=128, hidden_dim=128, dk=128, dv=128, batch_size=128, num_sequences=50_000)
PROMPT = "Once upon a time there was a"
TEMPERATURES = (0.0, 0.3, 0.8)
# The handout's own figures (Colab T4), shown beside ours.
HANDOUT_BATCH_SECONDS = {32: 482, 64: 240, 128: 125, 256: 100}
HANDOUT_LARGE = {"train_loss": 2.03271, "val_loss": 2.279308, "seconds": 2040}


def question_runs(question):
    """The (label, settings) of each run a question needs, before --scale."""
    if question == "sizes":
        return [(f"embed = hidden = {d}", {**BASE, "embed_dim": d, "hidden_dim": d}) for d in (64, 128, 256, 512)]
    if question == "batch":
        return [(f"batch {b}", {**BASE, "batch_size": b}) for b in (32, 64, 128, 256)]
    if question == "sequences":
        return [(f"{n:,} sequences", {**BASE, "num_sequences": n}) for n in (10_000, 20_000, 50_000, 100_000)]
    if question == "samples":
        return [("large", {**BASE, "embed_dim": 512, "hidden_dim": 512, "dk": 256, "dv": 256,
                           "num_sequences": 250_000})]
    raise ValueError(question)


QUESTIONS = ("sizes", "batch", "sequences", "samples")


def scaled(settings, scale):
    return {**settings, "num_sequences": max(10, round(settings["num_sequences"] * scale))}


def run_name(s, seed):
    return (f"e{s['embed_dim']}_h{s['hidden_dim']}_k{s['dk']}_v{s['dv']}_b{s['batch_size']}"
            f"_n{s['num_sequences']}_s{seed}")


def cost(s):
    """Rough relative cost of a run, for the time-left estimate only: multiply-adds per
    token (LM head over 1024 pieces, recurrence, attention projections) times sequences,
    plus ten validations of about 2,400 sequences at a third of a training step each."""
    H, E, dk, dv = s["hidden_dim"], s["embed_dim"], s["dk"], s["dv"]
    per_token = 1024 * H + E * H + 2 * H * H + H * (2 * dk + dv) + dv * H + 100 * (dk + dv)
    return per_token * (s["num_sequences"] + 8000)


class Runner:
    """Runs (or finds finished) training runs and reports progress with a time-left estimate."""

    def __init__(self, args, planned):
        self.args = args
        self.planned = planned  # every distinct run this invocation needs, in order
        self.finished = []
        self.done_cost = self.spent = 0.0
        # Runs finished by an earlier invocation cost nothing now: keep them out of the estimate.
        self.to_train = [s for s in planned if args.force or self.finished_record(s) is None]

    def finished_record(self, settings):
        """The run's record if it finished earlier with these settings, else None."""
        record = self.args.out / "runs" / run_name(settings, self.args.seed) / "run.json"
        try:
            result = json.loads(record.read_text(encoding="utf-8"))
        except (OSError, ValueError):  # absent, or damaged: the run is done (again)
            return None
        return result if result.get("settings") == settings else None

    def run(self, settings):
        args = self.args
        name = run_name(settings, args.seed)
        folder = args.out / "runs" / name
        record = folder / "run.json"
        progress = f"[{self.planned.index(settings) + 1}/{len(self.planned)}] {name}"
        if not args.force or settings in self.finished:
            result = self.finished_record(settings)
            if result is not None:
                if settings not in self.finished:
                    print(f"{progress}: finished earlier, not repeated")
                    self.finished.append(settings)
                return result
        remaining = sum(cost(s) for s in self.to_train if s not in self.finished)
        eta = f", about {self.spent / self.done_cost * remaining / 60:.1f} min left" if self.done_cost else ""
        print(f"{progress}: training{eta}", flush=True)
        folder.mkdir(parents=True, exist_ok=True)
        argv = ["--train_data", str(args.train_data), "--val_data", str(args.val_data),
                "--tokenizer", str(args.tokenizer), "--device", args.device, "--seed", str(args.seed),
                "--train_losses_out", str(folder / "train_losses.txt"),
                "--val_losses_out", str(folder / "val_losses.txt"),
                "--metrics_out", str(folder / "metrics.txt"), "--checkpoint", str(folder / "model.pt")]
        for key, value in settings.items():
            argv += [f"--{key}", str(value)]
        train_losses, val_losses, seconds = rnn.train_main(rnn.parse_args(argv))
        self.spent += seconds
        self.done_cost += cost(settings)
        self.finished.append(settings)
        result = {"settings": settings, "seed": args.seed, "train_losses": train_losses,
                  "val_losses": val_losses, "seconds": seconds, "device": str(rnn.resolve_device(args.device))}
        rnn.write_atomic(record, json.dumps(result, indent=1) + "\n")  # written last: marks it finished
        return result


def points(settings):
    n = settings["num_sequences"]
    return [n * k // 10 for k in range(1, 11)]


def plot_curves(plt, results, labels, title, out_png, key):
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for label, (settings, result) in zip(labels, results):
        ax.plot(points(settings), result[key], marker="o", markersize=3, label=label)
    ax.set_xlabel("sequences seen")
    ax.set_ylabel("loss (cross entropy, nats/token)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    save_figure(fig, out_png)
    plt.close(fig)


def save_figure(fig, path):
    rnn.atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110))


def markdown_table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def do_curves(question, runner, plt, args, name_for_title):
    runs = [(label, scaled(s, args.scale)) for label, s in question_runs(question)]
    results = [(s, runner.run(s)) for _, s in runs]
    labels = [label for label, _ in runs]
    for key, which in (("train_losses", "training"), ("val_losses", "validation")):
        png = args.out / f"{question}_{'train' if key == 'train_losses' else 'val'}.png"
        plot_curves(plt, results, labels, f"{which.capitalize()} loss by {name_for_title}", png, key)
        print(f"wrote {png}")
    return results


def do_sizes(runner, plt, args):
    do_curves("sizes", runner, plt, args, "embedding/hidden size")


def do_batch(runner, plt, args):
    results = do_curves("batch", runner, plt, args, "batch size")
    rows = [(s["batch_size"], f"{r['seconds']:.1f}", HANDOUT_BATCH_SECONDS[s["batch_size"]],
             f"{r['train_losses'][-1]:.4f}", f"{r['val_losses'][-1]:.4f}") for s, r in results]
    header = ["Batch Size", "Time (sec)", "Handout, Colab T4 (sec)", "Final train loss", "Final val loss"]
    rnn.write_atomic(args.out / "batch_times.md", markdown_table(header, rows))
    text = io.StringIO()
    csv.writer(text, lineterminator="\n").writerows([header, *rows])
    rnn.write_atomic(args.out / "batch_times.csv", text.getvalue())
    print(f"wrote {args.out / 'batch_times.md'}, {args.out / 'batch_times.csv'}")
    print(markdown_table(header, rows), end="")


def do_sequences(runner, plt, args):
    runs = [scaled(s, args.scale) for _, s in question_runs("sequences")]
    results = [runner.run(s) for s in runs]
    xs = [s["num_sequences"] for s in runs]
    for key, which, tag in (("train_losses", "training", "train"), ("val_losses", "validation", "val")):
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
    rows = [(f"{s['num_sequences']:,}", f"{r['train_losses'][-1]:.4f}", f"{r['val_losses'][-1]:.4f}",
             f"{r['seconds']:.1f}") for s, r in zip(runs, results)]
    rnn.write_atomic(args.out / "sequences.md", markdown_table(
        ["num_sequences", "Final train loss", "Final val loss", "Time (sec)"], rows))


def do_samples(runner, plt, args):
    import torch
    settings = scaled(question_runs("samples")[0][1], args.scale)
    result = runner.run(settings)
    checkpoint = args.out / "runs" / run_name(settings, args.seed) / "model.pt"
    tokenizer = rnn.load_tokenizer(args.tokenizer)
    model, _ = rnn.load_checkpoint(checkpoint, len(tokenizer), rnn.resolve_device(args.device))
    torch.manual_seed(args.seed)
    lines = [f"# The large run: {settings['num_sequences']:,} sequences, batch {settings['batch_size']}, "
             f"embed = hidden = {settings['embed_dim']}, dk = dv = {settings['dk']}\n",
             markdown_table(["", "Train Loss", "Validation Loss", "Time (sec)"],
                            [("this kit", f"{result['train_losses'][-1]:.5f}", f"{result['val_losses'][-1]:.6f}",
                              f"{result['seconds']:.0f}"),
                             ("handout, Colab T4 (250,000 sequences)", HANDOUT_LARGE["train_loss"],
                              HANDOUT_LARGE["val_loss"], HANDOUT_LARGE["seconds"])]),
             f"\nCompletions of \"{PROMPT}\" ({args.num_tokens} tokens at most), from `{checkpoint.name}` "
             "reloaded with torch.load:\n"]
    for temperature in TEMPERATURES:
        lines.append(f"\n## Temperature = {temperature:g}\n\n```text\n")
        for i in range(3):
            text = model.complete(PROMPT, tokenizer, args.num_tokens, temperature)
            lines.append(f"{i + 1}. {PROMPT}{text}\n")
        lines.append("```\n")
    rnn.write_atomic(args.out / "samples.md", "".join(lines))
    print(f"wrote {args.out / 'samples.md'}")


def cpu_name():
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def provenance(args):
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True,
                                text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown"
    import torch
    device = rnn.resolve_device(args.device)
    machine = (torch.cuda.get_device_name(device) if device.type == "cuda"
               else f"{cpu_name()}, {torch.get_num_threads()} threads")
    return {"commit": commit, "scale": args.scale, "device": str(device), "machine": machine,
            "torch": torch.__version__, "date": time.strftime("%Y-%m-%d")}


def check_inputs(args):
    """Fail before the first run, not in the middle of a sweep, on bad data, tokenizer or device."""
    rnn.resolve_device(args.device)
    vocab_size = len(rnn.load_tokenizer(args.tokenizer))
    rnn.load_sequences(args.train_data, vocab_size, "--train_data")
    rnn.load_sequences(args.val_data, vocab_size, "--val_data")
    if args.out.exists() and not args.out.is_dir():
        raise rnn.InputError(f"--out {args.out}: is a file, not a folder")


def parse_args(argv=None):
    p = rnn.OneLineParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                          formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("question", type=str, choices=(*QUESTIONS, "all"), help="which question of section 5 to run")
    p.add_argument("--scale", type=rnn.positive(float), default=1.0,
                   help="multiplies every num_sequences (at least 10 each); 0.02 is a CPU smoke run (default: %(default)s)")
    p.add_argument("--device", type=str, default="auto", help="auto (CUDA when present), cpu or cuda (default: %(default)s)")
    p.add_argument("--out", type=Path, default=Path("results"), help="output folder (default: %(default)s)")
    p.add_argument("--force", action="store_true", help="redo runs that finished earlier")
    p.add_argument("--train_data", type=Path, default=Path("data/train_stories.json"), help="training sequences (default: %(default)s)")
    p.add_argument("--val_data", type=Path, default=Path("data/valid_stories.json"), help="validation sequences (default: %(default)s)")
    p.add_argument("--tokenizer", type=str, default=rnn.DEFAULT_TOKENIZER, help="tokenizer folder (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="seed of every run and of the samples (default: %(default)s)")
    p.add_argument("--num_tokens", type=rnn.positive(int), default=128, help="most tokens per completion (default: %(default)s)")
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
    try:
        check_inputs(args)
        args.out.mkdir(parents=True, exist_ok=True)
        info = provenance(args)
        runner = Runner(args, planned)
        start = time.perf_counter()
        for q in questions:
            print(f"== {q}")
            {"sizes": do_sizes, "batch": do_batch, "sequences": do_sequences, "samples": do_samples}[q](runner, plt, args)
        info["seconds"] = round(time.perf_counter() - start, 1)
        info["questions"] = list(questions)
        rnn.write_atomic(args.out / "provenance.json", json.dumps(info, indent=1) + "\n")
        print(f"done in {info['seconds']:.0f} s; results in {args.out}/ (scale {args.scale}, {info['machine']}, "
              f"commit {info['commit']})")
    except (rnn.InputError, FloatingPointError) as e:
        sys.exit(f"experiments.py: error: {e}")
    except OSError as e:  # --out is a file, or not writable
        sys.exit(f"experiments.py: error: {e.filename or args.out}: {e.strerror or e}")


if __name__ == "__main__":
    main()
