"""Build the kit's data from TinyStories text: tokenizer, tokenized splits, tiny fixtures.

Stages, each skipped when its outputs exist (``--force`` redoes them):

1. tokenizer  -- only with ``--train_tokenizer``: trains ``my_tokenizer/`` (a 1024-piece
   Unigram model, as SentencePiece makes) on the source. It is committed; re-training
   changes every id and so every reference number.
2. splits     -- reads the stories, splits them into train/validation (seeded), tokenizes
   them, cuts long stories into pieces of at most ``--max_len`` tokens and writes
   ``data/{train,valid}_stories.json`` and ``data/untokenized_{train,valid}_stories.json``.

``--tiny`` instead rebuilds the committed ``data/tiny_*_stories.json`` from the committed
``data/untokenized_tiny_*_stories.json`` (stories we wrote ourselves).

Examples:
    python3 prepare_data.py                       # from ../shared/tinystories, or the hub
    python3 prepare_data.py --source TinyStories-valid.txt --force
    python3 prepare_data.py --tiny
"""

import argparse
import json
import math
import os
import random
import shutil
import sys
import tempfile
from pathlib import Path

import rnn

REPO = Path(__file__).resolve().parent
DEFAULT_SOURCE = REPO.parent / "shared" / "tinystories" / "TinyStories-sample.txt"
DEFAULT_TOKENIZER = REPO / "my_tokenizer"
DEFAULT_OUT_DIR = REPO / "data"
HUB_REPO = "roneneldan/TinyStories"
HUB_FILE = "TinyStories-valid.txt"

SEPARATOR = "<|endoftext|>"
VOCAB_SIZE = 1024
PAD, EOS, UNK = "<pad>", "</s>", "<unk>"  # ids 0, 1, 2, as the handout's tokenizer
PAD_BATCH = 128  # the handout's default batch size, at which padding waste is reported
# Typographic characters the sample uses a few hundred times in all; mapping them to ASCII
# keeps 1024 pieces for words. NFKC (before them) also turns '…' into '...'.
ASCII_MAP = {"\u201c": '"', "\u201d": '"', "\u2018": "'", "\u2019": "'",
             "\u2013": "-", "\u2014": "-"}


class DataError(Exception):
    """A problem with the user's input: reported as one line, never a traceback."""


# ----------------------------------------------------------------------------- io helpers

def json_text(obj):
    # One sequence a line: diffable and still plain JSON.
    if obj and isinstance(obj[0], list):
        return "[\n" + ",\n".join(json.dumps(x, separators=(",", ":")) for x in obj) + "\n]\n"
    return json.dumps(obj, indent=1, ensure_ascii=False) + "\n"


def write_json_files(files):
    """Write {path: object} as JSON, all or nothing (temporary files renamed at the end)."""
    for path in files:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    rnn.atomic_write_all([(path, lambda tmp, obj=obj: Path(tmp).write_text(json_text(obj), encoding="utf-8"))
                          for path, obj in files.items()])


def read_stories(path):
    """Return the stories of a TinyStories text file (stories separated by separator lines)."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"source {path}: no such file")
    if not path.is_file():
        raise DataError(f"source {path}: not a file")
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


def download_source():
    """Fetch TinyStories-valid.txt from the Hugging Face hub; a DataError if that fails."""
    try:
        from huggingface_hub import hf_hub_download
        return Path(hf_hub_download(repo_id=HUB_REPO, filename=HUB_FILE, repo_type="dataset"))
    except Exception as e:  # network, offline mode, missing package: all mean the same here
        reason = str(e).splitlines()[0][:120] if str(e) else type(e).__name__
        raise DataError(f"could not download {HUB_FILE} from the hub ({reason}); "
                        "pass --source PATH to a TinyStories text file")


def resolve_source(source):
    if source is not None:
        return Path(source)
    if DEFAULT_SOURCE.exists():
        return DEFAULT_SOURCE
    print(f"{DEFAULT_SOURCE} not found; downloading {HUB_FILE} of {HUB_REPO} from the hub")
    return download_source()


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
        config_path = tmp / "tokenizer_config.json"
        config = json.loads(config_path.read_text(encoding="utf-8"))
        config["tokenizer_class"] = "PreTrainedTokenizerFast"
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
        tok = rnn.load_tokenizer(path)
    except rnn.InputError as e:
        raise DataError(str(e))
    if len(tok) != VOCAB_SIZE:
        raise DataError(f"--tokenizer {path}: vocabulary of {len(tok)} pieces, expected {VOCAB_SIZE}")
    if tok.convert_tokens_to_ids(UNK) != 2:
        raise DataError(f"--tokenizer {path}: {UNK} is not id 2")
    return tok


# ----------------------------------------------------------------------------- sequences

def split_stories(stories, num_valid, seed, source="source"):
    """Seeded split: a permutation of story indices, the first ``num_valid`` for validation."""
    if len(stories) < 2:
        raise DataError(f"source {source}: {len(stories)} story; at least 2 are needed for a train/validation split")
    # A small source (a test's, a user's sample) keeps nine tenths for training.
    num_valid = min(num_valid, max(1, len(stories) // 10))
    order = list(range(len(stories)))
    random.Random(seed).shuffle(order)
    valid = [stories[i] for i in sorted(order[:num_valid])]
    train = [stories[i] for i in sorted(order[num_valid:])]
    return train, valid


def cut(ids, max_len):
    """Cut a story's ids into near-equal pieces of at most ``max_len`` tokens.

    Neighbouring pieces share one token, so every next-token pair of the story is a
    training target exactly once; no piece is shorter than about max_len / 2.
    """
    pairs = len(ids) - 1
    if pairs <= max_len - 1:
        return [list(ids)]
    n = math.ceil(pairs / (max_len - 1))
    pieces, start = [], 0
    for i in range(n):
        size = pairs // n + (1 if i < pairs % n else 0)
        pieces.append(list(ids[start:start + size + 1]))
        start += size
    return pieces


def tokenize(tok, stories, max_len):
    """Token ids of each story (ending in </s>), cut into pieces of at most ``max_len``."""
    ids = tok(stories, add_special_tokens=True)["input_ids"]
    return ids, [p for story in ids for p in cut(story, max_len)]


def pad_share(sequences, batch_size=PAD_BATCH, num_batches=500, seed=0):
    """Share of pad tokens when random batches are padded to their longest sequence."""
    rng = random.Random(seed)
    lengths = [len(s) for s in sequences]
    real = padded = 0
    for _ in range(num_batches):
        batch = [lengths[rng.randrange(len(lengths))] for _ in range(batch_size)]
        real += sum(batch)
        padded += max(batch) * len(batch)
    return 1 - real / padded


def percentile(values, q):
    v = sorted(values)
    return v[min(len(v) - 1, math.ceil(q / 100 * len(v)) - 1)]


def describe(name, story_ids, sequences):
    lengths = [len(s) for s in sequences]
    print(f"{name}: {len(story_ids):,} stories, {sum(map(len, story_ids)):,} tokens, "
          f"{len(sequences):,} sequences; tokens per sequence: mean {sum(lengths) / len(lengths):.1f}, "
          f"p99 {percentile(lengths, 99)}, max {max(lengths)}; "
          f"pad share at batch {PAD_BATCH}: {pad_share(sequences):.1%}")


# ----------------------------------------------------------------------------- stages

def build_splits(args, tok):
    outs = {name: args.out_dir / f"{name}.json" for name in
            ("train_stories", "valid_stories", "untokenized_train_stories", "untokenized_valid_stories")}
    if all(p.exists() for p in outs.values()) and not args.force:
        print(f"splits: {args.out_dir}/{{train,valid}}_stories.json exist; skipped (--force rebuilds)")
        return
    source = resolve_source(args.source)
    stories = read_stories(source)
    train, valid = split_stories(stories, args.num_valid, args.seed, source)
    train_ids, train_seqs = tokenize(tok, train, args.max_len)
    valid_ids, valid_seqs = tokenize(tok, valid, args.max_len)
    write_json_files({outs["untokenized_train_stories"]: train[:args.num_untokenized],
                      outs["untokenized_valid_stories"]: valid[:args.num_untokenized],
                      outs["valid_stories"]: valid_seqs, outs["train_stories"]: train_seqs})
    print(f"splits: read {len(stories):,} stories from {source}; wrote {', '.join(map(str, outs.values()))}")
    describe("train", train_ids, train_seqs)
    describe("valid", valid_ids, valid_seqs)
    print("example (decoded valid[0]):", repr(tok.decode(valid_seqs[0])[:300]))


def build_tiny(args, tok):
    for split in ("train", "valid"):
        src = args.out_dir / f"untokenized_tiny_{split}_stories.json"
        dst = args.out_dir / f"tiny_{split}_stories.json"
        if dst.exists() and not args.force:
            print(f"tiny: {dst} exists; skipped (--force rebuilds)")
            continue
        try:
            stories = json.loads(src.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise DataError(f"{src}: cannot read a JSON list of stories ({e})")
        if not isinstance(stories, list) or not stories or not all(isinstance(s, str) and s for s in stories):
            raise DataError(f"{src}: expected a non-empty JSON list of story strings")
        ids, seqs = tokenize(tok, stories, args.max_len)
        write_json_files({dst: seqs})
        print(f"tiny: wrote {dst}")
        describe(f"tiny {split}", ids, seqs)


def parse_args(argv=None):
    p = rnn.OneLineParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("--source", type=str, default=None,
                   help=f"TinyStories text file (default: {DEFAULT_SOURCE} if present, "
                        f"else {HUB_FILE} of {HUB_REPO} from the hub)")
    p.add_argument("--out_dir", type=Path, default=DEFAULT_OUT_DIR, help="where the data goes (default: data/)")
    p.add_argument("--tokenizer", type=Path, default=DEFAULT_TOKENIZER, help="tokenizer folder (default: my_tokenizer/)")
    p.add_argument("--num_valid", type=rnn.positive(int), default=1000, help="stories held out for validation (default: 1000)")
    p.add_argument("--seed", type=rnn.seed_int, default=0, help="seed of the train/validation split (default: 0)")
    p.add_argument("--max_len", type=int, default=128,
                   help="longest sequence, in tokens; longer stories are cut into near-equal pieces "
                        "sharing one token, never dropped (default: 128, which keeps padding in random "
                        "batches of 128 near 21%%; 256 would waste 27%%)")
    p.add_argument("--num_untokenized", type=int, default=100,
                   help="raw stories kept per split in data/untokenized_*.json (default: 100)")
    p.add_argument("--force", action="store_true", help="rebuild outputs that already exist")
    p.add_argument("--train_tokenizer", action="store_true",
                   help="re-train my_tokenizer/ from the source (changes every id and reference number)")
    p.add_argument("--tiny", action="store_true",
                   help="only rebuild data/tiny_*_stories.json from data/untokenized_tiny_*_stories.json")
    args = p.parse_args(argv)
    if args.max_len < 2:
        p.error(f"--max_len must be at least 2 (a token and its next), got {args.max_len}")
    if args.num_untokenized < 0:
        p.error(f"--num_untokenized must be >= 0, got {args.num_untokenized}")
    return args


def main(argv=None):
    args = parse_args(argv)
    try:
        if args.train_tokenizer:
            source = resolve_source(args.source)
            stories = read_stories(source)
            print(f"tokenizer: training {VOCAB_SIZE} Unigram pieces on {len(stories):,} stories from {source}")
            train_tokenizer(stories, args.tokenizer)
            print(f"tokenizer: wrote {args.tokenizer}")
            args.force = True  # new ids invalidate every tokenized file
        tok = load_tokenizer(args.tokenizer)
        if not args.tiny:
            build_splits(args, tok)
        if args.tiny or (args.train_tokenizer and
                         (args.out_dir / "untokenized_tiny_train_stories.json").exists()):
            build_tiny(args, tok)
    except DataError as e:
        sys.exit(f"prepare_data.py: error: {e}")
    except OSError as e:  # an output folder that is a file, or not writable
        sys.exit(f"prepare_data.py: error: {e.filename or args.out_dir}: {e.strerror or e}")


if __name__ == "__main__":
    main()
