"""``kind: ssh``: a remote host (bare metal, or a VM that already exists) reached over SSH.

The suite keys and the kind's declaration; the implementation (paramiko) is
``bench.targets.sshtarget``, imported when a target is made. A run's remote directories are
recorded for ``bench gc`` (``bench.targets.sshgc``).
"""

from __future__ import annotations

import getpass
from typing import Annotated, Literal

from pydantic import Field, SecretStr

from bench.limits import MAX_RETRIES, Seconds
from bench.targets.base import TargetConfig
from bench.targets.envvars import EnvMap
from bench.targets.kind import Kind


class SshTargetConfig(TargetConfig):
    """Suite keys of an SSH target."""

    kind: Literal["ssh"]
    host: str = Field(min_length=1)
    port: int = Field(default=22, ge=1, le=65535)
    user: str = Field(default_factory=getpass.getuser, min_length=1)
    key: str | None = None
    password: SecretStr | None = None
    known_hosts: str = "~/.ssh/known_hosts"
    host_key: Literal["strict", "accept-new"] = "strict"
    python: str = "python3"
    workdir: str = "/tmp"
    env: EnvMap = {}
    connect_timeout_s: Seconds = 10.0
    connect_retries: Annotated[int, Field(ge=0, le=MAX_RETRIES)] = 2


KIND = Kind(
    "ssh",
    "a remote host over SSH (paramiko): the worker is uploaded per run and removed after",
    {SshTargetConfig: "bench.targets.sshtarget:SshTarget"},
    collector="bench.targets.sshgc:RemoteDirs",
)
