"""The environment a suite gives its workers, secrets among it, and what a worker inherits.

A target's ``env:`` maps variable names to either a plain string, recorded as written (users
want to see ``OMP_NUM_THREADS`` in the manifest), or ``{from_env: NAME}``: a secret read from
the controller's own environment when the run starts, handed to the worker and never written
anywhere: it serialises as ``***`` in the manifest and everything made from it (reports,
history, exports), and cell errors have its value replaced by ``***``.

Names are POSIX names, checked in the schema for every target kind: a name is a word in a
remote ``env`` command line and a key of ``Popen``'s environment, where ``-S…``, ``=`` or NUL
would become an option, a different variable, or a crash.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, model_serializer

from bench.errors import SuiteError

NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
NAME_RULE = "letters, digits and '_', not starting with a digit"
REDACTED = "***"

# What a local worker inherits from the controller: what finds and runs the interpreter, the
# locale, and the GPU stack's selection; never the rest (BENCH_ALERT_WEBHOOK, cloud keys…).
INHERITED = frozenset(
    {
        "PATH",
        "HOME",
        "USER",
        "LOGNAME",
        "LANG",
        "LANGUAGE",
        "TZ",
        "PYTHONPATH",
        "PYTHONHOME",
        "VIRTUAL_ENV",
        "LD_LIBRARY_PATH",
        "HIP_VISIBLE_DEVICES",
        "ROCR_VISIBLE_DEVICES",
        "BENCH_INJECT_SLOWDOWN",  # the workloads' documented knob for sensitivity checks
    }
)
INHERITED_PREFIXES = ("LC_", "CUDA_", "NVIDIA_")


def _name(value: Any) -> str:
    """A POSIX variable name, or a ValueError that shows the offending one."""
    if not isinstance(value, str) or not NAME.fullmatch(value):
        raise ValueError(f"invalid variable name {value!r} (use {NAME_RULE})")
    return value


class FromEnv(BaseModel):
    """A secret: the value of the controller's environment variable ``from_env``, read when the
    run starts. Only the variable's absence is ever reported; its value serialises as ``***``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    from_env: Annotated[str, BeforeValidator(_name)]

    @model_serializer
    def _redacted(self) -> str:
        return REDACTED

    def value(self, environ: Mapping[str, str]) -> str:
        """The secret, or a SuiteError (exit status 2) naming the variable that is not set."""
        try:
            return environ[self.from_env]
        except KeyError:
            raise SuiteError(
                f"from_env: {self.from_env} is not set in bench's environment "
                "(export it before running bench)"
            ) from None


def _entries(value: Any) -> Any:
    """Check names and values before pydantic sees them, so that every mistake is one message
    about ``env`` (not a pydantic union's two attempts)."""
    if not isinstance(value, dict):
        return value  # pydantic reports "a valid dictionary"
    out: dict[str, Any] = {}
    for key, item in value.items():
        _name(key)
        if isinstance(item, str):
            if "\0" in item:
                raise ValueError(f"{key}: a value cannot contain a NUL character")
        elif isinstance(item, dict):
            if set(item) != {"from_env"}:
                raise ValueError(f"{key}: a secret is written {{from_env: VARIABLE}}")
            item = FromEnv(from_env=_name(item["from_env"]))
        else:
            raise ValueError(
                f'{key}: a value is a string (quote numbers: "4") or {{from_env: NAME}}'
            )
        out[key] = item
    return out


EnvMap = Annotated[dict[str, str | FromEnv], BeforeValidator(_entries)]
"""A target's ``env:`` (see the module docstring)."""


def resolve(
    env: Mapping[str, str | FromEnv], environ: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The variables as the worker gets them: secrets read from ``environ`` (bench's own)."""
    environ = os.environ if environ is None else environ
    return {k: v.value(environ) if isinstance(v, FromEnv) else v for k, v in env.items()}


def plain(env: Mapping[str, str | FromEnv]) -> dict[str, str]:
    """Only the variables that are not secrets."""
    return {k: v for k, v in env.items() if isinstance(v, str)}


def secrets(
    env: Mapping[str, str | FromEnv], environ: Mapping[str, str] | None = None
) -> dict[str, str]:
    """Only the secrets, resolved."""
    return resolve({k: v for k, v in env.items() if isinstance(v, FromEnv)}, environ)


def check(targets: Iterable[Any], environ: Mapping[str, str] | None = None) -> list[str]:
    """Every secret the targets ask for, resolved now, before any cell runs; a missing variable
    is a SuiteError naming the target's key. Returns the values, for ``redact``."""
    found: list[str] = []
    for i, target in enumerate(targets):
        for key, value in (getattr(target, "env", None) or {}).items():
            if isinstance(value, FromEnv):
                try:
                    found.append(value.value(os.environ if environ is None else environ))
                except SuiteError as exc:
                    raise SuiteError(f"targets[{i}].env.{key}: {exc.message}") from None
    return found


def redact(text: str | None, values: Iterable[str]) -> str | None:
    """``text`` with every secret value replaced by ``***`` (a worker may print one)."""
    if text is None:
        return None
    for value in sorted(set(values), key=len, reverse=True):
        if value:
            text = text.replace(value, REDACTED)
    return text


def redact_all(value: Any, values: Iterable[str]) -> Any:
    """``value`` (a cell's info: JSON-like) with ``redact`` applied to every string in it, so a
    program's stderr kept in the info never stores a secret it printed."""
    if isinstance(value, str):
        return redact(value, values)
    if isinstance(value, dict):
        return {key: redact_all(item, values) for key, item in value.items()}
    if isinstance(value, list):
        return [redact_all(item, values) for item in value]
    return value


def inherited(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The part of bench's environment a local worker needs (see ``INHERITED``)."""
    environ = os.environ if environ is None else environ
    return {k: v for k, v in environ.items() if k in INHERITED or k.startswith(INHERITED_PREFIXES)}
