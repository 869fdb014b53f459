"""Build the zip to upload to Gradescope as the autograder: ``python3 autograder/make_zip.py``.

It holds setup.sh and run_autograder at its top (as Gradescope asks), and what grading needs:
test_runner.py; grader/ (the machinery: children, the rule, points, the fresh cases) and
test_cases/ (the component checks); test_data/; the kit's rnn.py with kit/ and prepare_data.py, which it imports
(the fresh cases' expected values, the tiny command's comparison); my_tokenizer/; the tiny
data, its reference data/tiny_reference.json and the files it is made from, data/tiny_*.txt;
requirements.txt and autograder/points.json. Edit autograder/points.json before building to
change the points.
"""

import argparse
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TOP = {"setup.sh": REPO / "autograder" / "setup.sh", "run_autograder": REPO / "autograder" / "run_autograder"}
FILES = ["test_runner.py", "rnn.py", "prepare_data.py", "requirements.txt", "autograder/points.json", "data/tiny_train_stories.json",
         "data/tiny_valid_stories.json", "data/tiny_reference.json"]
GLOBS = ["kit/*.py", "grader/*.py", "test_cases/*.py", "test_data/*.pt", "my_tokenizer/*", "data/tiny_*.txt"]


def members():
    """{name in the zip: path here}."""
    found = dict(TOP)
    for name in FILES:
        found[name] = REPO / name
    for pattern in GLOBS:
        for path in sorted(REPO.glob(pattern)):
            if path.is_file():
                found[str(path.relative_to(REPO))] = path
    return found


def main(argv=None):
    p = argparse.ArgumentParser(prog="make_zip.py", description=__doc__.split("\n\n")[0], allow_abbrev=False)
    p.add_argument("--out", type=Path, default=REPO / "autograder.zip",
                   help="where to write the zip (default: autograder.zip at the kit's root)")
    args = p.parse_args(argv)
    missing = [str(path) for path in members().values() if not path.is_file()]
    if missing:
        sys.exit(f"make_zip.py: error: {missing[0]} is missing: run it from a complete checkout of the kit")
    if not args.out.parent.is_dir():
        sys.exit(f"make_zip.py: error: --out {args.out}: no folder {args.out.parent}")
    with zipfile.ZipFile(args.out, "w", zipfile.ZIP_DEFLATED) as z:
        for name, path in members().items():
            info = zipfile.ZipInfo.from_file(path, name)
            if name in TOP:
                info.external_attr = 0o755 << 16
            z.writestr(info, path.read_bytes(), zipfile.ZIP_DEFLATED)
    print(f"wrote {args.out} ({args.out.stat().st_size:,} bytes, {len(members())} files): upload it as the "
          f"Gradescope autograder (Ubuntu base image)")


if __name__ == "__main__":
    main()
