"""``matrix:`` on a target or workload: one entry per combination of the swept values.

A sweep is written once and expands, before anything is validated, into ordinary entries
named ``base[key=value,key=value]`` (keys in the order the matrix gives them). Each entry is
then validated exactly as if it had been written by hand, so a bad value fails as it would on
the entry itself, and the runner, the plan and the stores see plain targets and workloads:
matrix entries are interleaved with the others like any other. What the expansion keeps is the
way back (which list index and which value of each swept key made an entry) so that every
error names the line of the suite file it comes from.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from bench import limits
from bench.errors import SuiteError

Locate = Callable[[Sequence[Any], str], SuiteError]
"""Makes an error about the value at a key path of the suite file (``suite._Locator.at``)."""

RESERVED = ("name", "kind", "matrix", "baseline")
"""Keys a matrix cannot sweep: they say which entry this is, not how it runs."""
EXCLUDE = "exclude"
"""The matrix key that lists combinations to leave out (as GitHub Actions spells it)."""
MAX_COMBINATIONS = min(limits.MAX_TARGETS, limits.MAX_WORKLOADS)
"""Most combinations one matrix may make, counted before ``exclude`` so that a matrix of a
few lines cannot ask for millions of entries before anything counts them."""
MAX_NAME = 120
"""Longest expanded name: a cell's raw file is named after its target and its workload, and
both must fit one file name (255 bytes)."""
UNSAFE = re.compile(r"[^A-Za-z0-9_.:+@-]")
"""Characters a value may not bring into a name (names become file names and labels)."""


@dataclass(frozen=True)
class Origin:
    """Where an expanded entry comes from: its index in the suite file's list and, per swept
    key, the index of its value in the matrix's list of values."""

    index: int
    positions: dict[str, int] = field(default_factory=dict)

    def locate(self, field_name: str, rest: Sequence[Any]) -> tuple[Any, ...]:
        """The suite file's key path of ``rest`` (a path inside the expanded entry)."""
        head = (field_name, self.index)
        if rest and rest[0] in self.positions:
            return (*head, "matrix", rest[0], self.positions[rest[0]], *rest[1:])
        return (*head, *rest)


@dataclass(frozen=True)
class Member:
    """One entry after expansion: the mapping to validate (named as written), the name it
    runs under, where it comes from, and the swept values (empty without a matrix)."""

    item: Any
    name: Any
    origin: Origin
    base: Any = None
    values: dict[str, Any] = field(default_factory=dict)

    @property
    def swept(self) -> bool:
        return bool(self.values)


def label(value: Any) -> str:
    """How a value reads in a name: scalars as written in YAML, a list's items joined by '+',
    a mapping's as 'key:value'; a run of characters unsafe in a file name becomes one '_'."""
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif value is None:
        text = "null"
    elif isinstance(value, Mapping):
        text = "+".join(f"{k}:{label(v)}" for k, v in value.items())
    elif isinstance(value, list):
        text = "+".join(label(v) for v in value)
    else:
        text = str(value)
    return re.sub("_+", "_", UNSAFE.sub("_", text)).strip("_") or "_"


def expanded_name(base: str, values: Mapping[str, Any]) -> str:
    """``base[key=value,key=value]``."""
    return f"{base}[{','.join(f'{k}={label(v)}' for k, v in values.items())}]"


def expand(
    items: Any, field_name: str, keys_of: Callable[[Any], set[str] | None], at: Locate
) -> list[Member]:
    """Every entry of the list ``items`` (``targets`` or ``workloads``), matrices expanded.

    ``keys_of(kind)`` gives the keys entries of that kind accept (None: a kind the list does
    not know, which validation reports). Anything that is not a list of mappings is handed
    on as it is: the suite's own validation says what is wrong with it.
    """
    if not isinstance(items, list):
        return []
    out: list[Member] = []
    for index, item in enumerate(items):
        if isinstance(item, dict) and "matrix" in item:
            out += _sweep(item, (field_name, index), keys_of(item.get("kind")), at)
        else:
            out.append(Member(item, _get(item, "name"), Origin(index)))
    _unique(out, field_name, at)
    return out


def _get(item: Any, key: str) -> Any:
    return item.get(key) if isinstance(item, dict) else None


def _sweep(
    item: dict[str, Any], where: tuple[str, int], keys: set[str] | None, at: Locate
) -> list[Member]:
    """The combinations of one entry's matrix, less the excluded ones."""
    matrix = item["matrix"]
    here = (*where, "matrix")
    if not isinstance(matrix, dict) or not [k for k in matrix if k != EXCLUDE]:
        raise at(here, "a mapping of keys to the lists of values to sweep")
    swept = {k: v for k, v in matrix.items() if k != EXCLUDE}
    for key, values in swept.items():
        _check_key(item, key, values, (*here, key), keys, at)
    count = math.prod(len(v) for v in swept.values())
    if count > MAX_COMBINATIONS:
        raise at(here, f"the matrix makes {count} combinations; at most {MAX_COMBINATIONS}")
    combos = [dict(zip(swept, c, strict=True)) for c in itertools.product(*swept.values())]
    positions = [
        dict(zip(swept, p, strict=True))
        for p in itertools.product(*(range(len(v)) for v in swept.values()))
    ]
    kept = _exclude(combos, matrix.get(EXCLUDE, []), swept, (*here, EXCLUDE), at)
    chosen = _baseline(item, [combos[i] for i in kept], swept, (*where, "baseline"), at)
    written = {k: v for k, v in item.items() if k != "matrix"}
    base = item.get("name")
    return [
        Member(
            item={**written, **combos[i], **({"baseline": i == chosen} if chosen >= 0 else {})},
            name=expanded_name(base, combos[i]) if isinstance(base, str) else base,
            origin=Origin(where[1], positions[i]),
            base=base,
            values=combos[i],
        )
        for i in kept
    ]


def _check_key(
    item: dict[str, Any], key: Any, values: Any, here: tuple[Any, ...], keys: set[str] | None,
    at: Locate,
) -> None:  # fmt: skip
    """A swept key must be a key of the entry's kind, not set on the entry as well, and come
    with a non-empty list of values."""
    if key in RESERVED:
        raise at(here, f"{key!r} cannot be swept (a matrix sweeps how an entry runs)")
    if keys is not None and key not in keys:
        known = ", ".join(sorted(k for k in keys if k not in RESERVED))
        raise at(here, f"not a key of kind {item.get('kind')!r} (keys: {known})")
    if key in item:
        raise at(here, f"{key!r} is set on the entry too; set it in one place")
    if not isinstance(values, list):
        raise at(here, "a list of the values to sweep")
    if not values:
        raise at(here, "an empty list: give at least one value to sweep")


def _exclude(
    combos: list[dict[str, Any]], entries: Any, swept: dict[str, Any], here: tuple[Any, ...],
    at: Locate,
) -> list[int]:  # fmt: skip
    """Indices of the combinations no ``exclude`` entry matches. An entry that matches none
    is a mistake (a typo in a value), not a no-op."""
    if not isinstance(entries, list):
        raise at(here, "a list of {key: value} mappings, each leaving out what it matches")
    excluded: set[int] = set()
    for n, entry in enumerate(entries):
        if not isinstance(entry, dict) or not entry:
            raise at((*here, n), "a non-empty {key: value} mapping of swept keys")
        for key in entry:
            if key not in swept:
                raise at((*here, n, key), f"not a swept key (swept: {', '.join(swept)})")
        matched = {i for i, combo in enumerate(combos) if _matches(combo, entry)}
        if not matched:
            raise at((*here, n), "matches no combination of the matrix")
        excluded |= matched
    kept = [i for i in range(len(combos)) if i not in excluded]
    if not kept:
        raise at(here, "excludes every combination of the matrix")
    return kept


def _matches(combo: Mapping[str, Any], partial: Mapping[str, Any]) -> bool:
    return all(k in combo and _same(combo[k], v) for k, v in partial.items())


def _same(a: Any, b: Any) -> bool:
    """YAML equality that does not take ``true`` for ``1``."""
    return type(a) is type(b) and a == b if isinstance(a, bool) or isinstance(b, bool) else a == b


def _baseline(
    item: dict[str, Any], combos: list[dict[str, Any]], swept: dict[str, Any],
    here: tuple[Any, ...], at: Locate,
) -> int:  # fmt: skip
    """Which combination (an index into the full product) is the baseline, -1 for none.

    A matrix target is several targets; ``baseline: true`` would not say which one is the
    reference, so it is refused; ``baseline: {key: value}`` names exactly one combination.
    """
    if "baseline" not in item or item["baseline"] is False:
        return -1
    wanted = item["baseline"]
    example = ", ".join(f"{k}: {label(v[0])}" for k, v in swept.items())
    if not isinstance(wanted, dict) or not wanted:
        raise at(
            here,
            f"a matrix target is {len(combos)} targets: name the baseline's combination, "
            f"e.g. baseline: {{{example}}}",
        )
    for key in wanted:
        if key not in swept:
            raise at((*here, key), f"not a swept key (swept: {', '.join(swept)})")
    found = [c for c in combos if _matches(c, wanted)]
    if len(found) != 1:
        names = ", ".join(expanded_name(str(item.get("name")), c) for c in found[:4])
        why = "no combination" if not found else f"{len(found)} combinations ({names})"
        raise at(here, f"matches {why}; it must name exactly one")
    return _index_in_product(found[0], swept)


def _index_in_product(combo: Mapping[str, Any], swept: dict[str, Any]) -> int:
    """The index ``combo`` has in ``itertools.product`` of the swept values."""
    index = 0
    for key, values in swept.items():
        position = next(i for i, v in enumerate(values) if _same(v, combo[key]))
        index = index * len(values) + position
    return index


def _unique(members: list[Member], field_name: str, at: Locate) -> None:
    """Expanded names are unique and short enough to be file names; a clash is located at
    the value that made the second name."""
    written: dict[Any, int] = {}
    for member in members:
        name = member.base if member.swept else member.name
        if isinstance(name, str) and written.setdefault(name, member.origin.index) not in (
            member.origin.index,
        ):
            raise at((field_name, member.origin.index, "name"), f"duplicate name {name!r}")
    seen: dict[str, Member] = {}
    for member in members:
        if not member.swept or not isinstance(member.name, str):
            if isinstance(member.name, str):
                seen.setdefault(member.name, member)
            continue
        where = member.origin.locate(field_name, [next(reversed(member.values))])
        first = seen.get(member.name)
        if first is not None and first.origin.index == member.origin.index:
            differs = [k for k, p in member.origin.positions.items()
                       if first.origin.positions.get(k) != p]  # fmt: skip
            where = member.origin.locate(field_name, differs[:1])
        if len(member.name) > MAX_NAME:
            raise at(
                where,
                f"the name {member.name!r} is {len(member.name)} characters long; at most "
                f"{MAX_NAME}: sweep shorter values",
            )
        seen[member.name] = member
        if first is not None:
            raise at(where, f"duplicate name {member.name!r} (values that read the same)")
