"""``kind: python`` in a suite file: each mistake is one located line (exit status 2 from
``bench validate``) before anything is deployed, the entry is imported in a subprocess and never
in bench, and ``requirements`` reach the wheelhouse every built target installs from."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from bench.build import groups, wheelhouse
from bench.build.builder import Builder
from bench.build.config import REQUIREMENTS, BuildConfig
from bench.errors import SuiteError
from bench.suite import load_suite
from tests.conftest import REPO, bench_cli

ENTRY = """
import json

def run(ctx, steps=3, size=8):
    pass
"""

SUITE = """\
name: py
targets: [{{name: bare, kind: local}}]
workloads:
  - name: mine
    kind: python
    path: {path}
    entry: {entry}
{extra}"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A suite directory with a code directory ``code/`` holding ``tool/main.py``."""
    package = tmp_path / "code" / "tool"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "main.py").write_text(ENTRY)
    (package / "broken.py").write_text("def run(ctx:\n    pass\n")
    (package / "raises.py").write_text("import json\n\nLIMIT = json.loads('{')\n")
    (package / "elsewhere.py").write_text("import not_installed_anywhere\n\ndef run(ctx): ...\n")
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "secret.py").write_text("def run(ctx): ...\n")
    (tmp_path / "code" / "linked").symlink_to(tmp_path / "outside")
    return tmp_path


def suite(project: Path, path: str = "./code", entry: str = "tool.main:run", extra: str = ""):
    text = SUITE.format(path=path, entry=entry, extra=textwrap.indent(extra, "    "))
    (project / "suite.yaml").write_text(text)
    return project / "suite.yaml"


def test_a_valid_workload_gets_its_absolute_path(project: Path) -> None:
    loaded = load_suite(suite(project, extra="params: {steps: 5}\n"))
    assert loaded.workloads[0].path == str(project / "code")
    assert loaded.workloads[0].params == {"steps": 5}
    assert not list(project.rglob("__pycache__"))  # the check writes nothing there


MISTAKES = [
    ({"path": "./nope"}, "6: workloads[0].path: directory not found: {project}/nope"),
    ({"path": "./suite.yaml"}, "6: workloads[0].path: not a directory"),
    ({"entry": "tool/main:run"}, "4: workloads[0]: entry 'tool/main:run' must be module:func"),
    ({"entry": "tool.mian:run"}, "7: workloads[0].entry: module 'tool.mian' is not in"),
    ({"entry": "linked.secret:run"}, "linked/secret.py is not shipped: names beginning"),
    ({"entry": "tool.main:walk"}, "7: workloads[0].entry: entry tool.main:walk: module tool.main"),
    ({"entry": "tool.broken:run"}, "7: workloads[0].entry: importing tool.broken failed: tool/"),
    ({"entry": "tool.raises:run"}, "entry: importing tool.raises failed: tool/raises.py:3: JSON"),
    ({"extra": "params: {stpes: 5}\n"}, "8: workloads[0].params: run(ctx, **params): got an"),
    ({"extra": "requirements: [six]\n"}, "requirements[0] 'six' must be pinned as name==version"),
    ({"extra": "requirements: [numpy==1.0]\n"}, "numpy==1.0 conflicts with numpy=="),
    ({"entry": "workloads.x:run"}, "entry: a module named workloads would be bench's worker"),
]


@pytest.mark.parametrize(("change", "expected"), MISTAKES, ids=[m[1][:40] for m in MISTAKES])
def test_a_mistake_is_one_located_line(project: Path, change: dict, expected: str) -> None:
    with pytest.raises(SuiteError) as caught:
        load_suite(suite(project, **change))
    message = caught.value.one_line()
    assert "\n" not in message and message.startswith(f"{project}/suite.yaml:")
    assert expected.format(project=project) in message


def test_a_module_missing_here_is_a_warning_and_the_function_is_read(project: Path) -> None:
    with pytest.warns(UserWarning, match="not_installed_anywhere' is not installed in"):
        load_suite(suite(project, entry="tool.elsewhere:run"))
    with pytest.warns(UserWarning), pytest.raises(SuiteError, match="defines no 'walk'"):
        load_suite(suite(project, entry="tool.elsewhere:walk"))


@pytest.mark.slow
def test_bench_validate_exits_2_with_one_line(project: Path) -> None:
    done = bench_cli("validate", str(suite(project, entry="tool.main:walk")))
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and "module tool.main has no 'walk'" in done.stderr
    example = bench_cli("validate", str(REPO / "examples" / "python" / "suite.yaml"))
    assert example.returncode == 0, example.stderr
    assert "3 targets × 1 workloads" in example.stdout


def test_requirements_join_the_wheelhouse_text_once(project: Path) -> None:
    extra = "requirements: [six==1.17.0, 'Jinja2==3.1.6']\n"
    with pytest.warns(UserWarning, match="target 'bare' runs its interpreter or image as it is"):
        loaded = load_suite(suite(project, extra=extra))
    pins = groups.requirements(loaded.workloads)
    assert pins == ("six==1.17.0", "Jinja2==3.1.6")
    builder = Builder(BuildConfig(), groups=groups.needed(loaded.workloads), extra=pins)
    text = builder.requirements()
    assert text.startswith(REQUIREMENTS.read_text()) and text.endswith("six==1.17.0\n")
    assert text.count("Jinja2==3.1.6") == 1  # already a base pin: not repeated
    assert wheelhouse.key_of(text) != wheelhouse.key_of(REQUIREMENTS.read_text())
    assert Builder(BuildConfig(), extra=()).requirements() == REQUIREMENTS.read_text()
