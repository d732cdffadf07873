"""The suite's ``build:`` section: where matched artefacts come from."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

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
        default=None, description="pinned requirements file (default: bench's own pins)"
    )

    def requirements_text(self) -> str:
        """The pinned requirements every built target installs."""
        return (self.requirements or REQUIREMENTS).read_text()
