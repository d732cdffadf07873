"""What a stored run means: the manifest as a typed, versioned model.

Every module that reads a run (reports, comparisons, the history) reads this model instead
of indexing into JSON, so the defensive ``isinstance`` guards live here once: a manifest whose
known fields have the wrong shape is refused with one line naming the field, and one that
merely lacks them (a run created but killed before its targets were prepared) reads with
the defaults. Keys this bench does not know (written by a newer one) are kept, not refused.

Schema versions. 1: the manifest as written up to bench 0.1. 2: adds ``analysis``, what the
run's numbers are compared against (the baseline target, and whether repetitions are paired),
decided when the run starts, so a stored run keeps its meaning whatever a later suite schema
says. ``migrate`` brings a version-1 manifest to version 2 by deriving ``analysis`` from the
suite exactly as bench 0.1 did.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

SCHEMA_VERSION = 2
MANIFEST = "manifest.json"
HARDWARE_KEYS = ("cpu_model", "cores", "memory_bytes", "gpu_names")


def logical_cores(cores: Any) -> int | None:
    """The logical core count of a fingerprint's ``cores`` (early runs stored the count)."""
    return cores.get("logical") if isinstance(cores, dict) else cores


class Record(BaseModel):
    """A part of a manifest: known fields typed, unknown ones kept."""

    model_config = ConfigDict(extra="allow", frozen=True, populate_by_name=True)


class Check(Record):
    """One environment check of a fingerprint (``workloads.environment``)."""

    check: str = "?"
    status: str = "?"
    value: Any = None
    fix: str | None = None


class Fingerprint(Record):
    """Best-effort facts about where a target ran (``workloads.fingerprint``): every field
    may be missing, none may have another shape."""

    cpu_model: str | None = None
    cores: dict[str, Any] | int | None = None  # early runs: a bare count
    memory_bytes: int | float | None = None
    gpu_names: list[str] | None = None
    kernel: str | None = None
    os: str | None = None
    python: dict[str, Any] | str | None = None  # early runs: the version alone
    torch: str | None = None
    torch_cuda: str | None = None
    numpy: str | None = None
    nvml: dict[str, Any] | None = None
    cgroup_limits: dict[str, Any] | None = None
    virtualization: dict[str, Any] | None = None
    environment: list[Check] | None = None
    vm: dict[str, Any] | None = None
    container: dict[str, Any] | None = None

    @property
    def container_runtime(self) -> dict[str, Any] | None:
        """The engine and the OCI runtime (name, version, gVisor's platform) a container ran
        under, without the paths and arguments that may differ between equal setups."""
        if not self.container:
            return None
        runtime = self.container.get("runtime") or {}
        keep = ("name", "version", "platform")
        return {
            "engine": (self.container.get("engine") or {}).get("name"),
            **{key: runtime.get(key) for key in keep},
        }

    @property
    def logical_cores(self) -> int | None:
        return logical_cores(self.cores)

    @property
    def python_version(self) -> str | None:
        return self.python.get("version") if isinstance(self.python, dict) else self.python

    @property
    def driver(self) -> str | None:
        return (self.nvml or {}).get("driver_version")

    @property
    def vm_accel(self) -> str | None:
        return (self.vm or {}).get("accel")

    @property
    def warnings(self) -> list[Check]:
        """The environment checks that warned."""
        return [check for check in self.environment or [] if check.status == "warn"]

    def hardware(self) -> dict[str, Any]:
        """The parts that describe the machine rather than its software or its limits (a
        container's cpuset narrows the usable cores; the machine is the same). A VM guest sees
        virtual CPUs; its fingerprint names the host it ran on, which is what counts."""
        host = (self.vm or {}).get("host_hardware")
        source = host if isinstance(host, dict) else self.model_dump(include=set(HARDWARE_KEYS))
        out = {key: source.get(key) for key in HARDWARE_KEYS}
        if isinstance(out.get("cores"), dict):
            out["cores"] = {k: v for k, v in out["cores"].items() if k != "usable"}
        return out


class TargetEntry(Record):
    """One target as prepared and fingerprinted. ``artefacts`` are described by the target's
    kind (``bench.targets.registry``); a failed preparation or probe says why."""

    kind: str | None = None
    artefacts: dict[str, Any] = Field(default_factory=dict)
    fingerprint: Fingerprint | None = None
    fingerprint_error: str | None = None
    prepare_error: str | None = None

    @property
    def unrecorded(self) -> str:
        """Why there is no fingerprint."""
        return f"not recorded ({self.fingerprint_error or self.prepare_error})"


class SuiteRecord(Record):
    """The suite as run (validated, defaults filled in). Targets and workloads stay mappings:
    they are compared key by key and hashed as written."""

    name: str = ""
    description: str = ""
    repetitions: int | None = None
    order: str = "interleaved"
    cache: str | None = None
    overhead: bool | None = None
    targets: list[dict[str, Any]] = Field(default_factory=list)
    workloads: list[dict[str, Any]] = Field(default_factory=list)

    def as_written(self) -> dict[str, Any]:
        """The suite section with exactly the keys it was stored with."""
        return self.model_dump(exclude_unset=True, by_alias=True)


class Analysis(Record):
    """What the run's numbers are compared against."""

    baseline: str | None = None
    paired: bool = True


class Swept(Record):
    """An entry a ``matrix:`` made: the name written in the suite and the swept values."""

    base: str = ""
    values: dict[str, Any] = Field(default_factory=dict)


class MatrixRecord(Record):
    """Every entry made by a ``matrix:``, by the name it ran under (runs stored before matrices
    existed have none)."""

    targets: dict[str, Swept] = Field(default_factory=dict)
    workloads: dict[str, Swept] = Field(default_factory=dict)


class Controller(Record):
    bench_version: str | None = None
    git_commit: str | None = None


class Manifest(Record):
    """A run's manifest (``manifest.json``)."""

    schema_version: int = Field(default=SCHEMA_VERSION, alias="schema")
    run_id: str | None = None
    status: str | None = None
    error: str | None = None
    created_at: str | None = None
    finished_at: str | None = None
    cache: str | None = None
    suite: SuiteRecord = Field(default_factory=SuiteRecord)
    analysis: Analysis = Field(default_factory=Analysis)
    controller: Controller = Field(default_factory=Controller)
    host: Fingerprint | None = None
    targets: dict[str, TargetEntry] = Field(default_factory=dict)
    matrix: MatrixRecord = Field(default_factory=MatrixRecord)
    security_warnings: list[str] = Field(default_factory=list)

    @property
    def baseline(self) -> str | None:
        """The baseline target, or None (none marked, or comparisons turned off)."""
        return self.analysis.baseline

    @property
    def paired(self) -> bool:
        """Interleaved runs compare repetition with repetition (``stats.paired_ratio``)."""
        return self.analysis.paired

    def fingerprints(self) -> dict[str, Fingerprint]:
        """Each target that recorded a fingerprint, by name."""
        return {n: e.fingerprint for n, e in self.targets.items() if e.fingerprint is not None}


def analysis_of(suite: dict[str, Any]) -> dict[str, Any]:
    """``analysis`` from a suite section: its baseline target unless the suite turned
    comparisons off, and pairing for interleaved runs (what bench 0.1 derived at read time)."""
    targets = suite.get("targets", [])
    baseline = None
    if suite.get("overhead") is not False and isinstance(targets, list):
        marked = (t.get("name") for t in targets if isinstance(t, dict) and t.get("baseline"))
        baseline = next(marked, None)
    return {"baseline": baseline, "paired": suite.get("order", "interleaved") == "interleaved"}


def migrate(raw: dict[str, Any]) -> dict[str, Any]:
    """A stored manifest of any known version, in the current version's shape."""
    out = dict(raw)
    version = out.get("schema", 1)
    if version == 1 or version is None:
        suite = out.get("suite")
        out["analysis"] = analysis_of(suite if isinstance(suite, dict) else {})
        out["schema"] = 2
    return out


def parse(raw: Any) -> Manifest:
    """The model of a decoded manifest, or ValueError naming the first bad field."""
    if not isinstance(raw, dict):
        raise ValueError("not a JSON object")
    version = raw.get("schema", 1)
    if not isinstance(version, int) or isinstance(version, bool) or version > SCHEMA_VERSION:
        raise ValueError(f"schema {version!r} is not one this bench reads (1 to {SCHEMA_VERSION})")
    try:
        return Manifest.model_validate(migrate(raw))
    except ValidationError as exc:
        raise ValueError(_problem(exc.errors()[0])) from None


SHAPES = {
    "dict_type": "a JSON object",
    "model_type": "a JSON object",
    "list_type": "a JSON array",
    "string_type": "a JSON string",
    "int_type": "a JSON integer",
    "int_from_float": "a JSON integer",
    "float_type": "a JSON number",
    "bool_type": "true or false",
}


def _problem(error: Any) -> str:
    """'suite.targets is not a JSON array': the field's key path (without the union member
    names pydantic adds) and the shape it should have."""
    keys = []
    for part in error["loc"]:
        if isinstance(part, str) and ("[" in part or part in ("int", "str", "float", "bool")):
            break
        keys.append(str(part))
    where = ".".join(keys) or "manifest"
    shape = SHAPES.get(error["type"])
    return f"{where} is not {shape}" if shape else f"{where}: {error['msg']}"


def as_manifest(value: Manifest | dict[str, Any]) -> Manifest:
    """``value`` as the model: notebooks hold the stored JSON (``results.load_manifest``)."""
    return value if isinstance(value, Manifest) else parse(value)
