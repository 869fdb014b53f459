"""Run the tests: the component tests of an rnn.py, then the kit's own tests.

    python3 test_runner.py                      # both, on the kit's rnn.py
    python3 test_runner.py --rnn path/to/rnn.py # the component tests on your rnn.py
    python3 test_runner.py --components         # only the component tests (test_cases/)
    python3 test_runner.py --kit                # only the kit's tests (tests/)
    python3 test_runner.py -k attention -k train   # only tests whose name holds a pattern

The component tests check each piece of an rnn.py -- RNNCell, RNN, SelfAttention, the
language model's forward, step path and select_token, validate, train and generate --
through the handout's starter interface only, against stored reference outputs in
test_data/. Each prints PASSED, or FAILED with what differs. The kit's tests (tokenizer,
data script, command line, checkpoints, benchmark, experiments, and this runner) follow.
The last line is ``N passed, N failed``; the exit status is 0 only when all pass.
"""

import argparse
import sys
import time
import traceback
import unittest
from pathlib import Path

REPO = Path(__file__).resolve().parent
sys.path.insert(0, str(REPO))

from test_cases import helpers  # noqa: E402

COMPONENT_MODULES = ("test_rnn_cell", "test_rnn", "test_self_attention", "test_language_model",
                     "test_validate", "test_train", "test_generate")


def flatten(suite):
    for t in suite:
        yield from (flatten(t) if isinstance(t, unittest.TestSuite) else [t])


def selected(tests, patterns):
    return [t for t in tests if not patterns or any(p.lower() in t.id().lower() for p in patterns)]


def component_tests(patterns):
    loader = unittest.defaultTestLoader
    tests = [t for name in COMPONENT_MODULES
             for t in flatten(loader.loadTestsFromName(f"test_cases.{name}"))]
    return selected(tests, patterns)


def where_in_student(exc):
    """'(rnn.py line N, in f)' for the deepest frame of the rnn.py under test, if any."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if Path(f.filename).resolve() == helpers.rnn_path()]
    return f" ({frames[-1].filename.split('/')[-1]} line {frames[-1].lineno}, in {frames[-1].name})" if frames else ""


class ComponentResult(unittest.TestResult):
    """Collects (test, None or the message) without printing tracebacks of the code under test."""

    def __init__(self):
        super().__init__()
        self.outcomes = []

    def addSuccess(self, test):
        super().addSuccess(test)
        self.outcomes.append((test, None))

    def addFailure(self, test, err):
        super().addFailure(test, err)
        self.outcomes.append((test, str(err[1])))

    def addError(self, test, err):
        super().addError(test, err)
        exc = err[1]
        message = str(exc).splitlines()[0] if str(exc) else ""
        self.outcomes.append((test, f"{type(exc).__name__}: {message}{where_in_student(exc)}"))


def run_components(patterns):
    """Run and print the component tests; returns (passed, failed)."""
    tests = component_tests(patterns)
    if not tests:
        return 0, 0
    path = helpers.rnn_path()
    print(f"Component tests of {path}")
    try:
        helpers.student()
    except Exception as e:  # a student's file that does not import: every component fails, one reason
        print(f"  cannot import {path}: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
              f"{where_in_student(e)}")
        print(f"Passed: 0/{len(tests)}")
        return 0, len(tests)
    result = ComponentResult()
    for test in tests:
        test.run(result)
    for test, message in result.outcomes:
        doc = (test.shortDescription() or test._testMethodName).rstrip(".")
        label = f"{test.component}: {doc}"
        print(f"  {label[:78]:.<80} {'PASSED' if message is None else 'FAILED'}")
        if message is not None:
            print("      " + message.replace("\n", "\n      "))
    passed = sum(message is None for _, message in result.outcomes)
    print(f"Passed: {passed}/{len(result.outcomes)}")
    return passed, len(result.outcomes) - passed


def run_kit(patterns, verbose):
    """Run the kit's own tests (tests/); returns (passed, failed)."""
    suite = unittest.defaultTestLoader.discover(str(REPO / "tests"), top_level_dir=str(REPO))
    tests = selected(list(flatten(suite)), patterns)
    if not tests:
        return 0, 0
    print(f"\nThe kit's tests ({len(tests)})")
    result = unittest.TextTestRunner(verbosity=2 if verbose else 1, stream=sys.stdout).run(unittest.TestSuite(tests))
    failed = len(result.failures) + len(result.errors) + len(result.unexpectedSuccesses)
    return result.testsRun - failed - len(result.skipped), failed


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter, allow_abbrev=False)
    p.add_argument("--rnn", type=Path, default=None,
                   help="run the component tests on this rnn.py (default: the kit's; implies --components)")
    part = p.add_mutually_exclusive_group()
    part.add_argument("--components", action="store_true", help="only the component tests (test_cases/)")
    part.add_argument("--kit", action="store_true", help="only the kit's tests (tests/)")
    p.add_argument("-k", dest="patterns", action="append", default=[], type=str,
                   help="only tests whose name contains PATTERN (case-insensitive; repeatable)")
    p.add_argument("-v", "--verbose", action="store_true", help="one line per kit test")
    args = p.parse_args(argv)
    if args.rnn is not None:
        if not args.rnn.is_file():
            p.exit(2, f"test_runner.py: error: --rnn {args.rnn}: no such file\n")
        if args.kit:
            p.exit(2, "test_runner.py: error: --rnn tests a student's rnn.py with the component tests; "
                      "--kit tests the kit itself\n")
        helpers.set_rnn_path(args.rnn)
    start = time.perf_counter()
    passed = failed = 0
    if not args.kit:
        n_pass, n_fail = run_components(args.patterns)
        passed, failed = passed + n_pass, failed + n_fail
    if not args.components and args.rnn is None:
        n_pass, n_fail = run_kit(args.patterns, args.verbose)
        passed, failed = passed + n_pass, failed + n_fail
    print(f"\n({time.perf_counter() - start:.0f} s)")
    print(f"{passed} passed, {failed} failed")
    sys.exit(0 if failed == 0 and passed > 0 else 1)


if __name__ == "__main__":
    main()
