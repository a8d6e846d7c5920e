"""Run a command that dies with the process that started it, even on ``kill -9`` of that process.

    python -I components/release/process_guard.py --parent PID [--grace S] -- CMD [ARG...]
    python -I components/release/process_guard.py --parent PID --watch-descendants [--token T] [--grace S] [--scan S]

The guard starts CMD and watches PID, which must be its parent. When the parent is gone (however
it died) or the guard gets SIGTERM, SIGINT or SIGHUP, it stops CMD's whole tree: SIGTERM to CMD,
up to ``--grace`` seconds for the tree to go, then SIGKILL to every descendant left. When CMD exits
by itself, the guard stops whatever CMD left behind and exits as CMD did (same code or signal).

Why a watchdog process rather than ``PR_SET_PDEATHSIG`` on CMD alone: the parent-death signal
fires when the parent *thread* ends (Prefect runs tasks in worker threads), and ``bentoml serve``
killed with SIGKILL orphans its workers, which run in sessions of their own. So on Linux the guard

- asks for a parent-death signal (SIGUSR1) only as a wake-up, then compares ``getppid()`` with PID:
  that changes only when the parent *process* is gone, never when just a thread of it ends (nor
  when the parent execs another program: its pid stays);
- is a child subreaper, so processes orphaned inside CMD's tree are re-parented to the guard
  and it still finds them to kill;
- gives CMD a parent-death SIGTERM, so even a SIGKILLed guard lets CMD stop its own workers.

With ``--watch-descendants`` (see ``start_watchdog``) there is no CMD: the watchdog notices PID's
death the same way and then stops every process PID started that still runs (SIGTERM, ``--grace``
seconds, SIGKILL) and exits: at once after a normal exit, which leaves nothing. A dead process's
children are re-parented before the death signal is sent, so it knows PID's family from a scan of
PID's tree every ``--scan`` seconds (those still running, with their descendants now) and from
``--token``, which every program PID started since carries in its environment (``TOKEN_VAR``).

Elsewhere it polls ``getppid()`` every ``POLL_S`` seconds. Stdlib and psutil only, no project
imports: callers run it by path with ``python -I``, so neither the working directory nor
PYTHONPATH decides what the guard imports (CMD still gets the caller's environment unchanged).
"""

from __future__ import annotations

import argparse
import ctypes
import os
import secrets
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from contextlib import suppress
from pathlib import Path

import psutil

POLL_S = 0.5  # parent check when no parent-death signal is available, and the longest sleep
SCAN_S = 2.0  # how often CMD's tree (or the watched parent's) is remembered
EXITING_S = 1.0  # how long a process on its way out at the parent's death has before it counts as left
TOKEN_VAR = "MLOPS_PROCESS_GUARD_TOKEN"  # marks the processes a watched process started
_PR_SET_PDEATHSIG = 1
_PR_SET_CHILD_SUBREAPER = 36
_HERE = str(Path(__file__).resolve())
_watchdog: tuple[int, subprocess.Popen] | None = None  # (the pid it watches, the watchdog)


def guarded_command(cmd: Sequence[str], *, grace_s: float = 10.0, parent: int | None = None) -> list[str]:
    """``cmd`` under a guard that stops its whole tree when ``parent`` (default: this process) dies.

    Start the result directly from ``parent`` (no shell in between): the guard checks that it is
    its parent's child.
    """
    if not cmd:
        raise ValueError("guarded_command needs a command")
    pid = os.getpid() if parent is None else parent
    return [sys.executable, "-I", _HERE, "--parent", str(pid), "--grace", f"{grace_s:g}", "--", *cmd]


def start_watchdog(*, grace_s: float = 5.0, scan_s: float = SCAN_S) -> subprocess.Popen:
    """Start (once per process) a watchdog that stops this process's descendants when it dies, even by SIGKILL.

    Call it before this process starts anything: only processes started afterwards carry the token.
    """
    global _watchdog
    if _watchdog is not None and _watchdog[0] == os.getpid() and _watchdog[1].poll() is None:
        return _watchdog[1]
    token = f"{os.getpid()}-{secrets.token_hex(8)}"
    os.environ[TOKEN_VAR] = token  # inherited from here on: how the watchdog tells this process's family
    cmd = [sys.executable, "-I", _HERE, "--parent", str(os.getpid()), "--watch-descendants", "--token", token]
    cmd += ["--grace", f"{grace_s:g}", "--scan", f"{scan_s:g}"]
    # Its own session: a Ctrl-C or hang-up of the terminal is for the watched process to handle, and
    # a kill of its process group must not take the watchdog with it. stderr stays: its reports.
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, start_new_session=True)
    _watchdog = (os.getpid(), proc)
    return proc


def _prctl(option: int, value: int) -> bool:
    """Linux ``prctl(option, value)``; False where it does not exist or fails."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        return ctypes.CDLL(None, use_errno=True).prctl(option, value, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def descendants(pid: int) -> list[psutil.Process]:
    """Every process below ``pid`` right now; empty if ``pid`` is gone."""
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        return []


def alive(procs: Iterable[psutil.Process]) -> list[psutil.Process]:
    """The ones still running. A zombie counts as gone: it only waits for its parent to reap it."""
    out = []
    for p in procs:
        with suppress(psutil.Error):
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:  # is_running() also spots pid reuse
                out.append(p)
    return out


def wait_gone(procs: Iterable[psutil.Process], timeout_s: float) -> list[psutil.Process]:
    """Wait up to ``timeout_s`` for ``procs`` to end; return those still alive.

    Reaps nothing: zombies already count as gone, and reaping by pid could steal the exit status
    of an unrelated ``subprocess.Popen`` child that got a recycled pid.
    """
    procs = list(procs)
    deadline = time.monotonic() + timeout_s
    while True:
        left = alive(procs)
        if not left or time.monotonic() >= deadline:
            return left
        time.sleep(0.1)


def kill_all(procs: Iterable[psutil.Process], timeout_s: float = 5.0) -> list[psutil.Process]:
    """SIGKILL ``procs`` and wait for them; return any that still would not go."""
    procs = alive(procs)
    for p in procs:
        with suppress(psutil.Error):
            p.kill()
    return wait_gone(procs, timeout_s)


def _say(message: str) -> None:
    print(f"process_guard[{os.getpid()}]: {message}", file=sys.stderr, flush=True)


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="process_guard", description=__doc__.split("\n\n")[0])
    parser.add_argument("--parent", type=int, required=True, help="pid of the process that started the guard")
    parser.add_argument("--grace", type=float, default=10.0, help="seconds between SIGTERM and SIGKILL")
    parser.add_argument("--watch-descendants", action="store_true", help="no command: stop PID's leftovers")
    parser.add_argument("--token", help=f"with --watch-descendants: ${TOKEN_VAR} in PID's family")
    parser.add_argument("--scan", type=float, default=SCAN_S, help="seconds between scans of PID's tree")
    parser.add_argument("cmd", nargs=argparse.REMAINDER, help="-- then the command to run")
    args = parser.parse_args(argv)
    if args.cmd[:1] == ["--"]:
        args.cmd = args.cmd[1:]
    if args.watch_descendants and args.cmd:
        parser.error("--watch-descendants takes no command")
    if not args.cmd and not args.watch_descendants:
        parser.error("no command given after --")
    return args


def _exit_like(returncode: int) -> int:
    """Exit as the command did: the same code, or death by the same signal."""
    if returncode < 0:
        with suppress(OSError, ValueError):  # SIGKILL and SIGSTOP cannot be reset, nor need it
            signal.signal(-returncode, signal.SIG_DFL)
        os.kill(os.getpid(), -returncode)
        return 128 - returncode  # only if that signal did not end us
    return returncode


def _wakeup_pipe() -> int:
    """A pipe the signals below wake ``select`` through (handlers do no work); its read end."""
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_r, False)
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    for signum in (signal.SIGCHLD, signal.SIGUSR1):  # CMD changed state / a parent thread ended
        signal.signal(signum, lambda *_: None)
    _prctl(_PR_SET_PDEATHSIG, signal.SIGUSR1)
    return wake_r


def _sleep(wake_r: int, timeout_s: float) -> None:
    with suppress(InterruptedError):
        select.select([wake_r], [], [], max(0.0, timeout_s))
    with suppress(BlockingIOError):
        os.read(wake_r, 4096)


def _leftovers(known: Iterable[psutil.Process], token: str | None) -> list[psutil.Process]:
    """What still runs of ``known`` and of the processes carrying ``token``, with their descendants now."""
    found = {p.pid: p for p in alive(known)}
    if token:
        for p in psutil.process_iter():
            with suppress(psutil.Error):  # gone meanwhile, or someone else's
                if p.pid not in found and p.environ().get(TOKEN_VAR) == token:
                    found[p.pid] = p
    for p in list(found.values()):
        found.update((c.pid, c) for c in descendants(p.pid))
    found.pop(os.getpid(), None)
    return [p for p in alive(found.values()) if not _is_resource_tracker(p)]


def _is_resource_tracker(proc: psutil.Process) -> bool:
    """multiprocessing's resource tracker (started by a spawned child) exits on its own once the process
    that started it is gone (its pipe closes): neither a leftover to stop nor one to report."""
    with suppress(psutil.Error):
        return "multiprocessing.resource_tracker" in " ".join(proc.cmdline())
    return False


def _names(procs: Iterable[psutil.Process]) -> str:
    out = []
    for p in procs:
        with suppress(psutil.Error):
            out.append(f"{p.pid} {' '.join(p.cmdline()[:4])[:80] or p.name()}")  # no cmdline while exiting
    return "; ".join(out)


def watch_descendants(parent: int, token: str | None, grace_s: float, scan_s: float) -> int:
    """Remember ``parent``'s tree until ``parent`` is gone, then stop what is left of its family."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # no traceback when told to go; SIGTERM ends us likewise
    wake_r, on_linux = _wakeup_pipe(), sys.platform.startswith("linux")
    known: dict[int, psutil.Process] = {}
    next_scan = 0.0
    while os.getppid() == parent:
        if time.monotonic() >= next_scan:  # orphans that left the tree stay known while they run
            known = {p.pid: p for p in alive(known.values())} | {p.pid: p for p in descendants(parent)}
            next_scan = time.monotonic() + scan_s
        _sleep(wake_r, next_scan - time.monotonic() if on_linux else POLL_S)  # Linux: the death signal wakes us
    # A child told to stop at the parent's exit, or whose pipe to it just closed (the validation child), is on
    # its way out: a moment before it counts as left behind, so a clean exit is not reported as one.
    left = wait_gone(_leftovers(known.values(), token), min(grace_s, EXITING_S))
    if not left:
        return 0
    _say(f"pid {parent} is gone; stopping what it left: {_names(left)}")
    for p in left:
        with suppress(psutil.Error):
            p.terminate()
    wait_gone(left, grace_s)
    if left := _leftovers(left, token):  # with anything started meanwhile
        _say(f"killing {len(left)} process(es) still there after {grace_s:g} s: {_names(left)}")
        kill_all(left)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the guard; see the module docstring."""
    args = _parse_args(argv)
    if args.watch_descendants:
        return watch_descendants(args.parent, args.token, args.grace, args.scan)
    stop_signals: list[int] = []

    def on_stop(signum: int, _frame: object) -> None:
        stop_signals.append(signum)

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, on_stop)
    wake_r = _wakeup_pipe()  # signals only set a flag and wake the loop: no work in handlers
    _prctl(_PR_SET_CHILD_SUBREAPER, 1)
    if os.getppid() != args.parent:  # it died before we could watch it (or we were not started by it)
        _say(f"parent {args.parent} is gone; not starting {args.cmd[0]}")
        return 1
    if stop_signals:
        return 128 + stop_signals[0]
    guard_pid = os.getpid()

    def in_child() -> None:  # the guard is single-threaded, so a preexec_fn is safe here
        _prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != guard_pid:  # the guard died between fork and prctl
            os._exit(1)

    try:
        proc = subprocess.Popen(args.cmd, preexec_fn=in_child)
    except OSError as err:
        _say(f"cannot start {args.cmd[0]}: {err}")
        return 127

    known: dict[int, psutil.Process] = {}
    reason, next_scan = "", 0.0
    while proc.poll() is None:
        if stop_signals:
            reason = f"got signal {signal.Signals(stop_signals[0]).name}"
            break
        if os.getppid() != args.parent:
            reason = f"parent {args.parent} is gone"
            break
        if time.monotonic() >= next_scan:  # without a subreaper, orphans leave the tree: remember them
            known.update((p.pid, p) for p in descendants(proc.pid))
            next_scan = time.monotonic() + SCAN_S
        _sleep(wake_r, POLL_S)

    if reason:
        _say(f"{reason}; stopping {Path(args.cmd[0]).name} (pid {proc.pid}) and its tree")
    family = {**known, **{p.pid: p for p in descendants(guard_pid)}}
    family.pop(proc.pid, None)
    deadline = time.monotonic() + args.grace
    if proc.poll() is None:
        proc.terminate()  # CMD stops its own children: gentler than killing them under it
    else:
        for p in alive(family.values()):  # CMD is gone; nobody else will stop what it left
            with suppress(psutil.Error):
                p.terminate()
    with suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=max(0.0, deadline - time.monotonic()))
    family.update((p.pid, p) for p in descendants(guard_pid))  # anything started while stopping
    family.pop(proc.pid, None)
    left = wait_gone(family.values(), max(0.0, deadline - time.monotonic()))
    if proc.poll() is None:
        _say(f"pid {proc.pid} ignored SIGTERM for {args.grace:g} s; killing it")
        proc.kill()
    if left:
        _say(f"killing {len(left)} process(es) left: {sorted(p.pid for p in left)}")
    kill_all(left)
    proc.wait()
    return _exit_like(proc.returncode)


if __name__ == "__main__":
    sys.exit(main())
