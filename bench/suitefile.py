"""Reading a suite file without trusting it: size, encoding, and YAML with bounds.

A suite file is input like any other. Bytes that are not UTF-8, a file of a gigabyte, YAML
nested ten thousand levels deep (PyYAML's composer recurses) or an alias bomb ("billion
laughs": nine anchors of nine aliases each expand to 9**9 nodes once anything walks the data)
must each be one ``SuiteError`` line, found in time and memory proportional to the file's size,
before anything expands the document. Duplicate keys are refused too: YAML lets the last one
win silently, so a second ``targets:`` would replace the first without a word.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from yaml.composer import Composer
from yaml.constructor import SafeConstructor
from yaml.resolver import Resolver

from bench.errors import SuiteError

try:  # libyaml's scanner and parser: four times faster on a big file than PyYAML's own
    from yaml.cyaml import CParser
except ImportError:  # PyYAML built without libyaml
    CParser = None

MAX_BYTES = 1 << 20
MAX_DEPTH = 50
MAX_NODES = 100_000
MERGE_TAG = "tag:yaml.org,2002:merge"


def read_text(path: Path) -> str:
    """The file's text: at most ``MAX_BYTES``, UTF-8."""
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_BYTES + 1)
    except FileNotFoundError:
        raise SuiteError(f"{path}: suite file not found") from None
    except OSError as exc:
        raise SuiteError(f"{path}: cannot read suite file: {exc.strerror or exc}") from None
    if len(data) > MAX_BYTES:
        raise SuiteError(f"{path}: suite file larger than {MAX_BYTES >> 20} MiB")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise SuiteError(f"{path}:{line}: not UTF-8 text (byte {exc.start})") from None


class _Limit(Exception):
    """A bound the document breaks, at a YAML mark."""

    def __init__(self, message: str, mark: yaml.Mark | None) -> None:
        super().__init__(message)
        self.message = message
        self.mark = mark


class _Duplicate(Exception):
    """A mapping that repeats a key; carries both key nodes."""

    def __init__(self, mapping: yaml.MappingNode, key: Any, first: yaml.Node, again: yaml.Node):
        super().__init__(key)
        self.mapping, self.key, self.first, self.again = mapping, key, first, again


if CParser is not None:

    class _Loader(Composer, CParser, SafeConstructor, Resolver):  # type: ignore[misc]
        """libyaml's events, composed into nodes in Python (which is where the bounds go:
        libyaml's own composer recurses in C)."""

        def __init__(self, stream: str) -> None:
            CParser.__init__(self, stream)
            Composer.__init__(self)
            SafeConstructor.__init__(self)
            Resolver.__init__(self)

else:
    _Loader = yaml.SafeLoader  # type: ignore[misc,assignment]


class BoundedLoader(_Loader):
    """A safe loader that refuses deep nesting and too many values while composing and
    duplicate keys while constructing (merge keys, ``<<: *base``, may still be overridden:
    that is their purpose)."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0
        self._nodes = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:  # type: ignore[override]
        self._nodes += 1  # an alias counts: a long list of them costs time to compose
        if self._nodes > MAX_NODES:
            raise _Limit(f"more than {MAX_NODES} values", self.peek_event().start_mark)
        if self.check_event(yaml.AliasEvent):  # no nesting: it names a node composed earlier
            return super().compose_node(parent, index)
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise _Limit(f"nested deeper than {MAX_DEPTH} levels", self.peek_event().start_mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:  # type: ignore[override]
        seen: dict[Any, yaml.Node] = {}
        for key_node, _ in node.value:
            if key_node.tag == MERGE_TAG:
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                first = seen.setdefault(key, key_node)
            except TypeError:
                continue  # unhashable: SafeConstructor reports it with its line
            if first is not key_node:
                raise _Duplicate(node, key, first, key_node)
        return super().construct_mapping(node, deep=deep)


def load_yaml(text: str, source: str) -> tuple[Any, yaml.Node | None]:
    """The document's data and its node tree (for locating errors); one ``SuiteError`` for
    bad YAML or a document beyond the bounds."""
    loader: BoundedLoader | None = None
    paths: dict[int, tuple[Any, ...]] = {}
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        line = text[: exc.start].count("\n") + 1
        raise SuiteError(f"{source}:{line}: not UTF-8 text (character {exc.start})") from None
    try:
        loader = BoundedLoader(text)
        root = loader.get_single_node()
        paths = _walk(root) if root is not None else {}
        data = loader.construct_document(root) if root is not None else None
    except _Limit as exc:
        raise SuiteError(f"{_where(source, exc.mark)}: {exc.message}") from None
    except _Duplicate as exc:
        path = format_path((*paths.get(id(exc.mapping), ()), exc.key))
        line = exc.first.start_mark.line + 1
        raise SuiteError(
            f"{_where(source, exc.again.start_mark)}: {path}: duplicate key (first on line {line})"
        ) from None
    except yaml.reader.ReaderError as exc:  # its position counts characters or bytes
        line = text[: max(0, text.find(chr(exc.character)))].count("\n") + 1
        raise SuiteError(
            f"{source}:{line}: invalid YAML: unacceptable character #x{exc.character:04x}"
        ) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        raise SuiteError(f"{_where(source, mark)}: invalid YAML: {problem}") from None
    finally:
        if loader is not None:
            loader.dispose()
    return data, root


def _walk(root: yaml.Node) -> dict[int, tuple[Any, ...]]:
    """Check the document as it would be once aliases are expanded: no cycle, at most
    ``MAX_DEPTH`` levels and ``MAX_NODES`` nodes. Sizes are memoised per node, so an alias
    bomb costs one visit per node written, not per node it expands to. Returns the key path
    of each node (its first occurrence), for messages."""
    sizes: dict[int, tuple[int, int]] = {}  # id -> (nodes, depth) once expanded
    active: set[int] = set()
    paths: dict[int, tuple[Any, ...]] = {}

    def visit(node: yaml.Node, path: tuple[Any, ...]) -> tuple[int, int]:
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in active:
            raise _Limit("an alias refers to a node that contains it", node.start_mark)
        active.add(key)
        paths.setdefault(key, path)
        nodes, depth = 1, 0
        for part, child in _children(node):
            size, deep = visit(child, (*path, part))
            nodes, depth = nodes + size, max(depth, deep)
        active.discard(key)
        sizes[key] = (nodes, depth + 1)
        if nodes > MAX_NODES:
            raise _Limit(f"more than {MAX_NODES} values once aliases are expanded", node.start_mark)
        if depth + 1 > MAX_DEPTH:
            raise _Limit(f"nested deeper than {MAX_DEPTH} levels once aliases are expanded",
                         node.start_mark)  # fmt: skip
        return sizes[key]

    visit(root, ())
    return paths


def _children(node: yaml.Node) -> list[tuple[Any, yaml.Node]]:
    """(path part, child) pairs: sequence items by index, mapping keys and values by key."""
    if isinstance(node, yaml.SequenceNode):
        return list(enumerate(node.value))
    if isinstance(node, yaml.MappingNode):
        out: list[tuple[Any, yaml.Node]] = []
        for key, value in node.value:
            part = key.value if isinstance(key, yaml.ScalarNode) else "?"
            out += [(part, key), (part, value)]
        return out
    return []


def _where(source: str, mark: yaml.Mark | None) -> str:
    return f"{source}:{mark.line + 1}" if mark is not None else source


def format_path(loc: tuple[Any, ...]) -> str:
    """('targets', 1, 'host') -> 'targets[1].host'."""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(top level)"
