"""Study storage: an output folder's SQLite file or any Optuna storage URL, opened with
heartbeats and one retry of a trial whose worker died, and a study-wide lock that lets many
worker processes share one study.

PostgreSQL is the storage for many workers (``postgresql://user@host/db``; psycopg 3 is the
driver). SQLite works for several processes on one machine. The lock makes each worker's
"count the study's trials, then ask for one" a single step, so ``n_trials`` is a study-wide
total and a proposal enqueued once is evaluated once.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.util
import logging
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import optuna
import sqlalchemy
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback

log = logging.getLogger(__name__)


class StorageError(ValueError):
    """A storage URL that cannot be opened, said in one line."""


@dataclass(frozen=True)
class HeartbeatSettings:
    """Each running trial records a heartbeat every ``interval`` seconds; one silent for
    ``grace`` seconds belonged to a dead worker: it is failed and run again ``retries`` times."""

    interval: int = 60
    grace: int = 120
    retries: int = 1

    def __post_init__(self) -> None:
        if self.interval < 1 or self.grace <= self.interval or self.retries < 0:
            raise ValueError(f"heartbeat needs interval >= 1, grace > interval and retries >= 0, "
                             f"got {self}")


def normalize_url(url: str) -> str:
    """``postgresql://`` names SQLAlchemy's default driver, psycopg2; use psycopg 3, which
    this project installs, unless psycopg2 is present."""
    if url.startswith(("postgresql://", "postgres://")) and importlib.util.find_spec("psycopg2") is None:
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def open_storage(url: str, heartbeat: HeartbeatSettings | None = None) -> RDBStorage:
    """An Optuna RDB storage at ``url``; heartbeats and retries when ``heartbeat`` is given.

    Processes that open a new database at the same moment race to create its tables: the
    losers see an IntegrityError on Optuna's version row, and the tables exist by then, so
    opening again succeeds."""
    hb = heartbeat or HeartbeatSettings()
    for attempt in range(3):
        try:
            with warnings.catch_warnings():  # heartbeats are "experimental" in Optuna 5.0
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return RDBStorage(
                    normalize_url(url), heartbeat_interval=hb.interval, grace_period=hb.grace,
                    heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=hb.retries)
                    if hb.retries else None,
                    engine_kwargs={"pool_pre_ping": True},
                )
        except sqlalchemy.exc.IntegrityError as exc:
            if attempt == 2:
                raise _storage_error(url, exc) from None
            time.sleep(0.2 * (attempt + 1))
        except (ImportError, sqlalchemy.exc.SQLAlchemyError) as exc:
            raise _storage_error(url, exc) from None
    raise AssertionError("unreachable")


def _storage_error(url: str, exc: Exception) -> StorageError:
    """One line for a storage that cannot be opened: a missing driver (with the install hint
    for PostgreSQL) or the database's own first line (connection refused, bad credentials)."""
    if isinstance(exc, ImportError):
        hint = " (pip install 'allocsearch[postgres]')" if url.startswith("postgres") else ""
        return StorageError(f"cannot open storage {redact(url)}: {exc}{hint}")
    return StorageError(f"cannot open storage {redact(url)}: {_first_line(exc)}")


def redact(url: str) -> str:
    """The URL without its password, for messages."""
    try:
        return sqlalchemy.engine.make_url(url).render_as_string(hide_password=True)
    except sqlalchemy.exc.ArgumentError:
        return url


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class StudyLock:
    """A lock held by one worker of a study at a time, across processes (and machines, for
    PostgreSQL): a session advisory lock on PostgreSQL, ``flock`` on a file beside a SQLite
    database. Other databases get no lock (a warning says that ``n_trials`` may then be
    exceeded by up to one trial per worker)."""

    def __init__(self, given: str, study_name: str) -> None:
        url = normalize_url(given)
        self._file: IO[bytes] | None = None
        self._conn: sqlalchemy.Connection | None = None
        digest = hashlib.sha256(f"allocsearch:{study_name}".encode()).digest()
        self._key = int.from_bytes(digest[:8], "big", signed=True)  # a bigint lock id
        dialect = sqlalchemy.engine.make_url(url).get_backend_name()
        if dialect == "postgresql":
            try:
                engine = sqlalchemy.create_engine(url, poolclass=sqlalchemy.pool.NullPool)
                self._conn = engine.connect()
            except (ImportError, sqlalchemy.exc.SQLAlchemyError) as exc:
                raise _storage_error(given, exc) from None
        elif dialect == "sqlite":
            database = sqlalchemy.engine.make_url(url).database
            if database and database != ":memory:":
                self._file = open(Path(database).with_name(Path(database).name + ".lock"), "ab")  # noqa: SIM115  atomic-exempt: a lock, never written
        else:
            log.warning("no study lock for %s storage: n_trials may be exceeded by up to one trial "
                        "per worker", dialect)

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        if self._conn is not None:
            self._conn.execute(sqlalchemy.text("SELECT pg_advisory_lock(:k)"), {"k": self._key})
            self._conn.commit()
        elif self._file is not None:
            fcntl.flock(self._file, fcntl.LOCK_EX)
        try:
            yield
        finally:
            if self._conn is not None:
                self._conn.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:k)"), {"k": self._key})
                self._conn.commit()
            elif self._file is not None:
                fcntl.flock(self._file, fcntl.LOCK_UN)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> StudyLock:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def load_study(folder: str | Path, storage: str | None = None, name: str | None = None) -> optuna.Study:
    """The study stored in ``folder/study.db`` (or at ``storage``); its only one unless named."""
    folder = Path(folder)
    url = storage or f"sqlite:///{(folder / 'study.db').resolve()}"
    if storage is None and not (folder / "study.db").is_file():
        if (folder / "anchors.json").is_file():  # anchored rounds: one study per round
            rounds = sorted(p.parent.name for p in folder.glob("r*/study.db"))
            raise FileNotFoundError(
                f"{folder} holds anchored rounds, one study each: report one of "
                f"{[str(folder / r) for r in rounds]}; "
                f"the chosen plan is {folder / 'best_plan.json'} (see anchors.json)")
        raise FileNotFoundError(f"no study in {folder} (expected {folder / 'study.db'})")
    backend = open_storage(url)
    names = [s.study_name for s in optuna.get_all_study_summaries(backend, include_best_trial=False)]
    if name is None:
        if len(names) != 1:
            raise ValueError(f"{redact(url)} holds studies {names}; name one with --name")
        name = names[0]
    elif name not in names:
        raise ValueError(f"no study {name!r} in {redact(url)}; it holds {names}")
    return optuna.load_study(study_name=name, storage=backend)
