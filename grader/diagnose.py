"""The ``likely mistake:`` line under a failed check, from tested hypotheses, never a guess.

A check failed on what the student's code returned. For each mistake of the component's table
(grader/mistakes.py) that shows on that check, the runner computes, in its own process, the
case as that mistake would have it (its expected values), and runs the same check on the same
output against it, with the check's own tolerance. When exactly one line's patched case passes
(and, the check having failed, the right one does not), that line is the likely mistake;
when none or several do, there is no line.
"""

import unittest

from grader import components, mistakes, under_test


def verdict(test, case, value):
    """None when check ``test`` passes on ``value`` (what the student's code returned) against ``case``,
    else its message. Runs the same check again, on a new instance, in this process."""
    again = type(test)(test._testMethodName)
    result = unittest.TestResult()
    with under_test.judging({test.case_name: case}, {again.id(): {"ok": True, "value": value}}):
        again.run(result)
    problems = result.failures + result.errors
    if problems:
        return problems[0][1]
    return None if result.testsRun and not result.skipped else "did not run"


class Patches:
    """Each mistake's patched case of one case, computed once (a train patch reruns every run)."""

    def __init__(self):
        self._made = {}

    def of(self, mistake, case):
        key = (id(mistake), id(case))
        if key not in self._made:
            try:
                self._made[key] = (mistake.patch(case), case)  # the case kept alive, so its id stays its own
            except Exception:  # noqa: BLE001  (a case the mistake cannot be computed on names nothing)
                self._made[key] = (None, case)
        return self._made[key][0]


_PATCHES = Patches()


def matching(test, case, value, patches=_PATCHES):
    """The lines of the component's mistakes whose patched case ``value`` passes on check ``test``."""
    lines = []
    for mistake in mistakes.TABLES.get(test.component, ()):
        if test._testMethodName not in mistake.checks:
            continue
        patched = patches.of(mistake, case)
        if patched is not None and verdict(test, patched, value) is None and mistake.line not in lines:
            lines.append(mistake.line)
    return lines


def likely_mistake(test, case, value):
    """The one mistake line that explains ``value`` failing ``test`` on ``case``, or None."""
    lines = matching(test, case, value)
    return lines[0] if len(lines) == 1 else None


def upheld(verdicts):
    """The lines to print, from [(component, None or the failure, None or its likely-mistake line)]: a
    check whose component runs a component that failed (grader/components.py) keeps its line only when
    that component's failing checks name the same line, since its hypotheses take the rest to be right."""
    named = {}
    for component, message, line in verdicts:
        if message is not None:
            named.setdefault(component, set()).add(line)
    kept = []
    for component, message, line in verdicts:
        upstream = [c for c in components.BY_NAME[component].runs if c in named]
        kept.append(line if line is None or all(line in named[c] for c in upstream) else None)
    return kept
