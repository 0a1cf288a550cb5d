"""Command line: parse arguments once into typed configs, then call the library.

    allocsearch prune    --model smollm2-135m --method wanda --sparsity 0.5 --out pruned/
    allocsearch eval     --model pruned/ --data embedded
    allocsearch allocate --model smollm2-135m --method owl --sparsity 0.7 --out plan.json
    allocsearch prune    --plan plan.json --method sparsegpt --out pruned/
    allocsearch plan show plan.json
    allocsearch export   plan.json --format llmcompressor
    allocsearch evaluate plan.json --fitness kl --fidelity 2048,8192 --verify wanda
    allocsearch search   studies/smollm2-70.yaml --n-trials 200
    allocsearch study report studies/smollm2-70/
    allocsearch study records studies/smollm2-70/ --out records.jsonl
    allocsearch predictor train --study studies/smollm2-70/ --out predictor.json
    allocsearch predictor eval predictor.json --study studies/smollm2-60/
    allocsearch predictor rank predictor.json plan.json...
    allocsearch database build --model smollm2-135m --pruner sparsegpt
    allocsearch database info
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

from allocsearch import __version__
from allocsearch.cli import database, evaluate, plans, predictor, prune_eval, search


class _Parser(argparse.ArgumentParser):
    """Argument errors in the one-line form of every other user error (exit code 2); the
    subcommands' parsers are of this class too."""

    def error(self, message: str) -> NoReturn:
        print(f"allocsearch: error: {self.prog.removeprefix('allocsearch ')}: {message} "
              f"(see {self.prog} --help)", file=sys.stderr)
        raise SystemExit(2)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="allocsearch", description="Per-layer sparsity allocation search for LLM pruning."
    )
    parser.add_argument("--version", action="version", version=f"allocsearch {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    prune_eval.register(sub)
    plans.register(sub)
    evaluate.register(sub)
    search.register(sub)
    predictor.register(sub)
    database.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, or an argument error already printed
        return int(exc.code or 0)
    quiet = bool(getattr(args, "quiet", False))
    logging.basicConfig(
        level=logging.WARNING if quiet else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    if quiet:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        hf_logging.set_verbosity_error()
    try:
        return int(args.func(args))
    except USER_ERRORS as exc:
        # A user's mistake: one line, exit code 2. Anything else is a bug and keeps its
        # traceback (a KeyError, say, is not caught here).
        print(f"allocsearch: error: {one_line(exc)}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `allocsearch plan show x.json | head`: the reader left early
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no error at exit flush
        return 1


#: What a user's input can raise: bad values (ValueError and its subclasses: plan, space,
#: study config, storage errors), missing files, and unreadable ones.
USER_ERRORS = (ValueError, FileNotFoundError, NotADirectoryError, IsADirectoryError,
               PermissionError)


def one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


if __name__ == "__main__":
    sys.exit(main())
