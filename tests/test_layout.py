"""The kit's layout, as the course's: test_cases/ holds the component checks, their helpers and
the grader's stand-in modules, and nothing else; the grader's machinery is in grader/, named by one registry
(grader/components.py); the kit's modules import one another without a cycle, kit/ never
imports rnn.py and nothing imports test_runner.py; the bare ``test_runner.py`` runs the
component checks only, and ``--all`` the kit's tests after them."""

import ast
import re
import unittest

import test_runner
from grader import components
from tests.helpers import REPO, run_script

# The kit's own modules: the scripts at the top and the packages (tests/ tests them, and is left out).
SCRIPTS = ("rnn.py", "test_runner.py", "prepare_data.py", "experiments.py", "bench.py")
PACKAGES = ("kit", "grader", "test_cases")


def kit_modules():
    """{module name: path} of every .py module of the kit ('kit' for kit/__init__.py)."""
    modules = {(REPO / name).stem: REPO / name for name in SCRIPTS}
    for package in PACKAGES:
        for path in sorted((REPO / package).glob("*.py")):
            modules[package if path.stem == "__init__" else f"{package}.{path.stem}"] = path
    return modules


def imported(path, name, known):
    """The modules of ``known`` that the module ``name`` (at ``path``) imports, anywhere in the file:
    an import inside a function is as much a dependency as one at the top."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        targets = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the package, up level - 1
                parts = package.split(".")[:len(package.split(".")) - (node.level - 1)]
                base = ".".join(p for p in parts + [base] if p)
            targets = [base] + [f"{base}.{a.name}" if base else a.name for a in node.names]
        for target in targets:
            parts = target.split(".")
            # importing a.b.c runs a/__init__.py and a/b/__init__.py too
            found.update(".".join(parts[:i]) for i in range(1, len(parts) + 1) if ".".join(parts[:i]) in known)
    found.discard(name)
    return found


def import_graph():
    """{module: the kit's modules it imports}."""
    modules = kit_modules()
    return {name: imported(path, name, modules) for name, path in modules.items()}


def a_cycle(graph):
    """One import cycle of ``graph`` as [a, b, ..., a], or None."""
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                cycle = visit(nxt)
                if cycle:
                    return cycle
        state[node] = "done"
        stack.pop()
        return None

    for node in sorted(graph):
        if node not in state:
            cycle = visit(node)
            if cycle:
                return cycle
    return None


class ImportGraphTest(unittest.TestCase):
    def test_the_walk_sees_the_imports_it_must(self):
        # The walk itself: it would pass any acyclic check by seeing nothing.
        graph = import_graph()
        self.assertIn("kit.cli", graph["test_runner"])
        self.assertIn("grader.components", graph["test_runner"])
        self.assertIn("grader.components", graph["test_cases.helpers"])
        self.assertIn("kit.files", graph["kit.tiny"])
        self.assertIn("rnn", graph["grader.make_test_data"])
        self.assertIn("grader", graph["grader.gradescope"])  # the package's __init__.py runs first
        self.assertEqual(a_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}), ["a", "b", "c", "a"])
        self.assertIsNone(a_cycle({"a": {"b"}, "b": set()}))

    def test_no_import_cycle_among_the_kit_s_modules(self):
        cycle = a_cycle(import_graph())
        self.assertIsNone(cycle, f"an import cycle: {' -> '.join(cycle or [])}")

    def test_kit_never_imports_rnn_and_nothing_imports_test_runner(self):
        for name, imports in import_graph().items():
            if name == "kit" or name.startswith("kit."):
                self.assertNotIn("rnn", imports, f"{name} imports rnn: rnn.py imports the kit, not the other way")
                self.assertFalse({i for i in imports if i.split(".")[0] in ("grader", "test_cases")},
                                 f"{name} imports the grader: the kit is what the grader uses")
            self.assertNotIn("test_runner", imports, f"{name} imports test_runner.py, which drives everything")

    def test_the_gradescope_zip_holds_every_module_the_grader_imports(self):
        # The zip's runner runs test_runner.py and imports the kit's rnn.py (the fresh cases' values).
        import importlib.util
        spec = importlib.util.spec_from_file_location("make_zip", REPO / "autograder" / "make_zip.py")
        make_zip = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(make_zip)
        graph, modules, zipped = import_graph(), kit_modules(), set(make_zip.members())
        needed, todo = set(), ["test_runner", "rnn"]
        while todo:
            name = todo.pop()
            if name not in needed:
                needed.add(name)
                todo.extend(graph[name])
        missing = sorted(str(modules[n].relative_to(REPO)) for n in needed
                         if str(modules[n].relative_to(REPO)) not in zipped)
        self.assertEqual(missing, [])

    def test_test_runner_takes_its_flag_rules_from_the_kit_not_from_rnn(self):
        self.assertNotIn("rnn", import_graph()["test_runner"])


class TestCasesLayoutTest(unittest.TestCase):
    def test_test_cases_holds_the_component_modules_the_helpers_and_the_stand_ins(self):
        files = sorted(p.name for p in (REPO / "test_cases").iterdir() if p.name != "__pycache__")
        tests = [f for f in files if re.fullmatch(r"test_\w+\.py", f)]
        others = [f for f in files if f not in tests and f != "__init__.py"]
        self.assertEqual(others, ["helpers.py", "stand_ins.py"], "test_cases/ holds the checks' helpers and the "
                                                                 "grader's stand-in modules besides the checks")
        # One module per component, each named by the registry, none it does not name.
        self.assertEqual(sorted(f[:-3] for f in tests), sorted(c.module for c in components.CHECKED))

    def test_no_test_class_name_is_both_in_tests_and_in_test_cases(self):
        def classes(folder):
            return {node.name for path in (REPO / folder).glob("*.py")
                    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
                    if isinstance(node, ast.ClassDef)}
        ours, theirs = classes("tests"), classes("test_cases")
        self.assertIn("ImportGraphTest", ours)  # the scan finds classes at all
        self.assertIn("RNNCellTest", theirs)
        self.assertEqual(ours & theirs, set())

    def test_every_check_belongs_to_a_registered_component_with_its_stored_case(self):
        tests = test_runner.component_tests([])
        self.assertEqual({t.component for t in tests}, {c.name for c in components.CHECKED})
        for t in tests:
            self.assertTrue((REPO / "test_data" / f"{t.case_name}.pt").is_file(), t.id())


class RegistryTest(unittest.TestCase):
    def test_what_a_component_runs_and_where_its_names_count_are_registered_names(self):
        names = [c.name for c in components.COMPONENTS]
        self.assertEqual(len(names), len(set(names)))
        for c in components.COMPONENTS:
            self.assertLessEqual(set(c.runs), set(names) - {c.name}, c.name)
            self.assertTrue(c.definitions, c.name)
        self.assertEqual(components.PROGRAM.name, "tiny command")
        self.assertEqual(sum(components.DEFAULT_POINTS.values()), 100)


def counted_checks():
    """The component checks in test_cases/, counted by unittest's own discovery (not the registry)."""
    return unittest.defaultTestLoader.discover(str(REPO / "test_cases"), pattern="test_*.py",
                                               top_level_dir=str(REPO)).countTestCases()


class RunnerPartsTest(unittest.TestCase):
    def test_bare_test_runner_runs_the_component_checks_only(self):
        r = run_script("test_runner.py", env={"OMP_NUM_THREADS": "1"})
        n = counted_checks()
        self.assertEqual(r.returncode, 0, r.stdout[-3000:] + r.stderr[-2000:])
        self.assertNotIn("The kit's tests", r.stdout)
        self.assertNotRegex(r.stdout + r.stderr, r"\nRan \d+ test")  # unittest's runner never ran
        self.assertEqual(len(re.findall(r"\.\. (PASSED|FAILED)$", r.stdout, re.M)), n)
        self.assertIn(f"Passed: {n}/{n}", r.stdout)
        self.assertEqual(r.stdout.strip().splitlines()[-1], f"{n} passed, 0 failed")

    def test_all_runs_the_component_checks_then_the_kit_s_tests(self):
        # Patterns keep it short: one component check, and this file's registry test.
        r = run_script("test_runner.py", "--all", "-k", "RNNCellTest", "-k", "tests.test_layout.RegistryTest",
                       env={"OMP_NUM_THREADS": "1"})
        self.assertEqual(r.returncode, 0, r.stdout[-3000:] + r.stderr[-2000:])
        out = r.stdout
        self.assertLess(out.index("Component tests of"), out.index("The kit's tests (1)"))
        self.assertIn("Passed: 1/1", out)
        self.assertEqual(out.strip().splitlines()[-1], "2 passed, 0 failed")

    def test_the_kit_s_tests_of_several_modules_run_in_workers_and_add_up(self):
        names = ("tests.test_layout.RegistryTest", "tests.test_tokenizer")
        counts = [unittest.defaultTestLoader.loadTestsFromName(n).countTestCases() for n in names]
        r = run_script("test_runner.py", "--kit", "--jobs", "2", *(a for n in names for a in ("-k", n)))
        self.assertEqual(r.returncode, 0, r.stdout[-3000:] + r.stderr[-2000:])
        self.assertIn("(in 2 worker processes", r.stdout)
        self.assertRegex(r.stdout, rf"\ntests\.test_layout: {counts[0]} passed, 0 failed \(")
        self.assertRegex(r.stdout, rf"\ntests\.test_tokenizer: {counts[1]} passed, 0 failed \(")
        self.assertEqual(r.stdout.strip().splitlines()[-1], f"{sum(counts)} passed, 0 failed")

    def test_kit_runs_the_kit_s_tests_only(self):
        r = run_script("test_runner.py", "--kit", "-k", "tests.test_layout.RegistryTest")
        self.assertEqual(r.returncode, 0, r.stdout[-3000:] + r.stderr[-2000:])
        self.assertNotIn("Component tests of", r.stdout)
        self.assertEqual(r.stdout.strip().splitlines()[-1], "1 passed, 0 failed")


if __name__ == "__main__":
    unittest.main()
