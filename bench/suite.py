"""The suite file: schema, YAML loading and error messages that point at the line.

Validation happens entirely here, before anything is deployed, so that a typo in the last
workload of a long suite fails in a second instead of after an hour of measurements.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, TypeAdapter, ValidationError

from bench import limits, matrix, usercode
from bench.assets import rules
from bench.build.config import BuildConfig
from bench.errors import SuiteError
from bench.limits import Count
from bench.names import Name
from bench.suitefile import format_path, load_yaml, read_text
from bench.targets import registry
from bench.targets.base import TargetConfig
from bench.workloadmodels import (  # noqa: F401 (callers find the workload models here)
    MODELS,
    WORKLOAD_KINDS,
    DataLoading,
    Inference,
    TrainStep,
    Workload,
    WorkloadBase,
)


class Suite(BaseModel):
    """A validated suite: what to run, where, how often and in which order."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Name
    description: str = ""
    repetitions: Annotated[int, Field(ge=1, le=limits.MAX_REPETITIONS)] = 20
    order: Literal["interleaved", "blocked", "random"] = "interleaved"
    seed: Annotated[int, Field(ge=0, lt=1 << 63)] = 0
    cache: Literal["warm", "cold"] = Field(
        default="warm",
        description="cold: drop the page cache where each repetition runs, before it starts",
    )
    min_iterations: Count = Field(
        default=10, description="fewer measured iterations than this make a cell INVALID"
    )
    overhead: bool | None = Field(
        default=None,
        description="compare every target to the baseline; true requires a baseline target",
    )
    targets: list[Any] = Field(min_length=1, max_length=limits.MAX_TARGETS)
    workloads: list[Workload] = Field(min_length=1, max_length=limits.MAX_WORKLOADS)
    build: BuildConfig = BuildConfig()
    _swept: dict[str, dict[str, dict[str, Any]]] = PrivateAttr(default_factory=dict)

    @property
    def swept(self) -> dict[str, dict[str, dict[str, Any]]]:
        """Per list (``targets``, ``workloads``), each entry a ``matrix:`` made: its name to
        ``{"base": written name, "values": {swept key: value}}`` (what the manifest records,
        so stored runs group by value without parsing names)."""
        return self._swept

    def target(self, name: str) -> TargetConfig:
        """The target config called ``name``."""
        return next(t for t in self.targets if t.name == name)

    def workload(self, name: str) -> WorkloadBase:
        """The workload config called ``name``."""
        return next(w for w in self.workloads if w.name == name)

    @property
    def baseline(self) -> str | None:
        """Name of the baseline target, if one is marked."""
        return next((t.name for t in self.targets if t.baseline), None)


def load_suite(path: str | Path) -> Suite:
    """Read, parse and validate a suite file; every failure is a one-line ``SuiteError``.
    ``kind: python`` workloads are checked against their files too (``bench.usercode``)."""
    path = Path(path)
    suite, locator = _parse(read_text(path), str(path))
    suite = _resolve_paths(suite, path)
    return usercode.resolve(suite, path.parent, locator.at)


def _resolve_paths(suite: Suite, path: Path) -> Suite:
    """Files a suite names are relative to the suite file, and must exist before a run starts."""
    requirements = suite.build.requirements
    if requirements is None:
        return suite
    resolved = requirements if requirements.is_absolute() else path.parent / requirements
    if not resolved.is_file():
        raise SuiteError(f"{path}: build.requirements: file not found: {resolved}")
    build = suite.build.model_copy(update={"requirements": resolved})
    return suite.model_copy(update={"build": build})


def parse_suite(text: str, source: str = "<suite>") -> Suite:
    """Validate suite YAML text; errors name the key path and the line. Nothing outside the
    text is read (``load_suite`` checks the files a suite names)."""
    return _parse(text, source)[0]


def _parse(text: str, source: str) -> tuple[Suite, _Locator]:
    """The validated suite, and the locator that names lines in ``text``."""
    data, root = load_yaml(text, source)
    if not isinstance(data, dict):
        raise SuiteError(f"{source}: a suite must be a mapping with name, targets and workloads")
    locator = _Locator(source, root, data)
    swept = {
        "targets": matrix.expand(data.get("targets"), "targets", _target_keys, locator.at),
        "workloads": matrix.expand(data.get("workloads"), "workloads", _workload_keys, locator.at),
    }
    data = {**data, **{k: [m.item for m in v] for k, v in swept.items() if v}}
    locator.expanded(data, {k: [m.origin for m in v] for k, v in swept.items()})
    targets = _validate_targets(data.get("targets"), locator)
    try:
        suite = Suite.model_validate(data)
    except ValidationError as exc:
        raise locator.error(exc) from None
    suite = suite.model_copy(
        update={
            "targets": _named(targets, swept["targets"]),
            "workloads": _named(list(suite.workloads), swept["workloads"]),
        }
    )
    suite._swept = {
        field: {m.name: {"base": m.base, "values": m.values} for m in members if m.swept}
        for field, members in swept.items()
    }
    _check_consistency(suite, locator)
    return suite, locator


def _named(entries: list[Any], members: list[matrix.Member]) -> list[Any]:
    """Validated entries, each expanded one renamed after its values (validated under the
    name as written, which the name rule checks)."""
    return [
        entry.model_copy(update={"name": member.name}) if member.swept else entry
        for entry, member in zip(entries, members, strict=True)
    ]


def _target_keys(kind: Any) -> set[str] | None:
    """The keys a target of ``kind`` accepts (any of its models'), None for an unknown kind."""
    if kind not in registry.kinds():
        return None
    return {key for model in registry.kind(kind).models for key in model.model_fields}


def _workload_keys(kind: Any) -> set[str] | None:
    """The keys a workload of ``kind`` accepts, None for an unknown kind."""
    model = MODELS.get(kind) if isinstance(kind, str) else None
    return None if model is None else set(model.model_fields)


def _validate_targets(raw: Any, locator: _Locator) -> list[TargetConfig]:
    """Validate each target against the config model of its kind."""
    if not isinstance(raw, list) or len(raw) > limits.MAX_TARGETS:
        return []  # the Suite model reports the missing/invalid/too long list itself
    out = []
    for i, item in enumerate(raw):
        if not isinstance(item, dict):
            raise locator.at(("targets", i), "a target must be a mapping with name and kind")
        kind = item.get("kind")
        if kind not in registry.kinds():
            known = ", ".join(registry.kinds())
            raise locator.at(
                ("targets", i, "kind"), f"unknown target kind {kind!r} (available: {known})"
            )
        try:
            out.append(_adapter(kind).validate_python(item))
        except ValidationError as exc:
            raise locator.error(exc, prefix=("targets", i)) from None
    return out


@cache
def _adapter(kind: str) -> TypeAdapter[Any]:
    """The validator of a target kind's config (built once: building one takes milliseconds)."""
    return TypeAdapter(registry.config_model(kind))


def _check_target_workloads(suite: Suite, locator: _Locator) -> None:
    """A target's ``workloads:`` names workloads of this suite."""
    known = {w.name for w in suite.workloads}
    for i, target in enumerate(suite.targets):
        for j, name in enumerate(target.workloads or ()):
            if name not in known:
                where = ("targets", i, "workloads", j)
                raise locator.at(where, f"no workload named {name!r} in this suite")


def _check_consistency(suite: Suite, locator: _Locator) -> None:
    """Cross-field rules that pydantic's per-field validation cannot express."""
    cells = len(suite.targets) * len(suite.workloads) * suite.repetitions
    if cells > limits.MAX_CELLS:
        raise locator.at(
            ("repetitions",),
            f"the plan has {cells} cells ({len(suite.targets)} targets x "
            f"{len(suite.workloads)} workloads x {suite.repetitions} repetitions); "
            f"at most {limits.MAX_CELLS}",
        )
    for field in ("targets", "workloads"):
        seen: set[str] = set()
        for i, item in enumerate(getattr(suite, field)):
            if item.name in seen:
                raise locator.at((field, i, "name"), f"duplicate name {item.name!r}")
            seen.add(item.name)
    _check_target_workloads(suite, locator)
    baselines = [i for i, t in enumerate(suite.targets) if t.baseline]
    if len(baselines) > 1:
        raise locator.at(("targets", baselines[1], "baseline"), "only one target can be baseline")
    if suite.overhead and not baselines:
        raise locator.at(("overhead",), "overhead: true needs one target marked baseline: true")
    for index, message, hint in rules.problems(suite.targets, suite.workloads):
        error = locator.at(("workloads", index, "location"), message)
        error.hint = hint
        raise error


class _Locator:
    """Turns pydantic locations into ``file:line: key.path: message``."""

    def __init__(self, source: str, root: yaml.Node | None, data: Any) -> None:
        self.source = source
        self.root = root
        self.data = data
        self.origins: dict[str, list[matrix.Origin]] = {}

    def expanded(self, data: Any, origins: dict[str, list[matrix.Origin]]) -> None:
        """From now on, key paths are into ``data`` (matrices expanded); each is told in the
        suite file's terms (``targets[1].matrix.cpus[1]``)."""
        self.data = data
        self.origins = {field: found for field, found in origins.items() if found}

    def _in_file(self, loc: tuple[Any, ...]) -> tuple[Any, ...]:
        """The suite file's key path of a path into the expanded lists."""
        found = self.origins.get(loc[0]) if loc else None
        if found is None or len(loc) < 2 or not isinstance(loc[1], int) or loc[1] >= len(found):
            return loc
        return found[loc[1]].locate(loc[0], loc[2:])

    def error(self, exc: ValidationError, prefix: tuple[Any, ...] = ()) -> SuiteError:
        """The first validation error, located. A value that matches no member of a union
        (``gpus: 100000``) fails once per member: the error that is not a plain type mismatch
        ("less than or equal to 256", not "should be 'all'") is the one that helps."""
        errors = exc.errors()
        where = self._clean(prefix + tuple(errors[0]["loc"]))
        same = [e for e in errors if self._clean(prefix + tuple(e["loc"])) == where]
        first = min(same, key=_mismatch)
        kind = first["type"]
        loc = self._clean(prefix + tuple(first["loc"]), keep_last=kind == "missing")
        message = first["msg"].removeprefix("Value error, ")
        if kind == "extra_forbidden":
            message = "unknown key"
        elif kind in ("missing", "union_tag_not_found"):
            loc, message = (
                loc + (("kind",) if kind == "union_tag_not_found" else ()),
                ("required key is missing"),
            )
        elif kind == "union_tag_invalid":
            ctx = first.get("ctx", {})
            key = _discriminator_key(str(ctx.get("discriminator", "'kind'")))
            loc = (*loc, key)
            message = f"unknown {key} {ctx.get('tag')!r} (available: {ctx.get('expected_tags')})"
        return self.at(loc, message)

    def at(self, loc: Sequence[Any], message: str) -> SuiteError:
        """An error about the value at ``loc``."""
        loc = self._in_file(tuple(loc))
        line = self._line(loc)
        where = f"{self.source}:{line}" if line else self.source
        return SuiteError(f"{where}: {format_path(loc)}: {message}")

    def _clean(self, loc: tuple[Any, ...], keep_last: bool = False) -> tuple[Any, ...]:
        """Drop the union tags pydantic inserts (e.g. 'train_step', or 'qemu' for a VM that
        leaves ``provisioner:`` out) that are not real keys; ``keep_last`` keeps a last part
        that names a missing key."""
        out: list[Any] = []
        node = self.data
        for i, part in enumerate(loc):
            last = i == len(loc) - 1
            if (
                isinstance(node, dict)
                and part not in node
                and (not last or not keep_last or part == node.get("kind"))
            ):
                continue
            out.append(part)
            if isinstance(node, dict):
                node = node.get(part)
            elif isinstance(node, list) and isinstance(part, int) and part < len(node):
                node = node[part]
            else:
                node = None
            if node is not None and not isinstance(node, (dict, list)):
                break  # a scalar has no keys: what pydantic adds below it are union tags
        return tuple(out)

    def _line(self, loc: tuple[Any, ...]) -> int | None:
        """1-based line of the deepest YAML node that ``loc`` reaches."""
        node = self.root
        line = node.start_mark.line + 1 if node is not None else None
        for part in loc:
            child = _child(node, part)
            if child is None:
                break
            key_node, node = child
            line = (key_node or node).start_mark.line + 1
        return line


def _child(node: yaml.Node | None, part: Any) -> tuple[yaml.Node | None, yaml.Node] | None:
    """The (key node, value node) under ``node`` for a mapping key or sequence index."""
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if getattr(key, "value", None) == part:
                return key, value
    if isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
        return None, node.value[part]
    return None


def _mismatch(error: Any) -> bool:
    """Whether a pydantic error only says the value is of another type or literal."""
    return error["type"] == "literal_error" or error["type"].endswith("_type")


def _discriminator_key(described: str) -> str:
    """The key a tagged union is told apart by. pydantic describes a field discriminator as
    ``'kind'`` and a callable one by its name, ``_provisioner()``: such a function is named
    after the key it reads."""
    return described.strip("'").removesuffix("()").lstrip("_") or "kind"
