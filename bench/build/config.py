"""The suite's ``build:`` section: where matched artefacts come from."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from bench.build import groups as package_groups

REQUIREMENTS = Path(__file__).with_name("requirements.txt")


class BuildConfig(BaseModel):
    """How ``bench build`` makes the wheelhouse, the base system and the images."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    base_image: str | None = Field(
        default=None,
        description="registry image to build on (e.g. python:3.11-slim); when it cannot be "
        "pulled, an offline Debian base made with debootstrap is used instead",
    )
    release: str = Field(default="bookworm", min_length=1, description="Debian release")
    mirror: str | None = Field(
        default=None, description="Debian mirror (default: the host's apt source)"
    )
    requirements: Path | None = Field(
        default=None,
        description="pinned requirements file (default: bench's own pins); the package groups "
        "the suite's workloads need (Pillow, transformers) and the requirements of its "
        "kind: python workloads are added to it",
    )

    def requirements_text(self, groups: Collection[str] = (), extra: Sequence[str] = ()) -> str:
        """The pinned requirements every built target installs: the base pins (bench's or the
        suite's file) followed by those of ``groups`` and then the ``extra`` lines of the
        suite's own; the base text alone when there are none."""
        base = (self.requirements or REQUIREMENTS).read_text()
        return package_groups.with_groups(base, groups, extra)
