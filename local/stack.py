"""The local stack: every emulator, the provider sandbox and each function on 127.0.0.1, in one command.

    python -m local.stack up [--timeout S] | down | status | env

`up` starts what is not running yet (each component its own process group; logs in .local/logs/,
pid files in .local/pids/), waits until each one answers, writes .local/env.sh and prints the URLs.
Run again, it says the stack is already up. `down` stops every process group it started (SIGTERM,
then SIGKILL) and checks that nothing listens on the stack's ports any more. Ports, project and state
dir come from local/config.py (MEDSPA_* variables).

From Python (tests): `up(config)`, `down(config)`, `healthy(config)`; failures raise StackError.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

from local import config as stack_config
from local import runtime
from local.components import Component, Launch, LaunchError, Plan, plan, stack_ports
from local.config import StackConfig
from local.processes import POLL_SECONDS, ProcessDir
from local.standins import is_listening

UP_TIMEOUT_SECONDS = 90.0
LOG_TAIL_LINES = 15


class StackError(RuntimeError):
    """The stack could not be started or stopped; the message names the component and its log."""


def say(message: str) -> None:
    print(message, flush=True)


def _tail(path: Path) -> str:
    try:
        lines = path.read_text(errors="replace").splitlines()[-LOG_TAIL_LINES:]
    except OSError:
        return ""
    return "\n".join("    " + line for line in lines)


def _wait_healthy(processes: ProcessDir, components: list[Component], timeout: float) -> None:
    """Poll each component's probe until all pass; StackError naming the first that dies or times out."""
    started = time.monotonic()
    deadline = started + timeout
    pending = list(components)
    while pending:
        for component in list(pending):
            log = processes.log_path(component.name)
            if processes.running(component.name) is None:
                raise StackError(f"{component.name} exited while starting; see {log}\n{_tail(log)}")
            if component.probe():
                pending.remove(component)
                say(f"  {component.name:<20} healthy after {time.monotonic() - started:4.1f} s")
        if pending and time.monotonic() > deadline:
            component = pending[0]
            log = processes.log_path(component.name)
            raise StackError(
                f"{component.name} not healthy after {timeout:.0f} s ({component.address}); see {log}\n{_tail(log)}"
            )
        if pending:
            time.sleep(POLL_SECONDS)


def _is_up(processes: ProcessDir, component: Component) -> bool:
    running = processes.running(component.name)
    return running is not None and running.key == component.key and component.probe()


def healthy(config: StackConfig) -> bool:
    """True when every component this checkout can run is running and answering."""
    processes = ProcessDir(config.state_dir)
    return all(_is_up(processes, component) for component in plan(config).components)


def up(config: StackConfig, timeout: float = UP_TIMEOUT_SECONDS) -> list[str]:
    """Start whatever is not running; return the names started (empty: it was already up)."""
    the_plan = plan(config)
    for warning in the_plan.skipped:
        say(f"warning: skipping {warning}")
    say(str(runtime.functions_python()))
    processes = ProcessDir(config.state_dir)
    leftovers = [name for name in processes.names() if name not in the_plan.names()]
    restart = {c.name for c in the_plan.components if not _is_up(processes, c)}
    if "pubsub_bridge" in restart and "pubsub" in the_plan.names():
        # A new bridge on the old Pub/Sub emulator gets about half the messages only after the old
        # stream's ack deadline (60 s): the emulator keeps leasing to the dead stream. A fresh emulator
        # (in memory, ~5 s) does not; the bridge recreates its topics and subscriptions.
        restart.add("pubsub")
    restart |= {c.name for c in the_plan.components if restart.intersection(c.depends_on)}
    to_start = [c for c in the_plan.components if c.name in restart]
    stale = leftovers + [c.name for c in to_start if processes.running(c.name) is not None]
    if stale:
        say(f"restarting changed or unhealthy components: {', '.join(stale)}")
        _stop(processes, stale)
    if not to_start:
        say("stack already up")
        _print_urls(config, the_plan)
        return []
    for component in to_start:
        for port in component.ports:
            if is_listening(config.host, port):
                raise StackError(
                    f"port {port} ({component.name}) is in use by a process this stack did not "
                    f"start (see `ss -ltnp | grep :{port}`); stop it or set MEDSPA_PORT_BASE"
                )
    started: list[str] = []
    try:
        for phase in sorted({c.phase for c in the_plan.components}):
            # Prepare everything first (staging, venv, stand-in installs), then start all at once.
            launches = {c.name: _prepare(c) for c in to_start if c.phase == phase}
            for name, launch in launches.items():
                processes.start(name, the_plan.component(name).key, launch.command, env=launch.env, cwd=launch.cwd)
                started.append(name)
            _wait_healthy(processes, [c for c in the_plan.components if c.phase == phase], timeout)
    except BaseException:
        say(f"stack failed to start; stopping what this run started: {', '.join(started) or '-'}")
        _stop(processes, started)
        raise
    _write_env(config)
    _print_urls(config, the_plan)
    return started


def _prepare(component: Component) -> Launch:
    try:
        return component.launch()
    except LaunchError as exc:
        raise StackError(f"{component.name}: {exc}") from exc


def _stop(processes: ProcessDir, names: list[str]) -> None:
    survivors = processes.stop(names)
    if survivors:
        raise StackError(f"could not stop {', '.join(survivors)} (still running after SIGKILL)")


def down(config: StackConfig) -> list[str]:
    """Stop every component with a pid file; StackError if a stack port still listens afterwards."""
    processes = ProcessDir(config.state_dir)
    names = processes.names()
    _stop(processes, names)
    busy = [port for port in stack_ports(config) if is_listening(config.host, port)]
    if busy:
        raise StackError(
            f"after down, something still listens on {config.host} port(s) "
            f"{', '.join(map(str, busy))}: not started by this stack? see `ss -ltnp`"
        )
    return names


def _write_env(config: StackConfig) -> Path:
    path = config.state_dir / "env.sh"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(env_lines(config))
    return path


def env_lines(config: StackConfig) -> str:
    return "".join(f"export {name}={shlex.quote(value)}\n" for name, value in config.function_env().items())


def _print_urls(config: StackConfig, the_plan: Plan) -> None:
    say(f"local stack of project {config.project} (state in {config.state_dir}):")
    for component in the_plan.components:
        say(f"  {component.name:<20} {component.address}")
    say(f"environment: source {config.state_dir / 'env.sh'}   (or: python -m local.stack env)")


def status(config: StackConfig) -> bool:
    """Print each component up/down; True when all are up."""
    the_plan = plan(config)
    processes = ProcessDir(config.state_dir)
    all_up = True
    for component in the_plan.components:
        running = processes.running(component.name)
        if running is None:
            state, all_up = "down", False
        elif running.key != component.key:
            state, all_up = f"changed (pid {running.pid}; `up` restarts it)", False
        elif component.probe():
            state = f"up (pid {running.pid})"
        else:
            state, all_up = f"not answering (pid {running.pid}; see {processes.log_path(component.name)})", False
        say(f"  {component.name:<20} {state:<16} {component.address}")
    for warning in the_plan.skipped:
        say(f"  skipped: {warning}")
    return all_up


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local.stack", description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=("up", "down", "status", "env"))
    parser.add_argument("--timeout", type=float, default=UP_TIMEOUT_SECONDS, help="up: seconds to wait for health")
    parser.add_argument("--check", action="store_true", help="status: exit 1 unless every component is up")
    args = parser.parse_args(argv)
    config = stack_config.load()
    try:
        if args.command == "up":
            up(config, args.timeout)
        elif args.command == "down":
            stopped = down(config)
            say(f"stopped: {', '.join(stopped)}" if stopped else "nothing was running")
            say(f"nothing listens on the stack's ports ({', '.join(map(str, stack_ports(config)))})")
        elif args.command == "status":
            all_up = status(config)
            return 1 if args.check and not all_up else 0
        else:
            sys.stdout.write(env_lines(config))
    except StackError as exc:
        print(f"stack: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
