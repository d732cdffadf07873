"""Optional package groups: which suites get Pillow and transformers on their built targets,
and that a suite needing neither builds exactly what it built before groups existed."""

from __future__ import annotations

import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from bench.build import groups, wheelhouse
from bench.build.builder import Builder
from bench.build.config import REQUIREMENTS, BuildConfig
from bench.suite import load_suite, parse_suite

REPO = Path(__file__).resolve().parent.parent
# The wheelhouse key of the quickstart's base pins (MLPerf LoadGen among them), for this
# interpreter tag. A change here renames the quickstart's venv, image and guest disk: update it
# only together with bench/build/requirements.txt.
QUICKSTART_KEY = {"cp311-x86_64": "32b18562bbc57fb3"}

SUITE = """\
name: groups
targets: [{{name: bare, kind: local, build: true}}]
workloads:
{workloads}
"""
JPEG_LOADER = (
    "  - {name: load, kind: data_loading, batch_size: 4, location: volume,"
    " dataset: {format: jpeg, samples: 16}}"
)


def suite_with(*workloads: str):
    return parse_suite(SUITE.format(workloads="\n".join(workloads)))


def pins(path: Path) -> dict[str, Version]:
    """{canonical name: pinned version} of a requirements file (every line ``name==version``)."""
    found = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            requirement = Requirement(line)
            (specifier,) = requirement.specifier
            assert specifier.operator == "==", line
            found[canonicalize_name(requirement.name)] = Version(specifier.version)
    return found


def test_quickstart_builds_what_it_built_before() -> None:
    suite = load_suite(REPO / "suites" / "quickstart.yaml")
    builder = Builder(suite.build, groups=groups.needed(suite.workloads))
    assert builder.groups == frozenset()
    assert builder.requirements() == REQUIREMENTS.read_text()  # byte for byte: the old text
    key = wheelhouse.key_of(builder.requirements())
    assert key == QUICKSTART_KEY.get(wheelhouse.python_tag(), key)
    assert builder.record() == {}  # nothing built yet, nothing claimed


def test_image_dataset_and_language_models_add_their_groups() -> None:
    base = REQUIREMENTS.read_text()
    jpeg = Builder(BuildConfig(), groups=groups.needed(suite_with(JPEG_LOADER).workloads))
    assert jpeg.groups == {"pillow"}
    assert jpeg.requirements().startswith(base) and "\npillow==13.0.0\n" in jpeg.requirements()
    assert "transformers" not in jpeg.requirements()
    assert wheelhouse.key_of(jpeg.requirements()) != wheelhouse.key_of(base)

    loader = "{name: l, kind: data_loading, batch_size: 4, location: image, dataset: "
    cases = {
        loader + "{format: tar, samples: 16}}": {"pillow"},
        loader + "{format: raw, samples: 16}}": set(),
        "{name: b, kind: inference, model: bert, preset: tiny}": {"transformers"},
        "{name: g, kind: generate, model: llama, preset: tiny}": {"transformers"},
        "{name: m, kind: train_step, model: mlp}": set(),
    }
    for workload, expected in cases.items():
        assert groups.needed(suite_with(f"  - {workload}").workloads) == expected, workload
    mixed = groups.needed(
        suite_with(JPEG_LOADER, "  - {name: g, kind: generate, model: llama}").workloads
    )
    assert mixed == {"pillow", "transformers"}
    text = BuildConfig().requirements_text(mixed)
    assert text.index("pillow==") < text.index("transformers==")  # one order, one key


def test_groups_are_appended_to_a_suites_own_pins(tmp_path: Path) -> None:
    own = tmp_path / "pins.txt"
    own.write_text("torch==2.13.0")  # no final newline: the group still starts on its own line
    config = BuildConfig(requirements=own)
    assert config.requirements_text() == "torch==2.13.0"
    expected = "torch==2.13.0\n" + groups.pins_file("pillow").read_text()
    assert config.requirements_text({"pillow"}) == expected
    with pytest.raises(ValueError, match="unknown package group 'scipy'"):
        config.requirements_text({"scipy"})


def test_group_pins_are_the_whole_closure_and_change_no_base_pin() -> None:
    """Every distribution pillow and transformers pull in (read from the installed metadata)
    is pinned once, in the base or the group, at a version their requirements accept."""
    base = pins(REQUIREMENTS)
    environment = {**default_environment(), "extra": ""}
    for group, top in (("pillow", "pillow"), ("transformers", "transformers")):
        own = pins(groups.pins_file(group))
        assert not own.keys() & base.keys(), f"{group} re-pins a base package"
        pinned = {**base, **own}
        reached, todo = set(), [top]
        while todo:
            name = canonicalize_name(todo.pop())
            if name in reached:
                continue
            reached.add(name)
            for line in metadata.requires(name) or []:
                requirement = Requirement(line)
                if requirement.marker and not requirement.marker.evaluate(environment):
                    continue
                dependency = canonicalize_name(requirement.name)
                assert dependency in pinned, f"{group}: {dependency} (for {name}) is not pinned"
                assert requirement.specifier.contains(pinned[dependency], prereleases=True), line
                todo.append(dependency)
        assert set(own) == reached - base.keys(), f"{group} pins what it does not need"


def test_the_controllers_workloads_extra_pins_the_groups_tops() -> None:
    tomllib = pytest.importorskip("tomllib")
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    extra = [Requirement(r) for r in project["project"]["optional-dependencies"]["workloads"]]
    declared = {canonicalize_name(r.name): str(r.specifier) for r in extra}
    for group in groups.GROUPS:
        top = pins(groups.pins_file(group))[group]
        assert declared[group] == f"=={top}", group
    package_data = project["tool"]["setuptools"]["package-data"]["bench"]
    for group in groups.GROUPS:  # shipped in the package, not only in a checkout
        assert any(groups.pins_file(group).match(f"bench/{p}") for p in package_data), group


@pytest.mark.slow
def test_a_venv_built_with_a_group_and_a_workloads_requirements_imports_them(
    tmp_path: Path, monkeypatch
) -> None:
    """The real path: suite pins + the pillow group + a python workload's own requirement ->
    a wheelhouse -> a venv that imports all three (a one-package pins file stands in for torch,
    to keep the download and install short); the image and the guest disk install that same
    wheelhouse."""
    monkeypatch.setenv("BENCH_CACHE_DIR", str(tmp_path / "cache"))
    own = tmp_path / "pins.txt"
    own.write_text("nvidia-ml-py==13.615.71\n")
    builder = Builder(BuildConfig(requirements=own), groups={"pillow"}, extra=("six==1.17.0",))
    python = builder.venv(sys.executable)
    done = subprocess.run(
        [str(python), "-c", "import PIL, pynvml, six; print(PIL.__version__, six.__version__)"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0 and done.stdout.split() == ["13.0.0", "1.17.0"], done.stderr
    record = builder.record()
    assert record["groups"] == ["pillow"] and record["requirements"] == ["six==1.17.0"]
    assert sorted(n.split("-")[0] for n in record["wheelhouse"]["files"]) == [
        "nvidia_ml_py",
        "pillow",
        "six",
    ]
    assert record["wheelhouse"]["key"] == wheelhouse.key_of(builder.requirements())
