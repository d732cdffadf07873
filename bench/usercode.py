"""The checks of ``kind: python`` workloads that need the user's files, made when a suite file
is loaded (``bench validate``, ``run``, ``build``, ``nightly``), before anything is deployed.

``path`` is resolved against the suite file's directory and must be a directory bench can ship
(``bench.assets.code``); the entry's module must be one of its files; the ``requirements`` must
not pin a project differently from bench's pins or another workload (and a target that builds
nothing, so does not install them, is warned about). Then the entry is imported, never called,
in a subprocess of the controller's interpreter (``python -m workloads.userentry``): bench
itself never imports the user's code or torch. A module that is not installed in that
interpreter (torch on a controller without it, a package only the targets install from
``requirements``) is not an error: a warning says the import was not checked here, and only
the function's presence is checked, in the module's source.
Each failure is one line naming the file, line and key.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from bench import workerpack
from bench.assets import code
from bench.build import groups as package_groups
from bench.build.config import REQUIREMENTS
from bench.errors import SuiteError
from bench.targets import envvars
from workloads import userentry

CHECK_TIMEOUT_S = 120.0
Locate = Callable[[Sequence[Any], str], SuiteError]
"""Makes the error about the value at a key path (``workloads[0].entry``), with its line."""


def resolve(suite: Any, base: Path, at: Locate) -> Any:
    """``suite`` (a ``bench.suite.Suite``) with each ``kind: python`` workload's ``path``
    made absolute, once every check passed; ``SuiteError`` (from ``at``) at the first that
    does not."""
    workloads = list(suite.workloads)
    found = [(i, w) for i, w in enumerate(workloads) if w.kind == "python"]
    if not found:
        return suite
    for index, workload in found:
        directory = _directory(workload.path, base, ("workloads", index, "path"), at)
        _module(directory, workload.entry, ("workloads", index, "entry"), at)
        workloads[index] = workload.model_copy(update={"path": str(directory)})
    _requirements(suite, base, at)
    _unbuilt(suite, at)
    checked: dict[str, dict[str, Any]] = {}  # workloads sharing code, entry and params: once
    for index, workload in found:
        _imports(Path(workloads[index].path), workload, index, at, checked)
    return suite.model_copy(update={"workloads": workloads})


def _directory(path: str, base: Path, where: tuple[Any, ...], at: Locate) -> Path:
    """The absolute directory ``path`` names (relative: to the suite file's directory)."""
    given = Path(path).expanduser()
    directory = (given if given.is_absolute() else base / given).resolve()
    if not directory.exists():
        raise at(where, f"directory not found: {directory}")
    if not directory.is_dir():
        raise at(where, f"not a directory: {directory}")
    try:
        code.listing(directory)
    except (OSError, code.TooLarge) as exc:
        raise at(where, str(exc)) from None
    return directory


def _module(directory: Path, entry: str, where: tuple[Any, ...], at: Locate) -> None:
    """The entry's module is a file bench ships from ``directory``."""
    module, _ = userentry.parse(entry)  # its form was checked with the schema
    found = userentry.module_file(directory, module)
    relative = module.replace(".", "/")
    if found is None:
        raise at(
            where,
            f"module {module!r} is not in {directory} "
            f"(no {relative}.py, no {relative}/__init__.py)",
        )
    if found.relative_to(directory).as_posix() not in code.listing(directory):
        raise at(
            where,
            f"{found} is not shipped: names beginning with a dot, __pycache__ and links to "
            "directories are left out",
        )


def _base_pins(suite: Any, base: Path) -> dict[str, tuple[str, str]]:
    """Normalised name -> (pin line, where it comes from) of what every built target gets."""
    own = suite.build.requirements
    path = REQUIREMENTS if own is None else own if own.is_absolute() else base / own
    try:
        text = path.read_text()
    except OSError:
        return {}  # the suite's own pins file is missing: load_suite says so
    needed = package_groups.needed(suite.workloads)
    text = package_groups.with_groups(text, needed)
    where = "bench's pins" if own is None else str(path)
    pins = {}
    for line in text.splitlines():
        name = userentry.pinned_name(line)
        if name is not None and not line.lstrip().startswith("#"):
            pins[name] = (line.strip(), where)
    return pins


def _requirements(suite: Any, base: Path, at: Locate) -> None:
    """No workload pins a project at another version than the built targets' pins or an
    earlier workload: pip could not install both."""
    pins = _base_pins(suite, base)
    for index, workload in enumerate(suite.workloads):
        for item, line in enumerate(getattr(workload, "requirements", None) or ()):
            name = userentry.pinned_name(line)
            assert name is not None  # the schema checked the form
            known = pins.setdefault(name, (line.strip(), f"workload {workload.name!r}"))
            if _version(known[0]) != _version(line):
                raise at(
                    ("workloads", index, "requirements", item),
                    f"{line.strip()} conflicts with {known[0]} ({known[1]}): every built "
                    "target installs one version of a project",
                )


def _unbuilt(suite: Any, at: Locate) -> None:
    """A warning per target that installs no ``requirements``: one that runs an interpreter or
    image as it is (``build: false``, an SSH host, a static VM) gets only what is there."""
    wanted = [i for i, w in enumerate(suite.workloads) if getattr(w, "requirements", None)]
    if not wanted:
        return
    for target in (t for t in suite.targets if not t.builds()):
        message = (
            f"target {target.name!r} runs its interpreter or image as it is (no build: true), "
            "so these requirements are not installed there"
        )
        warnings.warn(str(at(("workloads", wanted[0], "requirements"), message)), stacklevel=3)


def _version(line: str) -> str:
    return line.split("==", 1)[1].strip()


def _imports(
    directory: Path, workload: Any, index: int, at: Locate, checked: dict[str, dict[str, Any]]
) -> None:
    """Import the entry in a subprocess and bind the params to its signature."""
    where = ("workloads", index, "entry")
    key = json.dumps([str(directory), workload.entry, workload.params or {}], sort_keys=True)
    if key not in checked:
        checked[key] = check_entry(directory, workload.entry, workload.params or {})
    result = checked[key]
    status = result.get("status")
    if status == "error":
        about = "params" if result.get("about") == "params" else "entry"
        raise at(("workloads", index, about), str(result.get("message")))
    if status == "missing":
        message = (
            f"{workload.entry} not imported here: module {result.get('module')!r} is not "
            f"installed in {sys.executable} (the targets import it; only the function's "
            "presence was checked)"
        )
        warnings.warn(str(at(where, message)), stacklevel=2)
        _defined(directory, workload.entry, where, at)
    elif status != "ok":
        raise at(where, str(result.get("message")))


def _defined(directory: Path, entry: str, where: tuple[Any, ...], at: Locate) -> None:
    """The function is bound at the module's top level (read, not imported)."""
    module, function = userentry.parse(entry)
    found = userentry.module_file(directory, module)
    assert found is not None  # _module checked it
    try:
        defined = userentry.defines(found.read_text(encoding="utf-8"), function)
    except (OSError, UnicodeDecodeError, SyntaxError) as exc:
        raise at(where, f"cannot read {found}: {exc}") from None
    if not defined:
        raise at(where, f"module {module} ({found}) defines no {function!r}")


def check_entry(directory: Path, entry: str, params: dict[str, Any]) -> dict[str, Any]:
    """``workloads.userentry.check`` run by the controller's interpreter in ``directory``;
    ``{"status": "failed", "message": ...}`` when it gives no answer."""
    env = envvars.inherited()
    root = str(workerpack.package_root())
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    command = [sys.executable, "-m", "workloads.userentry", str(directory), entry]
    command.append(json.dumps(params))
    try:
        done = subprocess.run(
            command,
            cwd=directory,
            env=env,
            capture_output=True,
            text=True,
            timeout=CHECK_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired:
        message = f"importing {entry} took more than {CHECK_TIMEOUT_S:g} s"
        return {"status": "failed", "message": message}
    for line in reversed(done.stdout.splitlines()):
        if line.startswith(userentry.MARK):
            return dict(json.loads(line.removeprefix(userentry.MARK)))
    last = (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[-1]
    return {"status": "failed", "message": f"importing {entry} failed: {last}"}
