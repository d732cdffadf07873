"""Whether two runs can be compared: the key facts of each target (hardware, kernel, OS,
Python, torch, CUDA, driver, accelerator) must agree, because otherwise the comparison measures
the machines, as pyperf refuses to compare benchmarks with different metadata. Targets and
workloads defined differently are not a refusal, but the reader is told."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from bench.results.model import Fingerprint, Manifest, SuiteRecord, TargetEntry
from bench.targets import registry


def key_facts(entry: TargetEntry) -> dict[str, Any]:
    """What must match for two runs of a target to be comparable: the machine (a VM counts
    as the host it ran on) and the software facts that change what a number means (a kernel,
    a torch or a driver update is exactly what a nightly comparison must not mistake for a
    regression); the accelerator is the kind's to say when the guest did not. A container's
    engine and OCI runtime count too: runc and gVisor run the same image at different costs."""
    fp = entry.fingerprint or Fingerprint()
    kind = registry.kind(entry.kind or "")
    return {
        **fp.hardware(),
        "kernel": fp.kernel,
        "os": fp.os,
        "python": fp.python_version,
        "torch": fp.torch,
        "cuda": fp.torch_cuda,
        "driver": fp.driver,
        "accel": fp.vm_accel or kind.accel(entry.artefacts),
        "container runtime": fp.container_runtime,
    }


@dataclass(frozen=True)
class Difference:
    """One key fact that differs between the runs, for one target."""

    target: str
    key: str
    base: Any
    new: Any

    def describe(self) -> str:
        """One line, e.g. "bare: cpu_model differs: 'Xeon X' vs 'EPYC Y'"."""
        return f"{self.target}: {self.key} differs: {self.base!r} vs {self.new!r}"


def _same(a: Any, b: Any) -> bool:
    return json.dumps(a, sort_keys=True, default=str) == json.dumps(b, sort_keys=True, default=str)


def fingerprint_differences(base: Manifest, new: Manifest) -> list[Difference]:
    """Key fingerprint differences of every target present in both manifests.

    A target whose fingerprint was not recorded in a run (its probe failed) cannot be shown to
    be the same; that is reported as a difference too, never assumed away.
    """
    out = []
    for name in [t for t in new.targets if t in base.targets]:
        b, n = base.targets[name], new.targets[name]
        if b.fingerprint is None or n.fingerprint is None:
            out.append(Difference(name, "fingerprint", _recorded(b), _recorded(n)))
            continue
        base_facts, new_facts = key_facts(b), key_facts(n)
        out += [
            Difference(name, key, base_facts[key], new_facts[key])
            for key in base_facts
            if not _same(base_facts[key], new_facts[key])
        ]
    return out


def _recorded(entry: TargetEntry) -> str:
    return "recorded" if entry.fingerprint is not None else entry.unrecorded


def definition_notes(base: Manifest, new: Manifest) -> list[str]:
    """Targets and workloads of the same name defined differently in the two suites.

    Not a refusal (changing a target's configuration is often the point of the comparison),
    but a changed batch size or step count moves the numbers by itself, and the reader
    must know that before blaming the stack.
    """
    notes = []
    for section in ("targets", "workloads"):
        old = {e["name"]: e for e in _section(base.suite, section) if "name" in e}
        for entry in _section(new.suite, section):
            before = old.get(entry.get("name"))
            if before is None:
                continue
            changed = [
                f"{k} {before.get(k)!r} -> {entry.get(k)!r}"
                for k in dict.fromkeys([*before, *entry])
                if not _same(before.get(k), entry.get(k))
            ]
            if changed:
                kind = section[:-1]
                notes.append(
                    f"{kind} {entry['name']!r} is defined differently: {', '.join(changed)}"
                )
    return notes


def _section(suite: SuiteRecord, name: str) -> list[dict[str, Any]]:
    return suite.targets if name == "targets" else suite.workloads
