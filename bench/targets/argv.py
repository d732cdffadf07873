"""Commands a suite gives bench to run on the controller (a static VM's ``start``/``stop``).

They are argument lists executed without a shell, so ``virsh start vm && sleep 5`` would run
``virsh`` with the arguments ``&&``, ``sleep`` and ``5``. Shell operators are refused with the
fix (a script), and a program given by path is checked before the run: a script without its
execute bit would otherwise fail only when the first repetition boots.
"""

from __future__ import annotations

import os
import shlex
from pathlib import Path
from typing import Any

OPERATOR_CHARS = frozenset("();<>|&")
SCRIPT_HINT = (
    "start/stop are argument lists run without a shell: put the commands in a script "
    "and give it, e.g. start: [/path/to/script.sh, arg]"
)


def _is_operator(word: str) -> bool:
    return bool(word) and set(word) <= OPERATOR_CHARS


def words(value: Any) -> Any:
    """A command as a string (split like a shell would, never run by one) or a list, with
    no shell operator in it; other types are left to the field's own validation."""
    if isinstance(value, str):
        lexer = shlex.shlex(value, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        operators = [token for token in lexer if _is_operator(token)]
        if operators:
            raise ValueError(f"shell operator {operators[0]!r} in a command: {SCRIPT_HINT}")
        value = shlex.split(value)
    if isinstance(value, list):
        if not value:
            raise ValueError("an empty command")
        operators = [word for word in value if isinstance(word, str) and _is_operator(word)]
        if operators:
            raise ValueError(f"shell operator {operators[0]!r} in a command: {SCRIPT_HINT}")
    return value


def check_program(command: list[str]) -> list[str]:
    """The program must be named; one given by path (with a ``/``) must be an executable
    file now. A bare name is looked up on the ``PATH`` of the run, which may differ."""
    program = command[0]
    if not program:
        raise ValueError("an empty program name")
    if "/" not in program:
        return command
    path = Path(program)
    if not path.exists():
        raise ValueError(f"{program}: no such file")
    if not path.is_file() or not os.access(path, os.X_OK):
        raise ValueError(
            f"{program}: not an executable file (chmod +x it, or name its interpreter "
            f"first: [sh, {program}])"
        )
    return command
