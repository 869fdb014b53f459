"""The child process that runs a student's code for the grader:
``python -I HARNESS/grader/child.py REQUEST FD``.

It runs from a private copy of the harness (grader/isolation.py makes it: this file, the
rule's watch, the checks' ``compute_*`` steps), never from the kit's folder, and is given the
inputs of the student's calls only: no expected value, no reference. It limits its own
address space, watches for forbidden uses (grader/rules.py) before the student's file is
imported, imports it, and runs the requested checks' ``compute_*`` steps one after the other --
the student's calls only -- writing each one's outputs (plain tensors, numbers, lists) to a
file the runner reads with ``torch.load(weights_only=True)``. It judges nothing: every
comparison and verdict is the runner's. It tells the runner where it is by lines of JSON on
the pipe FD (``imported``, ``start``, ``done``), so that a hang, a crash or an exit is pinned
on one check; the runner's clock, not these lines, decides how long it may take.
What the student's code prints goes to the output file the runner gave it; before each check
the child writes a marker line there, so that the runner can tell whose output is whose.
"""

import json
import os
import resource
import sys
import traceback

MARK = "\x1egrader-check "  # the line before a check's output: MARK + index


def plain(x, depth=0):
    """What torch.load(weights_only=True) reads back: tensors, numbers, strings, lists, tuples, dicts;
    anything else becomes {"__object__": its type's name}."""
    import torch
    if depth > 20:
        return {"__object__": "deeply nested value"}
    if torch.is_tensor(x):
        t = x.detach().cpu().clone()
        return t.as_subclass(torch.Tensor) if type(t) is not torch.Tensor else t
    if x is None or isinstance(x, (bool, int, float, str)):
        return x
    if isinstance(x, (list, tuple)):
        items = [plain(v, depth + 1) for v in x]
        return tuple(items) if isinstance(x, tuple) else items
    if isinstance(x, dict):
        return {str(k): plain(v, depth + 1) for k, v in x.items()}
    if hasattr(x, "__float__") and type(x).__module__ == "numpy":
        return float(x)
    return {"__object__": type(x).__name__}


def where(exc, student_file):
    """' (rnn.py line N, in f)' for the deepest frame of the student's file in the traceback."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == student_file]
    return f" ({os.path.basename(student_file)} line {frames[-1].lineno}, in {frames[-1].name})" if frames else ""


def out_of_memory(exc):
    text = str(exc)
    return isinstance(exc, MemoryError) or (isinstance(exc, RuntimeError) and (
        "can't allocate memory" in text or "not enough memory" in text or "out of memory" in text.lower()))


def describe(exc, student_file, memory_gb):
    """One line for an exception the student's code raised."""
    if isinstance(exc, SystemExit):
        return f"called sys.exit({exc.code!r}): the student's code must return, not exit"
    if out_of_memory(exc):
        return (f"ran out of memory (the grader allows {memory_gb:g} GB of address space): "
                f"{type(exc).__name__}{where(exc, student_file)}")
    frames = traceback.extract_tb(exc.__traceback__)
    if isinstance(exc, AssertionError) and frames and frames[-1].filename != student_file:
        return str(exc)  # the checks' own message (a missing attribute, a wrong shape)
    text = str(exc).splitlines()[0] if str(exc).strip() else ""
    if isinstance(exc, SyntaxError) and exc.lineno:
        return f"{type(exc).__name__}: {exc.msg} ({os.path.basename(student_file)} line {exc.lineno})"
    return f"{type(exc).__name__}: {text}{where(exc, student_file)}"


def main():
    import torch  # before the limit: its libraries map a few GB of address space
    request = torch.load(sys.argv[1], weights_only=True)
    memory = int(request["memory_gb"] * 2**30)
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    torch.set_num_threads(1)  # the summation order of the stored cases, on any machine
    pipe = os.fdopen(int(sys.argv[2]), "w", buffering=1)

    def tell(**event):
        sys.stdout.flush()
        sys.stderr.flush()
        pipe.write(json.dumps(event) + "\n")
        pipe.flush()

    student_file = request["student"]
    sys.path.insert(0, request["harness"])
    from grader import rules

    uses = []
    rules.install_hooks(student_file, lambda label, line: uses.append((label, line)))

    import importlib.util
    checks = [tuple(c) for c in request["checks"]]
    classes = {}
    for module_name, class_name, *_ in checks:
        module = __import__(f"test_cases.{module_name}", fromlist=[class_name])
        classes[(module_name, class_name)] = getattr(module, class_name)

    sys.path.insert(0, os.path.dirname(student_file))  # its own imports, as when it runs as a script
    try:
        spec = importlib.util.spec_from_file_location("rnn_under_test", student_file)
        student = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(student)
    except BaseException as e:  # noqa: BLE001
        tell(event="import_failed", message=describe(e, student_file, request["memory_gb"]), uses=uses[:50])
        return
    tell(event="imported", uses=uses[:50])
    for index, (module_name, class_name, method, case_name) in zip(request["indices"], checks):
        del uses[:]
        print(f"{MARK}{index}", flush=True)
        tell(event="start", index=index)
        compute = getattr(classes[(module_name, class_name)], f"compute_{method[len('test_'):]}")
        try:
            result = {"ok": True, "value": plain(compute(request["inputs"][case_name], student))}
        except BaseException as e:  # noqa: BLE001  (every failure is the runner's to report)
            result = {"ok": False, "message": describe(e, student_file, request["memory_gb"])}
        result["uses"] = list(uses[:50])
        path = os.path.join(request["out"], f"{index}.pt")
        torch.save(result, path + ".tmp")
        os.replace(path + ".tmp", path)
        tell(event="done", index=index)


if __name__ == "__main__":
    main()
