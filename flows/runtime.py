"""Process environment for every driver: project-local defaults, explicit variables win.

``prepare_environment`` is called by the CLI, by the flows themselves and, as a
pull step in ``prefect.yaml``, by every deployment run a worker starts. It only
sets environment variables that are unset (and appends the project's loggers to
``PREFECT_LOGGING_EXTRA_LOGGERS``), quiets Prefect's "Finished in state Completed()"
lines and the tracebacks under errors the user caused, and creates no files except
``PREFECT_HOME`` when that is set to a directory that does not exist yet.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from pathlib import Path

log = logging.getLogger(__name__)

_SECRET_NAME = re.compile(r"TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL|ACCESS_KEY|API_KEY|PRIVATE_KEY", re.I)
_URL_PASSWORD = re.compile(r"(://[^/\s:@]+:)[^/\s@]+@")
_LOADED_SECRETS: set[str] = set()  # names exported from Secret blocks, whatever they are called

# Infrastructure defaults that hold whether or not a Prefect server is configured.
_BASE_DEFAULTS = {
    "BENTOML_DO_NOT_TRACK": "true",
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
    "GIT_PYTHON_REFRESH": "quiet",
    "DVC_NO_ANALYTICS": "true",
}

# For the ephemeral Prefect API (no PREFECT_API_URL). On a brand-new PREFECT_HOME its first
# start creates and migrates a SQLite database; on a busy 2-core machine that outlasted
# Prefect's 20 s default and the run died, and the telemetry heartbeat raced the migration
# for the SQLite lock ("database is locked"). Give the start room, keep telemetry out, and
# let statements wait for the lock instead of failing. A remote server ignores all three.
_EPHEMERAL_DEFAULTS = {
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "180",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_SERVER_DATABASE_TIMEOUT": "60",
}


# Our loggers (``logging.getLogger(__name__)`` under these packages, and the service's ``mlops.*``)
# reach the Prefect UI as Prefect's extra loggers. They also log outside flow runs (CLI commands,
# DVC stages): those lines stay on the console instead of warning that there is no run to send them to.
PROJECT_LOGGERS = ("components", "flows", "mlops")
_LOGGING_DEFAULTS = {"PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW": "ignore"}
# What Prefect's engines log after every task run (and the flow run) that simply completed: the UI shows
# each run's state already, and these lines were most of a run's log.
TASK_COMPLETED_LINE = "Finished in state Completed()"


def prepare_environment(root: str | Path) -> None:
    """Set project-local defaults for ``root`` without overriding anything already set."""
    root = Path(root).resolve()
    defaults = {"BENTOML_HOME": str(root / ".bentoml"), **_BASE_DEFAULTS, **_EPHEMERAL_DEFAULTS, **_LOGGING_DEFAULTS}
    for name, value in defaults.items():
        os.environ.setdefault(name, value)
    home = os.environ.get("PREFECT_HOME")
    if home:
        Path(home).expanduser().mkdir(parents=True, exist_ok=True)
    _add_extra_loggers(PROJECT_LOGGERS)
    quiet_completed_task_runs()
    log.debug(
        "environment prepared for %s (PREFECT_API_URL %s)",
        root,
        "set" if os.environ.get("PREFECT_API_URL") else "unset: ephemeral API",
    )


def _add_extra_loggers(names: tuple[str, ...]) -> None:
    """Append ``names`` to ``PREFECT_LOGGING_EXTRA_LOGGERS`` (a user's loggers stay in it).

    Prefect reads the setting when it configures logging, at import. In a process where that has
    already happened and a run is in progress (a flow calling this, a deployment's flow run), the
    loggers get the API handler of Prefect's ``prefect.extra`` logger, and its level when theirs
    would drop INFO lines.
    """
    current = [n.strip() for n in os.environ.get("PREFECT_LOGGING_EXTRA_LOGGERS", "").split(",") if n.strip()]
    os.environ["PREFECT_LOGGING_EXTRA_LOGGERS"] = ",".join([*current, *(n for n in names if n not in current)])

    configuration = sys.modules.get("prefect.logging.configuration")
    if configuration is None or not configuration.PROCESS_LOGGING_CONFIG or not _in_prefect_run():
        return
    from prefect.logging.handlers import APILogHandler

    extra = logging.getLogger("prefect.extra")
    # Only the handler that sends to the API: the console already prints our lines (through the
    # root logger), and a second console handler would print each of them twice.
    to_api = [h for h in extra.handlers if isinstance(h, APILogHandler)]
    for name in names:
        logger = logging.getLogger(name)
        for handler in to_api:
            if handler not in logger.handlers:
                logger.addHandler(handler)
        if logger.level == logging.NOTSET and logger.getEffectiveLevel() > extra.getEffectiveLevel():
            logger.setLevel(extra.getEffectiveLevel())


def _in_prefect_run() -> bool:
    from prefect.context import FlowRunContext, TaskRunContext

    return FlowRunContext.get() is not None or TaskRunContext.get() is not None


class _DropCompletedLine(logging.Filter):
    """Drops the engines' ``Finished in state Completed()``; failures, crashes, retries and cache hits stay."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.levelno == logging.INFO and record.getMessage() == TASK_COMPLETED_LINE)


class _NoTracebackForUserErrors(logging.Filter):
    """Keeps the engines' line for a failure the user caused, drops its traceback.

    A rejected file, a bad key or missing data is logged by Prefect's engines once per task and once
    for the flow, each with a traceback through Prefect's frames (and the validation child's): about
    forty lines per record around a message that already names the rule, column or key. A bug keeps
    its traceback.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and record.exc_info[1] is not None and _user_error(record.exc_info[1]):
            record.exc_info, record.exc_text = None, None
        return True


def quiet_completed_task_runs() -> None:
    """No log line that only says a run completed, and no traceback under a user's error, in the console or the
    Prefect UI (idempotent).

    Filters on Prefect's run loggers, the standard-logging way its logging.yml documents for dropping records.
    """
    for name in ("prefect.task_runs", "prefect.flow_runs"):
        logger = logging.getLogger(name)
        for kind in (_DropCompletedLine, _NoTracebackForUserErrors):
            if not any(isinstance(f, kind) for f in logger.filters):
                logger.addFilter(kind())


def tag_flow_run(*tags: str) -> None:
    """Add ``tags`` to the current flow run (beside the ones it has), so the UI can filter runs by them.

    Outside a flow run this does nothing; a failure to tag is logged, never raised: tags are for people.
    """
    from prefect.runtime import flow_run

    run_id = flow_run.get_id()
    if not run_id:
        return
    try:
        from uuid import UUID

        from prefect.client.orchestration import get_client

        with get_client(sync_client=True) as client:
            current = list(client.read_flow_run(UUID(run_id)).tags)
            client.update_flow_run(UUID(run_id), tags=[*current, *(t for t in tags if t not in current)])
    except Exception as err:  # noqa: BLE001 - the run matters more than its tags
        log.warning("could not tag flow run %s with %s: %s", run_id, list(tags), err)


def load_secret_env(secrets: dict[str, str]) -> list[str]:
    """Export Prefect Secret blocks as environment variables; return the names set.

    ``secrets`` maps a variable (e.g. ``MLFLOW_TRACKING_TOKEN``) to a Secret block name. A variable
    that is already set wins, so a worker's own environment is never overridden. Values are
    neither logged nor returned.
    """
    from prefect.blocks.system import Secret

    loaded = []
    for variable, block in sorted(secrets.items()):
        if os.environ.get(variable):
            continue
        os.environ[variable] = str(Secret.load(block).get())
        _LOADED_SECRETS.add(variable)
        loaded.append(variable)
    return loaded


def secret_values() -> list[str]:
    """Values of environment variables that are credentials by name or were loaded from Secret blocks."""
    return [
        value
        for name, value in os.environ.items()
        if (name in _LOADED_SECRETS or _SECRET_NAME.search(name)) and len(value) >= 6
    ]


def redact(text: str) -> str:
    """``text`` with every credential-looking environment value and URL password replaced by ``***``."""
    for value in sorted(secret_values(), key=len, reverse=True):
        text = text.replace(value, "***")
    return _URL_PASSWORD.sub(r"\1***@", text)


# `mlops` commands that start processes of their own: `run` starts Prefect's temporary API server
# (no other command calls Prefect's API), a Dask cluster with `train.parallel`, and `bentoml serve`
# for infra validation. `serve` replaces the CLI with `bentoml serve` (exec), a server the user
# means to keep: it gets no watchdog.
WATCHED_COMMANDS = frozenset({"run", "predict", "monitor"})  # all start Prefect's temporary API server


def watch_descendants(command: str) -> None:
    """For a command in ``WATCHED_COMMANDS``: stop what this process started once it dies, even by ``kill -9``.

    Prefect stops its temporary API server only in an ``atexit`` handler, which a SIGKILL never runs;
    a watchdog process (``components.release.process_guard.start_watchdog``) outlives us to do it. Call it
    before the command starts anything, at most once per process.
    """
    if command not in WATCHED_COMMANDS:
        return
    from components.release.process_guard import start_watchdog

    try:
        start_watchdog()
    except OSError as err:  # the run still works; it only loses its clean-up after a hard kill
        log.warning("no watchdog for this run's processes: %s", err)


# Exit codes shared by every command line (`mlops` and the DVC stage CLI).
EXIT_CONFIG, EXIT_NO_DATA, EXIT_REJECTED, EXIT_NOTHING = 2, 3, 4, 5


def _user_error(err: BaseException) -> tuple[int, str] | None:
    """The exit code and printed prefix of a user-facing error (bad params, missing or bad data); None for a bug."""
    from components.config import ConfigError
    from components.data.contract import ContractError, DataReadError
    from components.data.dataset import DataNotFoundError
    from components.release.promotion import PromotionError
    from components.validation.report import DataRejectedError

    codes = [
        ((ConfigError, ContractError), EXIT_CONFIG, "error"),
        ((DataNotFoundError,), EXIT_NO_DATA, "error"),
        ((DataRejectedError, DataReadError), EXIT_REJECTED, "data rejected"),
        ((PromotionError,), EXIT_NOTHING, "error"),
    ]
    for types, code, prefix in codes:
        if isinstance(err, types):
            return code, prefix
    return None


def exit_code_for(err: BaseException) -> int | None:
    """The documented exit code for a user-facing error, printed to stderr; None for a bug (let it raise)."""
    found = _user_error(err)
    if found is None:
        return None
    code, prefix = found
    print(f"{prefix}: {redact(str(err))}", file=sys.stderr)
    return code
