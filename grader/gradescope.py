"""Gradescope's results.json from the runner's verdicts, with points per component from a small
JSON file staff can edit (autograder/points.json).

The points file maps each component (and "tiny command", the run of the file as a program) to
its points; a component's points are split among its checks in quarter points, as evenly as
that allows, so that they add up to it exactly. Keys beginning with "_"
are comments. A component the file leaves out gets its default (grader/components.py, 100 in all).
"""

import difflib
import json
import os
import tempfile
from pathlib import Path

from grader.components import DEFAULT_POINTS


class PointsError(Exception):
    """A points file that cannot be used: one line naming the file."""


def load_points(path):
    """{component: points} from ``path`` (defaults for what it leaves out)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as e:
        raise PointsError(f"{path}: {e.strerror or e}") from None
    except ValueError as e:
        raise PointsError(f"{path}: not JSON ({e})") from None
    if not isinstance(data, dict):
        raise PointsError(f"{path}: expected an object mapping components to points, e.g. {{\"RNNCell\": 5}}")
    points = dict(DEFAULT_POINTS)
    for key, value in data.items():
        if key.startswith("_"):
            continue
        if key not in DEFAULT_POINTS:
            close = difflib.get_close_matches(key, DEFAULT_POINTS, n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"the components are {', '.join(DEFAULT_POINTS)}"
            raise PointsError(f"{path}: unknown component {key!r}: {hint}")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise PointsError(f"{path}: {key!r} must be a number of points >= 0, got {value!r}")
        points[key] = value
    return points


def split(points, n):
    """``points`` in ``n`` shares that add up to it exactly: quarter points (exact in binary), as even
    as quarters allow, the larger first (10 in 3: 3.5, 3.25, 3.25); the last takes any remainder
    finer than a quarter."""
    quarters = int(points * 4)
    shares = [(quarters // n + (1 if i < quarters % n else 0)) / 4 for i in range(n)]
    shares[-1] += points - sum(shares)
    return shares


def results(verdicts, points, summary=""):
    """Gradescope's results.json content for verdicts [(component, name, None or failure message)].

    A component's points are split among its checks so that they add up to it exactly."""
    counts = {}
    for component, _, _ in verdicts:
        counts[component] = counts.get(component, 0) + 1
    shares = {component: split(points.get(component, 0), n) for component, n in counts.items()}
    seen, tests = {}, []
    for component, name, message in verdicts:
        max_score = shares[component][seen.setdefault(component, 0)]
        seen[component] += 1
        tests.append({"name": name, "score": max_score if message is None else 0.0, "max_score": max_score,
                      "status": "passed" if message is None else "failed",
                      "output": "PASSED" if message is None else message})
    return {"score": sum(t["score"] for t in tests), "output": summary, "tests": tests}


def write(path, content):
    """Write results.json atomically, replacing whatever is there (one a submission wrote too)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".results-", suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(content, f, indent=1)
        f.write("\n")
    os.replace(tmp, path)
