"""Which engine and which OCI runtime a container target ran under, as facts a report names
and a comparison checks.

"A container" is not one thing: runc, crun and gVisor's runsc run the same image with very
different costs, and runsc's platform (systrap, ptrace, KVM) changes them again. The engine
says which runtimes it knows (``info()["Runtimes"]``: path and arguments) and, for its own
default ones, their versions (``version()["Components"]``); a runtime the engine cannot
version is asked itself when the engine runs on this host, and is unversioned otherwise.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

VERSION_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class RuntimeFacts:
    """One OCI runtime as the engine configures it."""

    name: str
    path: str | None = None
    args: list[str] = field(default_factory=list)
    version: str | None = None
    platform: str | None = None

    @property
    def label(self) -> str:
        """How a report names it: ``runc``, ``crun``, ``runsc/ptrace``."""
        return f"{self.name}/{self.platform}" if self.platform else self.name

    def record(self) -> dict[str, Any]:
        return asdict(self)


def engine_name(version: Mapping[str, Any]) -> str:
    """``Docker Engine`` or ``Podman Engine``: the first component of the version reply."""
    components = version.get("Components") or []
    name = components[0].get("Name") if components else None
    return "Docker Engine" if name in (None, "Engine") else str(name)


def engine_record(version: Mapping[str, Any]) -> dict[str, Any]:
    """The engine's name and version, for the fingerprint and the report."""
    return {"name": engine_name(version), "version": version.get("Version")}


def runtime_facts(
    info: Mapping[str, Any], version: Mapping[str, Any], chosen: str | None, local: bool
) -> RuntimeFacts:
    """The facts of runtime ``chosen`` (the engine's default when None)."""
    name = chosen or str(info.get("DefaultRuntime") or "runc")
    entry = (info.get("Runtimes") or {}).get(name) or {}
    args = [str(a) for a in entry.get("runtimeArgs") or []]
    path = entry.get("path")
    found = _component_version(version, name)
    if found is None and local and path:
        found = _ask(str(path))
    return RuntimeFacts(name, path, args, found, platform(name, path, args))


def platform(name: str, path: str | None, args: list[str]) -> str | None:
    """gVisor's platform from its arguments (``default`` when none is given): the same
    runsc is a different sandbox under ptrace, systrap or KVM. None for other runtimes."""
    if "runsc" not in (name, (path or "").rsplit("/", 1)[-1]):
        return None
    for i, arg in enumerate(args):
        if arg.startswith("--platform="):
            return arg.split("=", 1)[1]
        if arg == "--platform" and i + 1 < len(args):
            return args[i + 1]
    return "default"


def _component_version(version: Mapping[str, Any], name: str) -> str | None:
    """A runtime's version as the engine reports it: Docker's ``runc`` component, Podman's
    ``OCI Runtime (crun)``."""
    for component in version.get("Components") or []:
        label = str(component.get("Name", ""))
        if label == name or label == f"OCI Runtime ({name})":
            return _first_line(str(component.get("Version", ""))) or None
    return None


def _ask(path: str) -> str | None:
    """``<runtime> --version``'s first line, on this host."""
    binary = shutil.which(path) or path
    try:
        done = subprocess.run(
            [binary, "--version"], capture_output=True, text=True, timeout=VERSION_TIMEOUT_S
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return _first_line(done.stdout) if done.returncode == 0 else None


def _first_line(text: str) -> str:
    return (text.strip().splitlines() or [""])[0].strip()
