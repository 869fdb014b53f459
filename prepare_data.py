"""Build the kit's data from TinyStories text: tokenizer, tokenized splits, tiny fixtures.

Stages; each records what it was built from (the source's size and sha256, the
tokenizer's sha256, the options) in a manifest beside its outputs, skips itself when
nothing of that changed, and otherwise rebuilds and says why in one line:

1. tokenizer  -- only with ``--train_tokenizer``: trains ``my_tokenizer/`` (a 1024-piece
   Unigram model, as SentencePiece makes) on the source. It is committed; re-training
   changes every id and so every reference number.
2. splits     -- splits the stories into train/validation (seeded), puts each split's
   stories in a seeded order, tokenizes them (each ends in </s>) into one token stream,
   and cuts the stream into windows of exactly ``--seq_len`` tokens, neighbours sharing one
   token, so every next-token pair is a target exactly once and nothing needs padding.
   Writes ``data/{train,valid}_stories.json``, ``data/untokenized_{train,valid}_stories.json``
   and ``data/prepared.json`` (the manifest).
3. tiny       -- ``--tiny``: the same from the committed ``data/untokenized_tiny_*_stories.json``
   (stories we wrote ourselves) with ``--tiny_seq_len`` windows, into the committed
   ``data/tiny_*_stories.json`` and ``data/tiny_manifest.json``.

Examples:
    python3 prepare_data.py                       # from ../shared/tinystories, or the hub
    python3 prepare_data.py --source TinyStories-valid.txt
    python3 prepare_data.py --tiny
"""

import argparse
import hashlib
import json
import os
import random
import shutil
import sys
import tempfile
import urllib.request
from pathlib import Path

from kit.cli import SEED_TYPE, OneLineParser, number
from kit.data import DATA_DIR, DEFAULT_TOKENIZER, default_paths
from kit.data import load_tokenizer as load_any_tokenizer
from kit.files import REPO, InputError, atomic_write, atomic_write_all, kit_path, shown, text_writer

DEFAULT_SOURCE = REPO.parent / "shared" / "tinystories" / "TinyStories-sample.txt"
HUB_FILE = "TinyStories-valid.txt"
HUB_URL = f"https://huggingface.co/datasets/roneneldan/TinyStories/resolve/main/{HUB_FILE}"
HUB_TIMEOUT = 4.0  # seconds: one attempt, and a clear error well inside five seconds offline

SEPARATOR = "<|endoftext|>"
VOCAB_SIZE = 1024
PAD, EOS, UNK = "<pad>", "</s>", "<unk>"  # ids 0, 1, 2, as the handout's tokenizer
# Typographic characters the sample uses a few hundred times in all; mapping them to ASCII
# keeps 1024 pieces for words. NFKC (before them) also turns '…' into '...'.
ASCII_MAP = {"\u201c": '"', "\u201d": '"', "\u2018": "'", "\u2019": "'",
             "\u2013": "-", "\u2014": "-"}
MANIFEST_VERSION = 2  # bump when a stage's output format changes: every manifest is then stale


class DataError(InputError):
    """A problem with the data's source or options: reported as one line, never a traceback."""


# ----------------------------------------------------------------------------- io helpers

def json_text(obj):
    # One sequence a line: diffable and still plain JSON.
    if obj and isinstance(obj[0], list):
        return "[\n" + ",\n".join(json.dumps(x, separators=(",", ":")) for x in obj) + "\n]\n"
    return json.dumps(obj, indent=1, ensure_ascii=False) + "\n"


def write_stage(files, manifest, record):
    """Write {path: object} as JSON and the stage's manifest, all or nothing."""
    Path(manifest).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_all([*((path, text_writer(json_text(obj))) for path, obj in files.items()),
                      (manifest, text_writer(json.dumps(record, indent=1) + "\n"))])


def sha256_of(*paths):
    digest = hashlib.sha256()
    for path in paths:
        digest.update(Path(path).read_bytes())
    return digest.hexdigest()


def check_source(path):
    path = Path(path)
    if not path.exists():
        raise DataError(f"source {path}: no such file")
    if not path.is_file():
        raise DataError(f"source {path}: not a file")


def read_stories(path):
    """Return the stories of a TinyStories text file (stories separated by separator lines)."""
    path = Path(path)
    check_source(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise DataError(f"source {path}: cannot read it ({e.strerror})")
    except UnicodeDecodeError as e:
        raise DataError(f"source {path}: not utf-8 text (byte {e.start})")
    if not text.strip():
        raise DataError(f"source {path}: the file is empty")
    if SEPARATOR not in text:
        raise DataError(f"source {path}: no '{SEPARATOR}' separators; expected TinyStories "
                        "layout (each story followed by a line '<|endoftext|>')")
    stories = [s.strip() for s in text.split(SEPARATOR)]
    stories = [s for s in stories if s]
    if not stories:
        raise DataError(f"source {path}: separators but no stories")
    return stories


def download_source(dest_dir, url=HUB_URL, timeout=HUB_TIMEOUT):
    """Fetch ``url`` once into ``dest_dir`` (atomically); a DataError if that fails.

    One attempt with a short timeout: without a network the answer is one line, at once.
    """
    dest = Path(dest_dir) / Path(url).name
    if dest.is_file():
        return dest
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            data = response.read()
    except Exception as e:  # no network, DNS, HTTP error, timeout: all mean the same here
        reason = getattr(e, "reason", None) or str(e) or type(e).__name__
        raise DataError(f"could not download {url} ({str(reason).splitlines()[0][:100]}); "
                        "pass --source PATH to a TinyStories text file")
    dest.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(dest, lambda tmp: Path(tmp).write_bytes(data))
    return dest


def default_origin(out_dir):
    """Where the default source comes from: the shared sample, an earlier download, or the hub's URL."""
    downloaded = Path(out_dir) / HUB_FILE
    return DEFAULT_SOURCE if DEFAULT_SOURCE.exists() else downloaded if downloaded.is_file() else HUB_URL


def resolve_source(source, out_dir, say=print):
    if source is not None:
        return Path(source)
    if DEFAULT_SOURCE.exists():
        return DEFAULT_SOURCE
    # Announced after the attempt, not before, so that no network is one line in all.
    try:
        dest = download_source(out_dir)
    except DataError as e:
        raise DataError(f"{DEFAULT_SOURCE} not found, and {e}") from None
    say(f"{DEFAULT_SOURCE} not found; using {dest} ({dest.stat().st_size:,} bytes), from {HUB_URL}")
    return dest


# ----------------------------------------------------------------------------- tokenizer

def build_tokenizer_model():
    """An untrained Unigram tokenizer with the handout's conventions (specials 0/1/2, </s> appended)."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

    tok = Tokenizer(models.Unigram())
    tok.normalizer = normalizers.Sequence(
        [normalizers.NFKC()] + [normalizers.Replace(a, b) for a, b in ASCII_MAP.items()])
    # Metaspace is SentencePiece's view of text: a word is its leading space ('▁') plus
    # letters, so decoding is concatenation and round-trips spaces exactly.
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="always")
    tok.decoder = decoders.Metaspace(replacement="\u2581", prepend_scheme="always")
    tok.post_processor = processors.TemplateProcessing(single=f"$A {EOS}", pair=f"$A {EOS} $B {EOS}",
                                                       special_tokens=[(EOS, 1)])
    return tok


def train_tokenizer(stories, out_dir):
    """Train the 1024-piece tokenizer on ``stories`` and save it, atomically, to ``out_dir``."""
    from tokenizers import trainers
    from transformers import PreTrainedTokenizerFast

    tok = build_tokenizer_model()
    trainer = trainers.UnigramTrainer(vocab_size=VOCAB_SIZE, special_tokens=[PAD, EOS, UNK],
                                      unk_token=UNK, max_piece_length=16, show_progress=False)
    tok.train_from_iterator(stories, trainer=trainer, length=len(stories))
    if tok.get_vocab_size() != VOCAB_SIZE:
        raise DataError(f"tokenizer training gave {tok.get_vocab_size()} pieces, not {VOCAB_SIZE}")
    wrapped = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token=PAD, eos_token=EOS,
                                      unk_token=UNK, model_max_length=1_000_000)
    out_dir = Path(out_dir)
    tmp = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}."))
    try:
        wrapped.save_pretrained(str(tmp))
        # transformers 5 names its own backend class here; the generic name loads in 4.x too.
        # Without clean_up_tokenization_spaces, 4.x warns and defaults it to True ("Hi ." decodes
        # as "Hi."), 5.x to False: set, both decode alike and quietly.
        config_path = tmp / "tokenizer_config.json"
        config = json.loads(config_path.read_text(encoding="utf-8"))
        config["tokenizer_class"] = "PreTrainedTokenizerFast"
        config["clean_up_tokenization_spaces"] = False
        config = dict(sorted(config.items()))
        config_path.write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
        os.chmod(tmp, 0o755)
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(tmp, out_dir)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


def load_tokenizer(path):
    """Load ``my_tokenizer``; a DataError unless it is the kit's 1024-piece one with ids 0/1/2."""
    try:
        tok = load_any_tokenizer(path)
    except InputError as e:
        raise DataError(str(e))
    if len(tok) != VOCAB_SIZE:
        raise DataError(f"--tokenizer {path}: vocabulary of {len(tok)} pieces, expected {VOCAB_SIZE}")
    ids = [tok.convert_tokens_to_ids(t) for t in (PAD, EOS, UNK)]
    if ids != [0, 1, 2]:
        raise DataError(f"--tokenizer {path}: {PAD}, {EOS}, {UNK} have ids {ids}, expected [0, 1, 2]")
    return tok


def tokenizer_hash(path):
    path = Path(path)
    return sha256_of(path / "tokenizer.json", path / "tokenizer_config.json")


# ----------------------------------------------------------------------------- sequences

def split_stories(stories, num_valid, seed, source="source"):
    """Seeded split: a permutation of story indices, the first ``num_valid`` for validation."""
    if len(stories) < 2:
        raise DataError(f"source {source}: {len(stories)} story; at least 2 are needed for a train/validation split")
    # A small source (a test's, a user's sample) keeps nine tenths for training.
    num_valid = min(num_valid, max(1, len(stories) // 10))
    order = shuffled(range(len(stories)), seed)
    valid = [stories[i] for i in sorted(order[:num_valid])]
    train = [stories[i] for i in sorted(order[num_valid:])]
    return train, valid


def shuffled(items, seed):
    """The items in a seeded order (for stories, the order they enter the token stream)."""
    order = list(range(len(items)))
    random.Random(seed).shuffle(order)
    return [items[i] for i in order]


def windows(stream, seq_len):
    """Cut a token stream into windows of exactly ``seq_len`` tokens, neighbours sharing one.

    Window j is stream[j (L-1) : j (L-1) + L]: its targets (tokens 2..L) follow straight on
    from the previous window's, so every next-token pair of the stream is a target exactly
    once. The tail too short for a whole window (fewer than L-1 new pairs) is dropped.
    """
    step = seq_len - 1
    return [stream[i:i + seq_len] for i in range(0, len(stream) - seq_len + 1, step)]


def tokenize_stream(tok, stories, seq_len):
    """Token ids of ``stories`` (each ending in </s>) as one stream, cut into windows."""
    ids = tok(stories, add_special_tokens=True)["input_ids"]
    stream = [x for story in ids for x in story]
    return stream, windows(stream, seq_len)


def tokenize_splits(tok, splits, seq_len, seed, seq_len_flag, label="", say=print):
    """{name: stories} -> ({name: (stories in stream order, windows)}, {name: counts}).

    The i-th split's stories go into its token stream in the seeded order of ``seed + i``.
    """
    made, stats = {}, {}
    for i, (name, stories) in enumerate(splits.items()):
        stories = shuffled(stories, seed + i)
        stream, sequences = tokenize_stream(tok, stories, seq_len)
        if not sequences:
            raise DataError(f"the {name} split has {len(stream)} tokens, fewer than one window of "
                            f"{seq_len_flag} {seq_len}")
        made[name] = stories, sequences
        stats[name] = describe(f"{label}{name}", stories, stream, sequences, seq_len)
        say(stats[name].pop("line"))
    return made, stats


def describe(name, stories, stream, sequences, seq_len):
    used = (len(sequences) * (seq_len - 1) + 1) if sequences else 0
    line = (f"{name}: {len(stories):,} stories, {len(stream):,} tokens, {len(sequences):,} sequences of "
            f"{seq_len} tokens; {len(stream) - used:,} tail tokens dropped")
    return {"line": line, "stories": len(stories), "tokens": len(stream), "sequences": len(sequences),
            "dropped_tail_tokens": len(stream) - used}


# ----------------------------------------------------------------------------- manifests

def stale_reason(manifest_path, wanted, outputs):
    """None when ``manifest_path`` records exactly ``wanted`` and every output exists; else why not."""
    missing = [p for p in outputs if not Path(p).exists()]
    if missing:
        return f"{missing[0]} does not exist"
    try:
        recorded = json.loads(Path(manifest_path).read_text(encoding="utf-8"))["built_from"]
    except (OSError, ValueError, KeyError, TypeError):
        return f"{manifest_path} is missing or unreadable, so what the outputs were built from is unknown"
    for key, value in wanted.items():
        if recorded.get(key) != value:
            return f"the {key.replace('_', ' ')} changed ({short(recorded.get(key))} -> {short(value)})"
    return None


def up_to_date(stage, manifest, wanted, outputs, force, say=print):
    """Whether ``stage`` can be skipped; otherwise says in one line why it is rebuilt (if anything was there)."""
    why = "--force" if force else stale_reason(manifest, wanted, outputs)
    if why is None:
        return True
    if Path(manifest).exists() or any(Path(p).exists() for p in outputs):
        say(f"{stage}: rebuilding: {why}")
    return False


def short(value):
    """A recorded value as the rebuild line shows it: a sha256 by its first 12 digits."""
    if isinstance(value, str) and len(value) == 64:
        return value[:12]
    return json.dumps(value, sort_keys=True)


# ----------------------------------------------------------------------------- stages

# The splits stage's defaults, which rnn.py's first run builds with.
SPLIT_DEFAULTS = {"seq_len": 128, "num_valid": 1000, "seed": 0, "num_untokenized": 100}


def build_splits(tok, *, out_dir=DATA_DIR, tokenizer_dir=None, source=None, force=False, say=print, **options):
    """The splits stage: data/{train,valid}_stories.json and their untokenized samples, unless up to date.

    ``options`` are SPLIT_DEFAULTS' (seq_len, num_valid, seed, num_untokenized); ``say`` prints
    what the stage did.
    """
    options = {**SPLIT_DEFAULTS, **options}
    out = Path(out_dir)
    tokenizer_dir = kit_path(DEFAULT_TOKENIZER) if tokenizer_dir is None else tokenizer_dir
    outs = {name: out / f"{name}.json" for name in
            ("train_stories", "valid_stories", "untokenized_train_stories", "untokenized_valid_stories")}
    manifest = out / "prepared.json"
    source = resolve_source(source, out, say)
    check_source(source)  # before hashing it
    wanted = {"version": MANIFEST_VERSION, "source_size": source.stat().st_size, "source_sha256": sha256_of(source),
              "tokenizer_sha256": tokenizer_hash(tokenizer_dir), "options": options}
    if up_to_date("splits", manifest, wanted, [*outs.values()], force, say):
        say(f"splits: {out}/{{train,valid}}_stories.json are up to date with {source}; skipped")
        return
    stories = read_stories(source)
    train, valid = split_stories(stories, options["num_valid"], options["seed"], source)
    say(f"splits: read {len(stories):,} stories from {source}")
    try:
        made, stats = tokenize_splits(tok, {"train": train, "valid": valid}, options["seq_len"], options["seed"],
                                      "--seq_len", say=say)
    except DataError as e:
        raise DataError(f"source {source}: {e}") from None
    files = {}
    for name, (stories, sequences) in made.items():
        files[outs[f"{name}_stories"]] = sequences
        files[outs[f"untokenized_{name}_stories"]] = stories[:options["num_untokenized"]]
    write_stage(files, manifest, {"built_from": {**wanted, "source": str(source)}, "made": stats})
    say(f"splits: wrote {', '.join(str(p) for p in files)}, {manifest}")
    say("example (decoded valid[0]): " + repr(tok.decode(files[outs["valid_stories"]][0])[:200]))


def build_default_data(tokenizer_dir):
    """The splits stage at its defaults into data/: rnn.py's first run in a fresh clone, data flags at their defaults.

    One line says what is built from where; the stage's own lines stay quiet.
    """
    targets = default_paths()
    out_dir = targets[0].parent
    origin = default_origin(out_dir)
    print(f"{shown(targets[0])} and {shown(targets[1])} are not built yet: building them from "
          f"{shown(origin) if isinstance(origin, Path) else origin} with prepare_data.py's stages", flush=True)
    try:
        build_splits(load_tokenizer(tokenizer_dir), out_dir=out_dir, tokenizer_dir=tokenizer_dir,
                     say=lambda line: None)
    except DataError as e:
        raise InputError(f"--train_data {shown(targets[0])}: no such file, and building it failed: "
                         + str(e).replace("pass --source PATH", "build it with: python3 prepare_data.py --source PATH"))


def build_tiny(args, tok):
    out = args.out_dir
    manifest = out / "tiny_manifest.json"
    sources = [out / f"untokenized_tiny_{split}_stories.json" for split in ("train", "valid")]
    targets = [out / f"tiny_{split}_stories.json" for split in ("train", "valid")]
    for src in sources:
        if not src.is_file():
            raise DataError(f"{src}: no such file (the tiny stories are committed in data/)")
    wanted = {"version": MANIFEST_VERSION, "stories_sha256": sha256_of(*sources),
              "tokenizer_sha256": tokenizer_hash(args.tokenizer),
              "options": {"seq_len": args.tiny_seq_len, "seed": args.seed}}
    if up_to_date("tiny", manifest, wanted, targets, args.force):
        print(f"tiny: {targets[0]} and {targets[1]} are up to date; skipped")
        return
    splits = {}
    for split, src in zip(("train", "valid"), sources):
        try:
            splits[split] = json.loads(src.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise DataError(f"{src}: cannot read a JSON list of stories ({e})")
        if not isinstance(splits[split], list) or not splits[split] or \
                not all(isinstance(s, str) and s for s in splits[split]):
            raise DataError(f"{src}: expected a non-empty JSON list of story strings")
    made, stats = tokenize_splits(tok, splits, args.tiny_seq_len, args.seed, "--tiny_seq_len", label="tiny ")
    files = {dst: made[split][1] for split, dst in zip(("train", "valid"), targets)}
    write_stage(files, manifest, {"built_from": wanted, "made": stats})
    print(f"tiny: wrote {targets[0]}, {targets[1]}, {manifest}")


def parse_args(argv=None):
    p = OneLineParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                      epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("--source", type=str, default=None,
                   help=f"TinyStories text file (default: ../shared/tinystories/{DEFAULT_SOURCE.name} if "
                        f"present, else {HUB_FILE} downloaded from the hub into --out_dir)")
    p.add_argument("--out_dir", type=Path, default=DATA_DIR, help="where the data goes (default: data/)")
    p.add_argument("--tokenizer", type=Path, default=kit_path(DEFAULT_TOKENIZER), help="tokenizer folder (default: my_tokenizer/)")
    p.add_argument("--num_valid", type=number(int, at_least=1), default=SPLIT_DEFAULTS["num_valid"], help="stories held out for validation (default: %(default)s)")
    p.add_argument("--seed", type=SEED_TYPE, default=SPLIT_DEFAULTS["seed"], help="seed of the split and of the story order (default: %(default)s)")
    p.add_argument("--seq_len", type=number(int, at_least=2), default=SPLIT_DEFAULTS["seq_len"],
                   help="tokens per sequence (window) of the full data (default: %(default)s)")
    p.add_argument("--tiny_seq_len", type=number(int, at_least=2), default=32,
                   help="tokens per sequence of the tiny data, short so that the tiny command's 128 "
                        "sequences fit in our 40 stories (default: %(default)s)")
    p.add_argument("--num_untokenized", type=number(int, at_least=0), default=SPLIT_DEFAULTS["num_untokenized"],
                   help="raw stories kept per split in data/untokenized_*.json (default: %(default)s)")
    p.add_argument("--force", action="store_true", default=False, help="rebuild even what is up to date")
    p.add_argument("--train_tokenizer", action="store_true", default=False,
                   help="re-train my_tokenizer/ from the source (changes every id and reference number)")
    p.add_argument("--tiny", action="store_true", default=False,
                   help="only rebuild data/tiny_*_stories.json from data/untokenized_tiny_*_stories.json")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    try:
        if args.out_dir.exists() and not args.out_dir.is_dir():
            raise DataError(f"--out_dir {args.out_dir}: is a file, not a folder")
        if args.train_tokenizer:
            source = resolve_source(args.source, args.out_dir)
            stories = read_stories(source)
            print(f"tokenizer: training {VOCAB_SIZE} Unigram pieces on {len(stories):,} stories from {source}")
            train_tokenizer(stories, args.tokenizer)
            print(f"tokenizer: wrote {args.tokenizer}")
        tok = load_tokenizer(args.tokenizer)
        if args.tiny:
            build_tiny(args, tok)
        else:
            build_splits(tok, out_dir=args.out_dir, tokenizer_dir=args.tokenizer, source=args.source, force=args.force,
                         seq_len=args.seq_len, num_valid=args.num_valid, seed=args.seed,
                         num_untokenized=args.num_untokenized)
    except DataError as e:
        sys.exit(f"prepare_data.py: error: {e}")
    except OSError as e:  # an output folder that is not writable
        sys.exit(f"prepare_data.py: error: {e.filename or args.out_dir}: {e.strerror or e}")
    except KeyboardInterrupt:
        print("prepare_data.py: interrupted; outputs are written all at once, so none was changed",
              file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    main()
