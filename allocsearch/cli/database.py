"""``allocsearch database build|info|clear``: the level databases in the cache.

    allocsearch database build --model smollm2-135m --pruner sparsegpt --nsamples 32
    allocsearch database info                 # every database: key, model, pruner, grid, size
    allocsearch database info KEY --verify    # re-read every entry and check its digest
    allocsearch database clear [KEY]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from allocsearch.cli.common import add_data_args, add_model_args, add_quiet, load, registered


def register(sub: Any) -> None:
    p = sub.add_parser("database", help="build, list or clear level databases (SparseGPT levels)")
    dsub = p.add_subparsers(dest="database_command", required=True)
    b = dsub.add_parser("build", help="prune every module at every level once and cache it")
    add_model_args(b)
    add_data_args(b, nsamples=64)
    b.add_argument("--pruner", default="sparsegpt", choices=registered("pruners"),
                   help="whose weights the database holds (default sparsegpt): %(choices)s")
    b.add_argument("--levels", default=None,
                   help="start:stop:step or a comma list (default dense + 0.3:0.95:0.05)")
    b.add_argument("--anchor", type=Path, default=None,
                   help="a plan: calibrate each block on a sequential prune at it "
                        "(default: the dense model's activations)")
    b.add_argument("--batch-size", type=int, default=1, help="windows per forward")
    b.add_argument("--cache-dir", type=Path, default=None,
                   help="cache root (default $ALLOCSEARCH_CACHE or ~/.cache/allocsearch)")
    b.set_defaults(func=cmd_build)
    i = dsub.add_parser("info", help="list the cached databases, their keys and sizes")
    i.add_argument("key", nargs="?", default=None, help="a key (or its prefix): that one in detail")
    i.add_argument("--verify", action="store_true", help="re-read every entry and check its digest")
    i.add_argument("--cache-dir", type=Path, default=None)
    add_quiet(i)
    i.set_defaults(func=cmd_info)
    c = dsub.add_parser("clear", help="delete cached databases (all, or one key)")
    c.add_argument("key", nargs="?", default=None, help="a key (or its prefix); all when absent")
    c.add_argument("--cache-dir", type=Path, default=None)
    add_quiet(c)
    c.set_defaults(func=cmd_clear)


def _root(args: argparse.Namespace) -> Path:
    from allocsearch.database import levels_root
    from allocsearch.models.loading import default_cache_dir

    return levels_root(args.cache_dir or default_cache_dir())


def cmd_build(args: argparse.Namespace) -> int:
    from allocsearch.apply import plan_targets
    from allocsearch.budget import identity_from_adapter
    from allocsearch.data import DataConfig
    from allocsearch.database import DatabaseSpec, LevelGrid, anchor_digest, build_database
    from allocsearch.plan import Plan
    from allocsearch.pruners import get_pruner

    get_pruner(args.pruner)
    grid = LevelGrid.parse(args.levels) if args.levels else LevelGrid()
    data = DataConfig(args.data, args.nsamples, args.seqlen, args.seed)
    anchor_plan = Plan.load(args.anchor) if args.anchor else None
    loaded = load(args, args.model)
    anchor = None
    digest = None
    if anchor_plan is not None:
        anchor_plan.validate()
        anchor_plan.check_model(identity_from_adapter(loaded.adapter, loaded.name))
        anchor = plan_targets(anchor_plan)
        digest = anchor_digest({n: t.sparsity for n, t in anchor.items()})
    spec = DatabaseSpec(args.pruner, grid, data, digest)
    start = time.perf_counter()
    report = build_database(loaded, spec, anchor=anchor, cache_dir=args.cache_dir,
                            batch_size=args.batch_size, progress=not args.quiet)
    db = report.database
    print(f"database {db.key}: {len(report.built)} entries built, {report.reused} reused, "
          f"{db.nbytes() / 2**30:.2f} GiB on disk, {time.perf_counter() - start:.1f}s")
    print(f"  {db.folder}")
    return 0


def _describe(db: Any) -> str:
    spec = db.index["spec"]
    d = spec["data"]
    return (f"{db.key}  {db.index['model']}  {spec['pruner']} on {spec['inputs']} inputs  "
            f"{db.grid.describe()}  {d['source']} {d['nsamples']}x{d['seqlen']} seed {d['seed']}  "
            f"{db.dtype}  {db.nbytes() / 2**30:.2f} GiB")


def cmd_info(args: argparse.Namespace) -> int:
    from allocsearch.database import list_databases

    dbs = list_databases(_root(args))
    if args.key is not None:
        dbs = [db for db in dbs if db.key.startswith(args.key)]
        if not dbs:
            raise ValueError(f"no level database with key {args.key!r} under {_root(args)}")
    if not dbs:
        print(f"no level databases under {_root(args)}")
        return 0
    for db in dbs:
        print(_describe(db))
        problems = db.problems()
        if args.verify:
            for name in db.shapes:
                if name not in problems and not db.verify_data(name):
                    problems[name] = "data digest differs"
        done = len(db.shapes) - len(problems)
        print(f"  {done}/{len(db.shapes)} entries complete" +
              (f"; to rebuild: {', '.join(f'{n} ({r})' for n, r in list(problems.items())[:3])}"
               + (" ..." if len(problems) > 3 else "") if problems else ""))
    return 0


def cmd_clear(args: argparse.Namespace) -> int:
    from allocsearch.database import clear_databases

    gone = clear_databases(_root(args), args.key)
    if args.key is not None and not gone:
        raise ValueError(f"no level database with key {args.key!r} under {_root(args)}")
    print(f"removed {len(gone)} level database(s) from {_root(args)}")
    return 0
