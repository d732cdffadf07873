"""Builds each matched artefact at most once per run, whichever targets ask for it.

Targets with ``build: true`` ask the builder during preparation; the builder remembers what it
made (and every wheel's hash) so the run manifest can say exactly which bytes each target ran.
The image and guest builders (docker-py, cryptography) are imported when first asked for: a
run of local targets, or a suite being validated, never loads them.

Targets are prepared concurrently, so each artefact has its own lock: the wheelhouse downloads
while ``debootstrap`` makes the offline base, then the image and the guest disk are built from
that one base side by side. How long each artefact took to make (or find) is recorded.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.build import base, venv, wheelhouse
from bench.build.config import BuildConfig
from bench.build.wheelhouse import Wheelhouse

if TYPE_CHECKING:
    import docker

    from bench.build.guest import GuestImage
    from bench.build.image import BuiltImage


ARTEFACTS = ("wheelhouse", "base", "venv", "image", "guest")


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
        self._rootfs: base.RootFs | None = None
        self._seconds: dict[str, float] = {}
        self._locks = {name: threading.Lock() for name in ARTEFACTS}

    def requirements(self) -> str:
        """The requirement text every built target installs (what the wheelhouse is keyed on,
        and through it the venv, the image and the guest disk)."""
        return self.config.requirements_text(self.groups, self.extra)

    def wheelhouse(self) -> Wheelhouse:
        """The wheelhouse of the pinned requirements."""
        with self._made("wheelhouse"):
            if self._wheelhouse is None:
                self._wheelhouse = wheelhouse.ensure(self.requirements(), self.note)
            return self._wheelhouse

    def rootfs(self) -> base.RootFs:
        """The offline Debian base both the container image and the VM guest start from."""
        with self._made("base"):
            if self._rootfs is None:
                self._rootfs = base.rootfs(self.config, self.note)
            return self._rootfs

    def venv(self, python: str) -> Path:
        """The interpreter of a venv made from ``python`` with the wheelhouse installed."""
        wheels = self.wheelhouse()
        with self._made("venv"):
            if python not in self._venvs:
                self._venvs[python] = venv.ensure(wheels, python, self.note)
            return self._venvs[python]

    def image(self, engine_url: str, client: docker.DockerClient) -> BuiltImage:
        """The matched image on the engine at ``engine_url``. The base comes first: on a
        fresh machine it is made while another target's preparation fetches the wheels."""
        from bench.build import image

        with self._locks["image"]:
            if engine_url in self._images:
                return self._images[engine_url]
        base_ref = image.base_image(client, self.config, self.note, self.rootfs)
        wheels = self.wheelhouse()
        with self._made("image"):
            if engine_url not in self._images:
                built = image.ensure(client, self.config, wheels, self.note, base_ref)
                self._images[engine_url] = built
            return self._images[engine_url]

    def guest(self) -> GuestImage:
        """The matched VM guest disk, kernel and keys."""
        from bench.build import guest

        wheels = self.wheelhouse()
        if self._guest is None and not guest.built(self.config, wheels):
            self.rootfs()  # waited for here, so the guest's seconds are its own build
        with self._made("guest"):
            if self._guest is None:
                self._guest = guest.ensure(self.config, wheels, self.note, self.rootfs)
            return self._guest

    @contextmanager
    def _made(self, artefact: str) -> Iterator[None]:
        """Hold ``artefact``'s lock; the time spent the first time counts as making it (the
        waits for other artefacts happen before, outside the lock)."""
        with self._locks[artefact]:
            first = artefact not in self._seconds
            started = time.monotonic()
            try:
                yield
            finally:
                if first:
                    self._seconds[artefact] = round(time.monotonic() - started, 3)

    def record(self) -> dict[str, Any]:
        """The manifest's ``build`` entry: the wheelhouse used, when one was, the package
        groups installed with the base pins, the suite's own requirements, if any, and the
        seconds each artefact took to make or find in the cache (``seconds``)."""
        if self._wheelhouse is None:
            return {}
        record = {"wheelhouse": self._wheelhouse.record(), "groups": sorted(self.groups)}
        if self.extra:
            record["requirements"] = list(self.extra)
        record["seconds"] = dict(self._seconds)
        return record
