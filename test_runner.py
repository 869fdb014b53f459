"""Run the tests: the component checks of an rnn.py; with --all, the kit's own tests after them.

    python3 test_runner.py                      # the component checks on the rnn.py beside this file
    python3 test_runner.py --rnn path/to/rnn.py # the component checks on your rnn.py
    python3 test_runner.py --all                # the component checks, then the kit's tests (tests/)
    python3 test_runner.py --kit                # only the kit's tests
    python3 test_runner.py -k attention -k train   # only checks and tests whose name holds a pattern
    python3 test_runner.py --rnn rnn.py --program --fresh 7 --results results.json   # as Gradescope grades

The component checks (test_cases/, one module per component: grader/components.py names them)
check each piece of an rnn.py -- RNNCell, RNN, SelfAttention, the language model's forward,
step path and select_token, validate, train and generate -- through the handout's starter
interface only, against stored reference outputs in test_data/ (or, with --fresh SEED, new
cases drawn from SEED, their expected values computed by the kit's rnn.py), in seconds. The
rnn.py under test runs in child processes (grader/child.py), each check time-limited
(--timeout); the runner's process never imports it, and compares and judges everything itself.
A check fails if the code it runs uses nn.RNN, nn.RNNCell, nn.MultiheadAttention or a
functional equivalent (F.scaled_dot_product_attention included), which the handout forbids.
--program also runs the file as the handout's tiny command and compares its three files with
the kit's run. Each check prints PASSED, or FAILED with what differs and, when exactly one
known mistake explains the output (grader/mistakes.py), a ``likely mistake:`` line. The kit's own tests
(model, tokenizer, data script, command line, checkpoints, benchmark, experiments, the grader)
run with --all or --kit; they test the kit, so --rnn goes with neither. The last line is
``N passed, N failed`` (``, N skipped`` when any skipped); the exit status is 0 only when all
pass and at least one ran.
"""

import argparse
import contextlib
import io
import multiprocessing
import os
import signal
import subprocess
import sys
import time
import unittest
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

REPO = Path(__file__).resolve().parent
sys.path.insert(0, str(REPO))

from kit.cli import SEED_TYPE, OneLineParser, interrupt_exits, number  # noqa: E402  (the kit's own flag rules)

INTERRUPTED = "test_runner.py: interrupted"
with interrupt_exits(INTERRUPTED, active=__name__ == "__main__"):  # the grader imports torch: seconds
    from grader import components, diagnose, gradescope, isolation, rules, sandbox, tiny_program, under_test  # noqa: E402

POINTS = REPO / "autograder" / "points.json"
DEFAULT_DEADLINE = 900.0  # the component checks of a correct file take under 30 s on 2 shared cores


def flatten(suite):
    """The tests of a (nested) unittest suite, one by one."""
    for t in suite:
        yield from (flatten(t) if isinstance(t, unittest.TestSuite) else [t])


def selected(tests, patterns):
    """Those of ``tests`` whose id holds one of ``patterns`` (any case); all of them when there are none."""
    return [t for t in tests if not patterns or any(p.lower() in t.id().lower() for p in patterns)]


def component_tests(patterns):
    """The component checks, in the registry's order of components, that ``patterns`` select."""
    loader = unittest.defaultTestLoader
    tests = [t for c in components.CHECKED for t in flatten(loader.loadTestsFromName(f"test_cases.{c.module}"))]
    return selected(tests, patterns)


class ComponentResult(unittest.TestResult):
    """Collects (test, None or the message) without printing tracebacks."""

    def __init__(self):
        super().__init__()
        self.outcomes = []

    def addSuccess(self, test):
        super().addSuccess(test)
        self.outcomes.append((test, None))

    def addFailure(self, test, err):
        super().addFailure(test, err)
        self.outcomes.append((test, str(err[1])))

    def addError(self, test, err):  # what the child returned is not what the check can read
        super().addError(test, err)
        exc = err[1]
        message = str(exc).splitlines()[0] if str(exc) else ""
        self.outcomes.append((test, f"what it returned cannot be checked: {type(exc).__name__}: {message}"))


def label_of(test):
    """'Component: the check's docstring', the name printed and graded."""
    return f"{test.component}: {(test.shortDescription() or test._testMethodName).rstrip('.')}"


def forbidden(component, runtime_uses, static, name):
    """The rule's one line for a check of ``component``, or None."""
    uses = list(runtime_uses)
    uses += [(label, line) for label, line, owner in static  # outside every component's definitions: everywhere
             if owner not in components.DEFINITIONS or owner in components.BY_NAME[component].definitions]
    return rules.message(uses, name) if uses else None


def print_verdict(label, message, output=()):
    """A check's line, and for a failure its message and the last lines the file printed during it."""
    print(f"  {label:.<78}.. {'PASSED' if message is None else 'FAILED'}")
    if message is not None:
        print("      " + message.replace("\n", "\n      "))
        shown = [line for line in output if line.strip()][-isolation.OUTPUT_LINES:]
        if shown:
            print(f"      what it printed (last {len(shown)} line{'s' if len(shown) > 1 else ''}):")
            for line in shown:
                print("        " + line[:200])


def with_notes(verdicts):
    """Each failure of a check whose component runs a component that failed too says so."""
    failed = []
    for component, _, message in verdicts:
        if message is not None and component not in failed:
            failed.append(component)
    noted = []
    for component, label, message in verdicts:
        upstream = [c for c in failed if c in components.BY_NAME[component].runs]
        if message is not None and upstream:
            them = "it" if len(upstream) == 1 else "them"
            message += (f"\n(this check runs {', '.join(upstream)}, which failed above: it may fail only because "
                        f"of {them}; fix {upstream[0]} first)")
        noted.append((component, label, message))
    return noted


def run_components(patterns, args):
    """Run and print the component tests (and, with --program, the tiny command); returns the
    verdicts [(component, label, None or the message)]."""
    tests = component_tests(patterns)
    program = args.program and (not patterns or any(p.lower() in "tiny command program" for p in patterns))
    if not tests and not program:
        return []
    path = under_test.rnn_path()
    name = path.name
    # Everything the verdicts rest on is read now, before any of the student's code runs: the
    # file's source (what runs is this copy), the cases, the reference.
    source = path.read_bytes()
    names = sorted({t.case_name for t in tests})
    if args.fresh is not None:
        from grader import make_test_data  # only here: it imports the kit's rnn.py
        cases = make_test_data.fresh_cases(args.fresh, names)
    else:
        cases = {case: under_test.stored_case(case) for case in names}
    under_test.use_cases(cases)
    with contextlib.ExitStack() as stack:
        # The tiny command's reference too (with --fresh, the kit's run on fresh data): made now.
        tiny_inputs = stack.enter_context(tiny_program.program_inputs(args.fresh)) if program else None
        print(f"Component tests of {path}" + (f" on fresh cases drawn from seed {args.fresh}" if args.fresh is not None
                                              else ""))
        print(f"({args.box.header()})")
        static = rules.static_uses(source.decode("utf-8", errors="replace"))
        deadline = time.monotonic() + args.deadline
        verdicts, outputs, lines = [], [], []
        if tests:
            checks = [(type(t).__module__.split(".")[-1], type(t).__name__, t._testMethodName, t.case_name,
                       t.component, frozenset((t.component, *components.BY_NAME[t.component].runs))) for t in tests]
            inputs = {t.case_name: type(t).inputs(cases[t.case_name]) for t in tests}
            outcomes = isolation.run_checks(source, checks, inputs, timeout=args.timeout, memory_gb=args.memory_gb,
                                            box=args.box, deadline=deadline)
            if all(o.get("import") for o in outcomes) and not any(o["uses"] for o in outcomes):
                message = outcomes[0]["message"]
                print(f"  {message.replace('cannot import ' + name, 'cannot import ' + str(path), 1)}")
                for line in [line for line in outcomes[0]["output"] if line.strip()][-isolation.OUTPUT_LINES:]:
                    print("        " + line[:200])
                verdicts = [(t.component, label_of(t), message) for t in tests]
                outputs, lines = [[] for _ in tests], [None for _ in tests]
                tests = []
            under_test.use_results({t.id(): o for t, o in zip(tests, outcomes)})
            for test, outcome in zip(tests, outcomes):
                line = None
                message = forbidden(test.component, outcome["uses"], static, name)
                if message is None:
                    result = ComponentResult()
                    test.run(result)
                    message = result.outcomes[-1][1] if result.outcomes else "did not run"
                    if message is not None and outcome.get("ok"):
                        line = diagnose.likely_mistake(test, cases[test.case_name], outcome.get("value"))
                verdicts.append((test.component, label_of(test), message))
                lines.append(line)
                outputs.append(outcome.get("output", []))
            under_test.use_results(None)
            # Each failure's likely mistake (grader/diagnose.py), where what it runs upholds it.
            lines = diagnose.upheld([(component, message, line) for (component, _, message), line in zip(verdicts, lines)])
            verdicts = [(component, label, message if line is None else f"{message}\nlikely mistake: {line}")
                        for (component, label, message), line in zip(verdicts, lines)]
        if program:
            result = tiny_program.run(source, timeout=args.program_timeout, memory_gb=args.memory_gb,
                                      inputs=tiny_inputs, box=args.box)
            message = forbidden(tiny_program.COMPONENT, result["uses"], static, name) or result["message"]
            verdicts.append((tiny_program.COMPONENT, tiny_program.LABEL, message))
            outputs.append(result["output"])
        verdicts = with_notes(verdicts)
        for (component, label, message), output in zip(verdicts, outputs):
            print_verdict(label, message, output)
        passed = sum(message is None for _, _, message in verdicts)
        print(f"Passed: {passed}/{len(verdicts)}")
        return verdicts


# How the kit's test modules run (only an order: any other is as correct). test_hostile times its
# children against their import's allowance, which a busy machine stretches: it runs alone, in this
# process, after the workers. The workers take the slowest first, so that they finish together.
ALONE = ("test_hostile",)
SLOW = ("test_command_line", "test_notebook", "test_experiments", "test_grader", "test_component_runner",
        "test_mistakes", "test_layout", "test_faithful")


def split(modules):
    """``modules`` (dotted names): (those the workers take, in their order; those run alone afterwards)."""
    def rank(module):
        name = module.rsplit(".", 1)[-1]
        return SLOW.index(name) if name in SLOW else len(SLOW)
    pooled = sorted((m for m in modules if m.rsplit(".", 1)[-1] not in ALONE), key=rank)
    return pooled, [m for m in modules if m.rsplit(".", 1)[-1] in ALONE]


def _counts(result):
    failed = len(result.failures) + len(result.errors) + len(result.unexpectedSuccesses)
    return result.testsRun - failed - len(result.skipped), failed, len(result.skipped)


def _worker_start():
    """Each worker: a thread for torch, and for the processes its tests start (two torch processes with a
    thread per core each oversubscribe OpenMP); Ctrl-C is the runner's to handle. A Python handler, not
    SIG_IGN, which the processes the tests start would inherit."""
    os.environ["OMP_NUM_THREADS"] = "1"
    signal.signal(signal.SIGINT, lambda *_: None)


def run_module(ids, verbose):
    """A worker's job: the tests ``ids`` (one module's), run in this process; ((passed, failed, skipped), its report)."""
    stream = io.StringIO()
    suite = unittest.defaultTestLoader.loadTestsFromNames(ids)
    result = unittest.TextTestRunner(verbosity=2 if verbose else 1, stream=stream).run(suite)
    return _counts(result), stream.getvalue()


def run_kit(patterns, verbose, jobs):
    """Run the kit's own tests (tests/), module by module in ``jobs`` worker processes; returns (passed,
    failed, skipped)."""
    suite = unittest.defaultTestLoader.discover(str(REPO / "tests"), top_level_dir=str(REPO))
    tests = selected(list(flatten(suite)), patterns)
    if not tests:
        return 0, 0, 0
    print(f"\nThe kit's tests ({len(tests)})")
    runner = unittest.TextTestRunner(verbosity=2 if verbose else 1, stream=sys.stdout)
    # A module that failed to import is a test here, whose run reports the import's error.
    unloaded = [t for t in tests if type(t).__module__ == "unittest.loader"]
    modules = {}
    for t in tests:
        if t not in unloaded:
            modules.setdefault(type(t).__module__, []).append(t.id())
    if jobs == 1 or len(modules) < 2:
        return _counts(runner.run(unittest.TestSuite(tests)))
    totals = list(_counts(runner.run(unittest.TestSuite(unloaded)))) if unloaded else [0, 0, 0]
    print(f"(in {jobs} worker processes, a module at a time, each a thread: OMP_NUM_THREADS=1)")
    started = time.perf_counter()
    pool = ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn"), initializer=_worker_start)
    pooled, alone = split(modules)
    try:
        futures = {pool.submit(run_module, modules[m], verbose): m for m in pooled}
        for future in as_completed(futures):
            module = futures[future]
            try:
                counts, report = future.result()
            except Exception as e:  # noqa: BLE001  (a worker that died, or a module that could not be run)
                counts, report = (0, len(modules[module]), 0), f"{module} could not be run: {type(e).__name__}: {e}"
            totals = [a + b for a, b in zip(totals, counts)]
            print(f"{module}: {counts[0]} passed, {counts[1]} failed" + (f", {counts[2]} skipped" if counts[2] else "")
                  + f" ({time.perf_counter() - started:.0f} s into the run)")
            if counts[1] or verbose:
                print(report)
    except KeyboardInterrupt:
        for process in list(getattr(pool, "_processes", {}).values()):  # no public way to stop a running job
            process.terminate()
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    for module in alone:
        print(f"{module}, alone:")
        result = runner.run(unittest.defaultTestLoader.loadTestsFromNames(modules[module]))
        totals = [a + b for a, b in zip(totals, _counts(result))]
    return tuple(totals)


def build_parser():
    """The runner's flags; every bad value is a one-line error."""
    p = OneLineParser(prog="test_runner.py", description=__doc__.split("\n\n")[0],
                      epilog=__doc__.split("\n\n", 1)[1], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rnn", type=Path, default=None,
                   help="run the component checks on this rnn.py (default: the one beside test_runner.py)")
    part = p.add_mutually_exclusive_group()
    part.add_argument("--all", action="store_true", default=False,
                      help="the component checks, then the kit's own tests (tests/): the kit's whole suite")
    part.add_argument("--components", action="store_true", default=False,
                      help="only the component checks (test_cases/), as with no flag")
    part.add_argument("--kit", action="store_true", default=False, help="only the kit's own tests (tests/)")
    p.add_argument("-k", dest="patterns", action="append", default=[], type=str, metavar="PATTERN",
                   help="only checks and tests whose name contains PATTERN (case-insensitive; repeatable)")
    p.add_argument("-v", "--verbose", action="store_true", default=False, help="one line per kit test")
    p.add_argument("--jobs", type=number(int, above=0), default=min(2, os.cpu_count() or 1),
                   help="worker processes for the kit's tests, each running one test module at a time "
                        "(default: %(default)s, the cores up to 2)")
    g = p.add_argument_group("grading")
    g.add_argument("--timeout", type=number(float, above=0), default=isolation.DEFAULT_TIMEOUT,
                   help="seconds each component check may run before it fails (default: %(default)g; a correct "
                        "completion needs under 3; importing the file gets at least "
                        f"{isolation.IMPORT_TIMEOUT:g})")
    g.add_argument("--memory_gb", type=number(float, above=0), default=isolation.DEFAULT_MEMORY_GB,
                   help="address space each child may use, in GB (default: %(default)g; torch itself maps about 3)")
    g.add_argument("--fresh", type=SEED_TYPE, default=None, metavar="SEED",
                   help="check on new cases drawn from SEED, expected values from the kit's rnn.py "
                        "(default: the stored test_data/)")
    g.add_argument("--program", action="store_true", default=False,
                   help="also run the file as the handout's tiny command and compare its three files with the "
                        "kit's run to 1e-4")
    g.add_argument("--program_timeout", type=number(float, above=0), default=tiny_program.DEFAULT_TIMEOUT,
                   help="seconds the tiny command may run (default: %(default)g)")
    g.add_argument("--deadline", type=number(float, above=0), default=DEFAULT_DEADLINE,
                   help="seconds the component checks may take in all: a check still to start then fails "
                        "(default: %(default)g)")
    g.add_argument("--no_sandbox", action="store_true", default=False,
                   help="as root, run the student's code as root too rather than as the sandbox user "
                        f"{sandbox.USER} (for a machine where that user cannot run this Python; never for "
                        "grading students) (default: off)")
    g.add_argument("--results", type=Path, default=None, metavar="PATH",
                   help="write Gradescope's results.json there (default: none)")
    g.add_argument("--points", type=Path, default=POINTS, metavar="PATH",
                   help="points per component, JSON (default: autograder/points.json)")
    return p


def parts(args):
    """(run the component checks?, run the kit's tests?): bare and --components the first, --kit the
    second, --all both."""
    return not args.kit, args.all or args.kit


def check_rnn(p, args):
    """Exit with one line when --rnn names no file or goes with the kit's tests, which test the kit."""
    if args.kit or args.all:
        flag = "--kit" if args.kit else "--all"
        p.exit(2, f"test_runner.py: error: --rnn tests a student's rnn.py with the component checks; {flag} "
                  f"runs the kit's own tests, which test the kit itself\n")
    if args.rnn.is_dir():
        inside = args.rnn / "rnn.py"
        hint = f"did you mean --rnn {inside}?" if inside.is_file() else "give the path of the .py file"
        p.exit(2, f"test_runner.py: error: --rnn {args.rnn} is a folder: {hint}\n")
    if not args.rnn.is_file():
        p.exit(2, f"test_runner.py: error: --rnn {args.rnn}: no such file\n")


def choose_sandbox(p, args):
    """The sandbox user when root (unless --no_sandbox), checked able to run this Python; else none."""
    if os.geteuid() != 0:
        return sandbox.Sandbox()
    if args.no_sandbox:
        return sandbox.Sandbox(off_because="--no_sandbox")
    try:
        box = sandbox.current()
    except (OSError, RuntimeError, subprocess.CalledProcessError) as e:
        p.exit(2, f"test_runner.py: error: running as root, the grader runs student code as the sandbox user "
                  f"{sandbox.USER}, which it could not create ({e})\n")
    python = isolation.python_for_children()
    if not sandbox.can_run(box, python):
        p.exit(2, f"test_runner.py: error: running as root, the grader runs student code as the sandbox user "
                  f"{sandbox.USER}, who cannot run {python} (a Python under a folder only root may enter, as "
                  f"/root is?): use a venv of a Python others can run, e.g. /usr/bin/python3 -m venv, or "
                  f"--no_sandbox\n")
    return box


def write_results(p, args, verdicts, points):
    """Gradescope's results.json from the component verdicts (the kit's tests are never graded)."""
    passed = sum(message is None for _, _, message in verdicts)
    summary = f"{passed} of {len(verdicts)} checks passed" + (f" (fresh cases, seed {args.fresh})"
                                                              if args.fresh is not None else "")
    try:
        gradescope.write(args.results, gradescope.results(verdicts, points, summary))
    except OSError as e:
        p.exit(2, f"test_runner.py: error: --results {args.results}: {e.strerror or e}\n")


def main(argv=None):
    p = build_parser()
    args = p.parse_args(argv)
    points = None
    if args.results is not None:
        try:
            points = gradescope.load_points(args.points)
        except gradescope.PointsError as e:
            p.exit(2, f"test_runner.py: error: --points {e}\n")
    if args.rnn is not None:
        check_rnn(p, args)
        under_test.set_rnn_path(args.rnn)
    run_checks, run_tests = parts(args)
    if run_checks:
        args.box = choose_sandbox(p, args)
        isolation.remove_stale_scratch()  # a killed runner's
    start = time.perf_counter()
    passed = failed = skipped = 0
    verdicts = []
    if run_checks:
        verdicts = run_components(args.patterns, args)
        n_pass = sum(message is None for _, _, message in verdicts)
        passed, failed = passed + n_pass, failed + len(verdicts) - n_pass
    if run_tests:
        n_pass, n_fail, skipped = run_kit(args.patterns, args.verbose, args.jobs)
        passed, failed = passed + n_pass, failed + n_fail
    seconds = time.perf_counter() - start
    if args.results is not None:
        write_results(p, args, verdicts, points)
    print(f"\n({seconds:.0f} s)")
    # Skipped tests (a package this environment lacks) are counted apart, never as passed.
    print(f"{passed} passed, {failed} failed" + (f", {skipped} skipped" if skipped else ""))
    sys.exit(0 if failed == 0 and passed > 0 else 1)


if __name__ == "__main__":
    with interrupt_exits(INTERRUPTED):
        main()
