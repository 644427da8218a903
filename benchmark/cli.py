"""The ``visrepro`` console script: one entry point, one subcommand per job.

Each subcommand lives in its own module, which provides::

    def configure(parser: argparse.ArgumentParser) -> None   # add its options
    def run(args: argparse.Namespace) -> int                 # do the work, return the exit status

Modules are imported only when their subcommand is used, so ``visrepro evaluate`` never pays for
importing torch. Bad input raises :class:`benchmark.errors.InputError`; it is reported here as a
message naming file, entry and problem, with exit status 2 (never a bare traceback).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Sequence

from benchmark import __version__
from benchmark.errors import EXIT_FAILED, EXIT_INPUT, InputError, TrainingError, UsageError

__all__ = ["COMMANDS", "main"]

log = logging.getLogger("visrepro")

#: name -> (module, one-line help). Order is the order of ``visrepro --help``.
COMMANDS: dict[str, tuple[str, str]] = {
    "toyvis": ("benchmark.data.toyvis", "write the ToyVIS synthetic dataset (YouTube-VIS layout)"),
    "validate": ("benchmark.data.validate", "check a YouTube-VIS/OVIS annotation file (and its frames)"),
    "split": ("benchmark.data.split", "split a train JSON into train_sub / valid_sub (local evaluation)"),
    "datasets": ("benchmark.data.catalog", "list the dataset catalog and what is present on disk"),
    "check-results": ("benchmark.data.results", "validate a results.json (and write the server zip)"),
    "evaluate": ("benchmark.evaluation.cli", "YouTube-VIS / OVIS AP and AR of a results.json"),
    "show": ("benchmark.viz", "draw GT or predicted masks over the frames (PNG, GIF, MP4)"),
    "fetch": ("benchmark.fetch", "download checkpoints/datasets (resumable, sha256-verified, Google Drive)"),
    "list": ("benchmark.registry", "list method variants: published numbers, checkpoints, status"),
    "predict": (
        "benchmark.predict",
        "run a method variant over a dataset or video -> results.json (resumable)",
    ),
    "speed": ("benchmark.speed", "measure FPS of a variant (model | model+track | e2e) -> fps.json"),
    "checkpoints": (
        "benchmark.checkpoint",
        "verify/inspect official checkpoints (sha256 -> checkpoints.lock.json)",
    ),
    "train": ("benchmark.train", "train a variant (single process or torchrun DDP); save/resume checkpoints"),
    "regress": ("benchmark.regress", "regression gate: accuracy vs baseline, normalised speed"),
    "report": (
        "benchmark.report.render",
        "Markdown + self-contained HTML report: published vs reproduced, plots",
    ),
}


def _top_parser() -> argparse.ArgumentParser:
    lines = [f"  {name:<14} {help_}" for name, (_, help_) in COMMANDS.items()]
    parser = argparse.ArgumentParser(
        prog="visrepro",
        description="visrepro: a reproducibility benchmark suite for video instance segmentation.",
        epilog="commands:\n" + "\n".join(lines) + "\n\nRun 'visrepro COMMAND --help' for its options.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"visrepro {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-vv: debug)")
    parser.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")
    parser.add_argument("command", choices=list(COMMANDS), metavar="COMMAND", help="what to do")
    parser.add_argument("args", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    return parser


def _setup_logging(verbose: int, quiet: bool) -> None:
    level = logging.WARNING if quiet else (logging.DEBUG if verbose > 1 else logging.INFO)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the console script; returns the exit status."""
    top = _top_parser()
    ns = top.parse_args(argv)
    _setup_logging(ns.verbose, ns.quiet)
    module_name, help_ = COMMANDS[ns.command]
    module = importlib.import_module(module_name)
    parser = argparse.ArgumentParser(prog=f"visrepro {ns.command}", description=help_)
    module.configure(parser)
    args = parser.parse_args(ns.args)
    try:
        return int(module.run(args))
    except InputError as exc:
        print(f"visrepro {ns.command}: error: input problem(s):\n{exc}", file=sys.stderr)
        return EXIT_INPUT
    except UsageError as exc:
        parser.print_usage(sys.stderr)
        print(f"visrepro {ns.command}: error: {exc}", file=sys.stderr)
        return EXIT_INPUT
    except TrainingError as exc:
        print(f"visrepro {ns.command}: error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print(f"visrepro {ns.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # stdout closed early (``visrepro list | head``): not an error of ours.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    raise SystemExit(main())
