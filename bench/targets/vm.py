"""``kind: vm``: a virtual machine, either a fresh QEMU guest per repetition (``provisioner:
qemu``, the default) or a VM that exists already, reached over SSH (``provisioner: static``).

The suite keys of both provisioners and the kind's declaration. The implementations are
``bench.targets.vmqemu`` and ``bench.targets.vmstatic``, imported when a target is made; QEMU
guests and the static VMs a run booted are found by ``bench gc`` through
``bench.targets.vmgc``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import Discriminator, Field, Tag, field_validator, model_validator

from bench.limits import MAX_CPUS, MAX_HOST_CPU, Seconds
from bench.targets import argv
from bench.targets.base import TargetConfig
from bench.targets.envvars import EnvMap
from bench.targets.kind import Kind
from bench.targets.sizes import Size
from bench.targets.ssh import SshTargetConfig

MiB = 1 << 20
DiskCache = Literal["writeback", "none", "writethrough", "directsync", "unsafe"]


class QemuVmConfig(TargetConfig):
    """Suite keys of a VM the harness starts with QEMU."""

    kind: Literal["vm"]
    provisioner: Literal["qemu"] = "qemu"
    vcpus: Annotated[int, Field(ge=1, le=MAX_CPUS)] = 2
    memory: Size = 2048 * MiB
    accel: Literal["auto", "kvm", "tcg"] = "auto"
    tcg_repetitions: Annotated[int, Field(ge=1)] | None = Field(
        default=None,
        description="repetitions when the guest runs under software emulation (TCG, where a "
        "cell takes minutes); under KVM it runs as many as the other targets",
    )
    cpu: str | None = Field(
        default=None, min_length=1, description="CPU model (default: host under KVM, max under TCG)"
    )
    pin_vcpus: list[Annotated[int, Field(ge=0, le=MAX_HOST_CPU)]] | None = Field(
        default=None, description="host CPU for each vCPU thread, in vCPU order"
    )
    disk_cache: DiskCache = "writeback"
    qemu: str = Field(default="qemu-system-x86_64", min_length=1)
    extra_args: list[str] = []
    boot_timeout_s: Seconds = 300.0
    env: EnvMap = {}

    def builds(self) -> bool:
        """A QEMU guest always boots the matched guest disk."""
        return True

    @model_validator(mode="after")
    def _consistent(self) -> QemuVmConfig:
        """Memory a Debian guest can boot in; one pinned CPU per vCPU."""
        if self.memory < 256 * MiB:
            raise ValueError("memory: a guest needs at least 256m")
        if self.pin_vcpus is not None and len(self.pin_vcpus) != self.vcpus:
            raise ValueError(
                f"pin_vcpus lists {len(self.pin_vcpus)} CPUs for {self.vcpus} vCPUs (one each)"
            )
        return self


class StaticVmConfig(SshTargetConfig):
    """Suite keys of an existing VM: those of ``kind: ssh`` plus optional start/stop."""

    kind: Literal["vm"]  # type: ignore[assignment]
    provisioner: Literal["static"]
    start: list[str] | None = Field(default=None, description="command that boots the VM")
    stop: list[str] | None = Field(default=None, description="command that shuts it down")
    boot_timeout_s: Seconds = 300.0
    command_timeout_s: Seconds = 600.0

    @field_validator("start", "stop", mode="before")
    @classmethod
    def _words(cls, value: Any) -> Any:
        """A command as a string (split like a shell would, never run by one) or a list;
        shell operators are refused with the fix."""
        return argv.words(value)

    @field_validator("start", "stop")
    @classmethod
    def _runnable(cls, value: list[str] | None) -> list[str] | None:
        """A program given by path is an executable file (checked now, not at the first boot)."""
        return None if value is None else argv.check_program(value)

    @model_validator(mode="after")
    def _paired(self) -> StaticVmConfig:
        """A VM booted per repetition must also be shut down (and the reverse): one without
        the other would leave it running or try to boot it while it runs."""
        if (self.start is None) != (self.stop is None):
            raise ValueError("start and stop go together: give both commands or neither")
        return self


def _provisioner(value: Any) -> str:
    """``provisioner:`` of a VM target; QEMU when the suite leaves it out."""
    if isinstance(value, dict):
        return str(value.get("provisioner", "qemu"))
    return str(getattr(value, "provisioner", "qemu"))


VmConfig = Annotated[
    Annotated[QemuVmConfig, Tag("qemu")] | Annotated[StaticVmConfig, Tag("static")],
    Discriminator(_provisioner),
]


class VmKind(Kind):
    """A VM's artefacts: the provisioner, and for a QEMU guest its disk, QEMU and accelerator."""

    def runtime(self, artefacts: Mapping[str, Any]) -> str:
        return f"vm ({artefacts.get('provisioner', 'qemu')})"

    def repetitions(self, config: Any, artefacts: Mapping[str, Any]) -> int | None:
        """``tcg_repetitions`` for a guest that will run under TCG."""
        if artefacts.get("accel") == "tcg":
            return getattr(config, "tcg_repetitions", None)
        return None

    def accel_row(self, artefacts: Mapping[str, Any]) -> str:
        """A guest's accelerator when it was recorded; a static VM's is not known."""
        return self.accel_label(artefacts) or ""

    def built(self, artefacts: Mapping[str, Any]) -> str:
        guest = artefacts.get("guest")
        if isinstance(guest, dict):
            accel = artefacts.get("accel_label")
            return f"guest disk {guest.get('path')} (kernel {guest.get('kernel')}, {accel})"
        return super().built(artefacts)

    def identity(self, artefacts: Mapping[str, Any]) -> dict[str, Any]:
        guest = artefacts.get("guest")
        built = {
            "guest": guest.get("key") if isinstance(guest, dict) else guest,
            "qemu": artefacts.get("qemu"),
        }
        return {k: v for k, v in built.items() if v}


KIND = VmKind(
    "vm",
    "a virtual machine: a fresh QEMU guest per repetition (provisioner: qemu), or an "
    "existing VM over SSH with optional start/stop commands (provisioner: static)",
    {
        QemuVmConfig: "bench.targets.vmqemu:QemuVmTarget",
        StaticVmConfig: "bench.targets.vmstatic:StaticVmTarget",
    },
    config=VmConfig,
    collector="bench.targets.vmgc:Machines",
)
