"""The entry point of a ``kind: python`` workload: ``module:function`` in the user's directory.

Both sides use this module. The worker imports the function from the directory staged on the
target and calls it. The controller runs this module as a script (``python -m
workloads.userentry DIR ENTRY PARAMS_JSON``) in a subprocess of its own interpreter when a suite
is validated, so that a misspelt entry, a module that does not import or a parameter the
function does not take is one clear line before anything is deployed, and the controller
itself never imports the user's code (or torch). The function is never called there.

Standard library only: the check must be able to say which module is missing. The rules of
the workload's options that need no files (``check_options``) live here too.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import json
import keyword
import os
import re
import sys
import traceback
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from workloads.options import SpecError

MARK = "bench-entry-check: "
"""Prefix of the line carrying the check's result (the module may print on import)."""


class EntryError(Exception):
    """The entry cannot be imported from the directory, or cannot take the params."""


def _name(part: str) -> bool:
    return part.isidentifier() and not keyword.iskeyword(part)


def parse(entry: str) -> tuple[str, str]:
    """(module, function) of ``module:function``; ``ValueError`` saying what is wrong."""
    module, colon, function = entry.partition(":")
    if not colon or not all(_name(p) for p in module.split(".")) or not _name(function):
        raise ValueError(
            f"entry {entry!r} must be module:function (a dotted module path inside the "
            "directory, a colon, the name of a function in it)"
        )
    return module, function


PIN = re.compile(
    r"(?P<name>[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?)(\[[\w.,\s-]+\])?==(?P<version>[\w.+!-]+)"
)
"""A requirement of a ``kind: python`` workload: ``name==version`` (extras allowed)."""


def pinned_name(line: str) -> str | None:
    """The normalised project name of a pinned requirement line (PEP 503), else None."""
    match = PIN.fullmatch(line.strip())
    return re.sub(r"[-_.]+", "-", match["name"]).lower() if match else None


def check_options(workload: Mapping[str, Any]) -> None:
    """The rules of a filled ``kind: python`` workload (``workloads.spec.check_workload``):
    the entry's form and pinned requirements. The directory and whether the entry imports
    are the controller's checks (``bench.usercode``), where the files are."""
    try:
        module, _ = parse(workload["entry"])
    except ValueError as exc:
        raise SpecError(f"workload.{exc}") from None
    if module.split(".")[0] == "workloads":
        raise SpecError(
            "workload.entry: a module named workloads would be bench's worker package on the "
            "target; rename it"
        )
    seen: set[str] = set()
    for index, line in enumerate(workload["requirements"] or []):
        name = pinned_name(line)
        if name is None:
            raise SpecError(
                f"workload.requirements[{index}] {line!r} must be pinned as name==version, so "
                "that every target and every later run installs the same files"
            )
        if name in seen:
            raise SpecError(f"workload.requirements[{index}] pins {name} a second time")
        seen.add(name)


def module_file(directory: str | Path, module: str) -> Path | None:
    """The source file ``module`` is imported from in ``directory``: ``a/b.py`` or
    ``a/b/__init__.py``; None when neither exists."""
    base = Path(directory, *module.split("."))
    for candidate in (base.with_name(base.name + ".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def defines(source: str, name: str) -> bool:
    """Whether module ``source`` binds ``name`` at top level (def, assignment or import): the
    check that remains when the module cannot be imported here."""
    for node in ast.parse(source).body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            found = {node.name}
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            found = {t.id for t in targets if isinstance(t, ast.Name)}
        elif isinstance(node, ast.Import | ast.ImportFrom):
            found = {a.asname or a.name.split(".")[0] for a in node.names}
        else:
            continue
        if name in found:
            return True
    return False


def _forget(top: str, directory: str) -> None:
    """Drop ``top`` and its submodules from ``sys.modules`` unless they come from
    ``directory``: an in-process run after another one must import this directory's code."""
    for name in [n for n in sys.modules if n == top or n.startswith(top + ".")]:
        where = getattr(sys.modules[name], "__file__", None) or ""
        if not os.path.abspath(where).startswith(os.path.abspath(directory) + os.sep):
            del sys.modules[name]


def load(directory: str, entry: str) -> Callable[..., Any]:
    """Import ``entry``'s module with ``directory`` first on ``sys.path`` and return its
    function. The directory stays on the path: the user's code may import its own modules
    later (and DataLoader workers started with spawn inherit the path)."""
    module_name, function_name = parse(entry)
    if directory not in sys.path:
        sys.path.insert(0, directory)
    importlib.invalidate_caches()
    _forget(module_name.split(".")[0], directory)
    module = importlib.import_module(module_name)
    function = getattr(module, function_name, None)
    if function is None:
        raise EntryError(f"entry {entry}: module {module_name} has no {function_name!r}")
    if not callable(function):
        raise EntryError(f"entry {entry}: {function_name!r} is not callable")
    return function


def refusal(function: Callable[..., Any], params: Mapping[str, Any]) -> str | None:
    """Why ``function(ctx, **params)`` would be refused by its signature, else None."""
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError):
        return None  # a builtin without a signature: the call itself will tell
    try:
        signature.bind(object(), **params)
    except TypeError as exc:
        names = [p.name for p in signature.parameters.values()][1:]
        takes = f"after ctx it takes {', '.join(names)}" if names else "it takes ctx alone"
        return f"{function.__name__}(ctx, **params): {exc} ({takes})"
    return None


def _where(exc: BaseException, directory: str) -> str:
    """``file:line`` of the innermost frame in the user's directory, or ''."""
    root = os.path.abspath(directory) + os.sep
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename.startswith(root)]
    if isinstance(exc, SyntaxError) and exc.filename and exc.filename.startswith(root):
        return f"{exc.filename[len(root) :]}:{exc.lineno}: "
    if not frames:
        return ""
    return f"{frames[-1].filename[len(root) :]}:{frames[-1].lineno}: "


def _inside(directory: str, name: str) -> bool:
    """Whether module ``name``'s top level lives in ``directory`` (the user's own module)."""
    top = name.split(".")[0]
    return module_file(directory, top) is not None or Path(directory, top).is_dir()


def check(directory: str, entry: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """Import the entry (never call it) and bind the params: ``{"status": "ok"}``,
    ``{"status": "missing", "module": name}`` for a module that is not installed in this
    interpreter, or ``{"status": "error", "message": ..., "about": "entry" | "params"}``."""
    try:
        function = load(directory, entry)
    except ModuleNotFoundError as exc:
        name = exc.name or ""
        if name and not _inside(directory, name):
            return {"status": "missing", "module": name}
        where = _where(exc, directory)
        return {"status": "error", "about": "entry", "message": f"{where}{exc}"}
    except EntryError as exc:
        return {"status": "error", "about": "entry", "message": str(exc)}
    except BaseException as exc:  # the module's own code failed: SyntaxError, SystemExit...
        message = " ".join(str(exc).split()) or "no message"
        where = _where(exc, directory)
        text = f"importing {entry.partition(':')[0]} failed: {where}{type(exc).__name__}: {message}"
        return {"status": "error", "about": "entry", "message": text}
    reason = refusal(function, params)
    if reason is not None:
        return {"status": "error", "about": "params", "message": reason}
    return {"status": "ok"}


def main(argv: list[str]) -> int:
    """``python -m workloads.userentry DIR ENTRY PARAMS_JSON``: print the check's result."""
    directory, entry, params = argv[0], argv[1], json.loads(argv[2])
    sys.dont_write_bytecode = True  # leave no __pycache__ in the user's directory
    result = check(directory, entry, params)
    sys.stdout.flush()
    print(MARK + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
