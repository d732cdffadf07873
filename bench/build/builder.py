"""Builds each matched artefact at most once per run, whichever targets ask for it.

Targets with ``build: true`` ask the builder during preparation; the builder remembers what it
made (and every wheel's hash) so the run manifest can say exactly which bytes each target ran.
The image and guest builders (docker-py, cryptography) are imported when first asked for: a
run of local targets, or a suite being validated, never loads them.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Collection, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.build import venv, wheelhouse
from bench.build.config import BuildConfig
from bench.build.wheelhouse import Wheelhouse

if TYPE_CHECKING:
    import docker

    from bench.build.guest import GuestImage
    from bench.build.image import BuiltImage


def _ignore(message: str) -> None:
    """Default progress sink."""


class Builder:
    """Matched artefacts for one suite's ``build:`` settings, the package groups its
    workloads need (``bench.build.groups.needed``) and the pinned requirements its
    ``kind: python`` workloads add (``extra``: ``bench.build.groups.requirements``)."""

    def __init__(
        self,
        config: BuildConfig,
        note: Callable[[str], None] = _ignore,
        groups: Collection[str] = (),
        extra: Sequence[str] = (),
    ) -> None:
        self.config = config
        self.note = note
        self.groups = frozenset(groups)
        self.extra = tuple(extra)
        self._wheelhouse: Wheelhouse | None = None
        self._venvs: dict[str, Path] = {}
        self._images: dict[str, BuiltImage] = {}
        self._guest: GuestImage | None = None
        self._lock = threading.RLock()

    def requirements(self) -> str:
        """The requirement text every built target installs (what the wheelhouse is keyed on,
        and through it the venv, the image and the guest disk)."""
        return self.config.requirements_text(self.groups, self.extra)

    def wheelhouse(self) -> Wheelhouse:
        """The wheelhouse of the pinned requirements."""
        with self._lock:
            if self._wheelhouse is None:
                self._wheelhouse = wheelhouse.ensure(self.requirements(), self.note)
            return self._wheelhouse

    def venv(self, python: str) -> Path:
        """The interpreter of a venv made from ``python`` with the wheelhouse installed."""
        with self._lock:
            if python not in self._venvs:
                self._venvs[python] = venv.ensure(self.wheelhouse(), python, self.note)
            return self._venvs[python]

    def image(self, engine_url: str, client: docker.DockerClient) -> BuiltImage:
        """The matched image on the engine at ``engine_url``."""
        from bench.build import image

        with self._lock:
            if engine_url not in self._images:
                built = image.ensure(client, self.config, self.wheelhouse(), self.note)
                self._images[engine_url] = built
            return self._images[engine_url]

    def guest(self) -> GuestImage:
        """The matched VM guest disk, kernel and keys."""
        from bench.build import guest

        with self._lock:
            if self._guest is None:
                self._guest = guest.ensure(self.config, self.wheelhouse(), self.note)
            return self._guest

    def record(self) -> dict[str, Any]:
        """The manifest's ``build`` entry: the wheelhouse used, when one was, the package
        groups installed with the base pins and the suite's own requirements, if any."""
        with self._lock:
            if self._wheelhouse is None:
                return {}
            record = {"wheelhouse": self._wheelhouse.record(), "groups": sorted(self.groups)}
            if self.extra:
                record["requirements"] = list(self.extra)
            return record
