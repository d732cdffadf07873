"""Command line of the worker.

``python -m workloads run --spec PATH`` (``-`` reads the spec from stdin; ``--spec-json JSON``
takes it inline) runs one workload and streams events on stdout; exit code 0 on success, 1 on a
failed run, 2 on an invalid spec. ``python -m workloads fingerprint`` prints a description of
the host. ``python -m workloads assets make --params-json JSON --out DIR`` writes a checkpoint or
dataset directory (``workloads.assets``) and prints its index.
"""

from __future__ import annotations

import argparse
import gc
import signal
import sys
import traceback
from types import FrameType

from workloads.protocol import Emitter, error_event, make_event, start_event
from workloads.spec import Spec, SpecError, parse

EXIT_FAILED = 1
EXIT_INVALID_SPEC = 2
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143


class Terminated(Exception):
    """SIGTERM arrived; raised so cleanup (temporary files) still runs."""


def _raise_terminated(signum: int, frame: FrameType | None) -> None:
    raise Terminated(f"worker received signal {signum}")


def _read_spec(path: str | None, inline: str | None = None) -> Spec:
    if inline is not None:
        return parse(inline)
    assert path is not None
    try:
        if path == "-":
            return parse(sys.stdin.read())
        with open(path, encoding="utf-8") as handle:
            return parse(handle.read())
    except OSError as exc:
        raise SpecError(f"cannot read spec {path!r}: {exc}") from exc


def _fail(emit: Emitter, exc: BaseException, code: int) -> int:
    # After a user's program failed, the stderr tail kept for the cell should end with the
    # program's own words, not the worker's frames.
    if getattr(exc, "traceback_helps", True):
        traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)
    emit(error_event(exc))
    return code


def run(spec_path: str | None, spec_json: str | None = None) -> int:
    """Run a spec as a worker process, reporting every outcome as an event."""
    emit = Emitter.claim_stdout()
    emit(start_event())
    signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        spec = _read_spec(spec_path, spec_json)
        from workloads.execute import execute

        execute(spec, emit)
    except SpecError as exc:
        return _fail(emit, exc, EXIT_INVALID_SPEC)
    except Terminated as exc:
        return _fail(emit, exc, EXIT_TERMINATED)
    except KeyboardInterrupt as exc:
        return _fail(emit, exc, EXIT_INTERRUPTED)
    except Exception as exc:
        return _fail(emit, exc, EXIT_FAILED)
    return 0


def fingerprint(include_torch: bool) -> int:
    from workloads.fingerprint import collect

    emit = Emitter.claim_stdout()
    emit(make_event("fingerprint", data=collect(include_torch=include_torch)))
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m workloads")
    commands = parser.add_subparsers(dest="command", required=True)
    run_parser = commands.add_parser("run", help="run one workload spec")
    source = run_parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--spec", help="path to a JSON spec, or - for stdin")
    source.add_argument("--spec-json", help="the JSON spec itself (no file to copy in)")
    print_parser = commands.add_parser("fingerprint", help="describe this host")
    print_parser.add_argument(
        "--no-torch", action="store_true", help="skip torch, numpy and NVML probes"
    )
    assets = commands.add_parser("assets", help="checkpoints and datasets as asset directories")
    make = assets.add_subparsers(dest="assets_command", required=True).add_parser(
        "make", help="write the asset the params describe; print its index"
    )
    make.add_argument("--params-json", required=True, help="the asset's params as JSON")
    make.add_argument("--out", required=True, help="directory to write it into")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "run":
        return run(args.spec, args.spec_json)
    if args.command == "assets":
        from workloads.assets import cli_make

        return cli_make(args.params_json, args.out)
    return fingerprint(include_torch=not args.no_torch)


def _quick_exit() -> None:
    """Skip the collector's last pass over torch's objects at interpreter exit (about 0.5 s of
    a CPU on a small host, in every cell, after everything was reported). Objects are still
    released and atexit handlers, DataLoader worker shutdown among them, still run."""
    gc.freeze()


if __name__ == "__main__":
    code = main()
    _quick_exit()
    sys.exit(code)
