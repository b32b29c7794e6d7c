"""Stand-ins for the gcloud Firestore and Pub/Sub emulators, for machines without `gcloud`.

The local stack prefers the official emulators; when they are missing it runs these instead
(docs/architecture.md, "Local stack", says what each stand-in does and does not do):

- Firestore: npm ``@firestore-emulator/server`` (version pinned in local/standins/firestore/
  package.json + package-lock.json), run by local/standins/firestore/server.js on loopback.
- Pub/Sub: Google's ``pstest`` fake from Debian's ``golang-google-cloud-dev``, served by
  local/standins/pstest/main.go, built offline with Debian's Go in GOPATH mode.

``firestore_command(host, port)`` / ``pubsub_command(host, port)`` install or build the stand-in when
needed (idempotent; cached under .local/standins/, or $MEDSPA_STANDINS_DIR) and return the argv that
runs it in the foreground. Each prints "... ready on HOST:PORT" on stdout once it listens and exits 0
on SIGTERM. Both speak gRPC only: a plain HTTP health GET does not work, poll with a TCP connect
(``is_listening``) or wait for the ready line.

``python -m local.standins [firestore|pubsub|all]`` installs ahead of time and prints the commands.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from local.config import REPO_ROOT, is_loopback

SOURCES = REPO_ROOT / "local" / "standins"

# Debian's packages for the Pub/Sub stand-in, and where Debian puts Go library sources.
PUBSUB_APT_PACKAGES = ("golang-go", "golang-google-cloud-dev")
DEBIAN_GOPATH = Path("/usr/share/gocode")
DEBIAN_GO = Path("/usr/lib/go/bin/go")
PSTEST_SOURCE_DIR = DEBIAN_GOPATH / "src" / "cloud.google.com" / "go" / "pubsub" / "pstest"


class StandinUnavailable(RuntimeError):
    """A stand-in cannot be installed or built on this machine; the message says why and what to do."""


def cache_dir() -> Path:
    return Path(os.environ.get("MEDSPA_STANDINS_DIR") or REPO_ROOT / ".local" / "standins")


def _say(message: str) -> None:
    print(f"standins: {message}", file=sys.stderr, flush=True)


def _check_loopback(host: str) -> None:
    if not is_loopback(host):
        raise ValueError(f"stand-ins listen on loopback only, got host {host!r}")


def _check_port(port: int) -> None:
    if not 0 < int(port) < 65536:
        raise ValueError(f"bad port {port!r}")


def _digest(*parts: bytes) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(len(part).to_bytes(8, "big"))
        h.update(part)
    return h.hexdigest()


def _read_stamp(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


@contextlib.contextmanager
def _install_lock() -> Iterator[None]:
    """Serialise installs between processes (the stack and a test run may ask at the same time)."""
    root = cache_dir()
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".install.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _run(argv: list[str], *, what: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> str:
    """Run an install step, output captured; on failure raise StandinUnavailable with its tail."""
    try:
        proc = subprocess.run(
            argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, check=False
        )
    except OSError as exc:
        raise StandinUnavailable(f"{what}: cannot run {argv[0]}: {exc}") from exc
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-25:])
        raise StandinUnavailable(f"{what} failed (exit {proc.returncode}): {' '.join(argv)}\n{tail}")
    return proc.stdout


# --------------------------------------------------------------------------------------- Firestore


def _firestore_dir() -> Path:
    return cache_dir() / "firestore"


def _firestore_manifest() -> list[Path]:
    files = [SOURCES / "firestore" / "package.json"]
    lock = SOURCES / "firestore" / "package-lock.json"
    if lock.exists():
        files.append(lock)
    return files


def _firestore_stamp() -> str:
    return _digest(*(p.name.encode() + b"\0" + p.read_bytes() for p in _firestore_manifest()))


def _firestore_installed() -> bool:
    target = _firestore_dir()
    return (target / "node_modules" / "@firestore-emulator" / "server" / "package.json").is_file() and _read_stamp(
        target / ".stamp"
    ) == _firestore_stamp()


def firestore_available() -> bool:
    """True when the Firestore stand-in is installed, or node and npm are here to install it."""
    return shutil.which("node") is not None and (_firestore_installed() or shutil.which("npm") is not None)


def ensure_firestore() -> Path:
    """Install the pinned @firestore-emulator/server into .local/standins/firestore (once); return it."""
    node = shutil.which("node")
    if node is None:
        raise StandinUnavailable(
            "Firestore stand-in needs Node.js (node and npm on PATH), e.g. `apt-get install -y nodejs npm`"
        )
    target = _firestore_dir()
    if _firestore_installed():
        return target
    with _install_lock():
        if _firestore_installed():  # another process finished it while we waited
            return target
        npm = shutil.which("npm")
        if npm is None:
            raise StandinUnavailable("Firestore stand-in needs npm on PATH to install @firestore-emulator/server")
        started = time.monotonic()
        _say(f"installing the Firestore stand-in into {target} (npm, can take a minute)...")
        target.mkdir(parents=True, exist_ok=True)
        (target / ".stamp").unlink(missing_ok=True)
        (target / "package-lock.json").unlink(missing_ok=True)
        for source in _firestore_manifest():
            shutil.copyfile(source, target / source.name)
        verb = "ci" if (target / "package-lock.json").exists() else "install"
        # --ignore-scripts: the only install script in the tree is protobufjs' version notice.
        _run([npm, verb, "--ignore-scripts", "--no-audit", "--no-fund"], what=f"npm {verb}", cwd=target)
        (target / ".stamp").write_text(_firestore_stamp() + "\n")
        _say(f"Firestore stand-in installed in {time.monotonic() - started:.1f}s")
    return target


def firestore_command(host: str, port: int) -> list[str]:
    """Argv running the Firestore stand-in in the foreground on host:port (installing it first)."""
    _check_loopback(host)
    _check_port(port)
    target = ensure_firestore()
    node = shutil.which("node") or "node"
    return [
        node,
        str(SOURCES / "firestore" / "server.js"),
        "--host",
        host,
        "--port",
        str(int(port)),
        "--modules",
        str(target / "node_modules"),
    ]


# ----------------------------------------------------------------------------------------- Pub/Sub


def _pubsub_dir() -> Path:
    return cache_dir() / "pstest"


def _pubsub_binary() -> Path:
    return _pubsub_dir() / "pstest"


def _go_binary() -> str | None:
    # Debian's Go matches Debian's Go sources; a newer Go found first on PATH would work in GOPATH
    # mode too, but is not what was tested.
    if DEBIAN_GO.is_file():
        return str(DEBIAN_GO)
    return shutil.which("go")


def _go_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        GO111MODULE="off",  # GOPATH mode: imports resolve in Debian's /usr/share/gocode, no downloads
        GOPATH=str(DEBIAN_GOPATH),
        GOFLAGS="",
        GOPROXY="off",
        GOTOOLCHAIN="local",
        CGO_ENABLED="0",
        GOCACHE=str(_pubsub_dir() / "gocache"),
    )
    return env


def _pubsub_stamp(go: str) -> str:
    version = _run([go, "version"], what="go version", env=_go_env()).strip()
    return _digest((SOURCES / "pstest" / "main.go").read_bytes(), version.encode())


def _pubsub_built(go: str | None) -> bool:
    return go is not None and _pubsub_binary().is_file() and _read_stamp(_pubsub_dir() / ".stamp") == _pubsub_stamp(go)


def _can_apt_install() -> bool:
    return shutil.which("apt-get") is not None and hasattr(os, "geteuid") and os.geteuid() == 0


def pubsub_available() -> bool:
    """True when the pstest stand-in is built, or Go + Debian's sources (or root apt-get) can build it."""
    go = _go_binary()
    if go is not None and PSTEST_SOURCE_DIR.is_dir():
        return True
    return _can_apt_install()


def _apt_install(packages: tuple[str, ...]) -> None:
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    argv = ["apt-get", "install", "-y", "--no-install-recommends", *packages]
    try:
        _run(argv, what="apt-get install", env=env)
    except StandinUnavailable:
        _say("apt-get install failed; running apt-get update and trying once more...")
        _run(["apt-get", "update"], what="apt-get update", env=env)
        _run(argv, what="apt-get install", env=env)


def ensure_pubsub() -> Path:
    """Build the pstest main into .local/standins/pstest/pstest (once, apt-installing Go); return it."""
    if _pubsub_built(_go_binary()):
        return _pubsub_binary()
    with _install_lock():
        go = _go_binary()
        if _pubsub_built(go):
            return _pubsub_binary()
        started = time.monotonic()
        if go is None or not PSTEST_SOURCE_DIR.is_dir():
            if not _can_apt_install():
                raise StandinUnavailable(
                    "Pub/Sub stand-in needs Debian's Go and Google Cloud sources: "
                    f"`apt-get install -y {' '.join(PUBSUB_APT_PACKAGES)}` (as root)"
                )
            _say(f"apt-get installing {' '.join(PUBSUB_APT_PACKAGES)} for the Pub/Sub stand-in (can take a minute)...")
            _apt_install(PUBSUB_APT_PACKAGES)
            go = _go_binary()
            if go is None or not PSTEST_SOURCE_DIR.is_dir():
                raise StandinUnavailable(f"after apt-get install, still no go binary or {PSTEST_SOURCE_DIR}")
        target = _pubsub_dir()
        target.mkdir(parents=True, exist_ok=True)
        _say(f"building the Pub/Sub stand-in (pstest) into {target} ...")
        (target / ".stamp").unlink(missing_ok=True)
        partial = target / "pstest.partial"
        _run(
            [go, "build", "-o", str(partial), str(SOURCES / "pstest" / "main.go")],
            what="go build of local/standins/pstest/main.go",
            cwd=SOURCES / "pstest",
            env=_go_env(),
        )
        partial.replace(_pubsub_binary())
        (target / ".stamp").write_text(_pubsub_stamp(go) + "\n")
        _say(f"Pub/Sub stand-in built in {time.monotonic() - started:.1f}s")
    return _pubsub_binary()


def pubsub_command(host: str, port: int) -> list[str]:
    """Argv running the pstest Pub/Sub stand-in in the foreground on host:port (building it first)."""
    _check_loopback(host)
    _check_port(port)
    return [str(ensure_pubsub()), "-host", host, "-port", str(int(port))]


# --------------------------------------------------------------------------------------- readiness


def is_listening(host: str, port: int, timeout: float = 0.5) -> bool:
    """True when something accepts TCP connections on host:port (the stand-ins have no HTTP health)."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def main(argv: list[str] | None = None) -> int:
    which = (argv if argv is not None else sys.argv[1:]) or ["all"]
    if len(which) != 1 or which[0] not in ("firestore", "pubsub", "all"):
        print("usage: python -m local.standins [firestore|pubsub|all]", file=sys.stderr)
        return 2
    host = "127.0.0.1"
    try:
        if which[0] in ("firestore", "all"):
            print(" ".join(firestore_command(host, 8080)))
        if which[0] in ("pubsub", "all"):
            print(" ".join(pubsub_command(host, 8085)))
    except StandinUnavailable as exc:
        print(f"standins: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
