#!/usr/bin/env bash
# What a machine needs before `make demo` and `make test`, installed with apt (Debian/Ubuntu) where it is
# missing, as root or through sudo: make, curl, shellcheck, Debian's chromium (the browser tests), Python 3.11
# with venv and pip, and either gcloud's Firestore and Pub/Sub emulators with a Java runtime or what the
# stand-ins need (local/standins.py: Node.js and npm, Go and Debian's Go sources of pstest). Then it looks for
# Python 3.12, the runtime Cloud Functions runs (deploy/registry.py RUNTIME), which no Debian bookworm package
# provides: without it, it says so, and fails under CI=true.
#
#     local/prereqs.sh            install what is missing (`make prereqs`; `make test` and `make demo` run it)
#     local/prereqs.sh --check    say what is missing, install nothing; exit 1 when something is
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive

check_only=false
case "${1:-}" in
  "") ;;
  --check) check_only=true ;;
  *) echo "usage: $0 [--check]" >&2; exit 2 ;;
esac

say() { printf '\n== %s\n' "$*"; }

sudo_if_needed() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

python_ok() {
  local py
  py=$(command -v python3.11 || command -v python3 || true)
  [ -n "$py" ] && "$py" -c 'import sys, ensurepip, venv; sys.exit(sys.version_info < (3, 11))' 2>/dev/null
}

gcloud_emulators_ok() {
  # The official emulators need gcloud's emulator components and a Java runtime.
  local gcloud root
  gcloud=$(command -v gcloud || true)
  [ -n "$gcloud" ] || return 1
  root=$(dirname "$(dirname "$(readlink -f "$gcloud")")")
  [ -d "$root/platform/cloud-firestore-emulator" ] && [ -d "$root/platform/pubsub-emulator" ]
}

missing=()
command -v make >/dev/null || missing+=(make)
command -v curl >/dev/null || missing+=(curl ca-certificates)
command -v shellcheck >/dev/null || missing+=(shellcheck)
# Headless browser tests (the report email's screenshot, the local console) drive Debian's chromium.
command -v chromium >/dev/null || missing+=(chromium)
python_ok || missing+=(python3 python3-venv python3-pip)
if gcloud_emulators_ok; then
  command -v java >/dev/null || missing+=(default-jre-headless)
else
  # Stand-ins (local/standins.py): Firestore on Node (npm package), Pub/Sub built from Debian's Go sources.
  echo "gcloud emulators not found: the stack will use the stand-ins"
  command -v node >/dev/null || missing+=(nodejs)
  command -v npm >/dev/null || missing+=(npm)
  [ -x /usr/lib/go/bin/go ] || missing+=(golang-go)
  [ -d /usr/share/gocode/src/cloud.google.com/go/pubsub/pstest ] || missing+=(golang-google-cloud-dev)
fi

if [ ${#missing[@]} -eq 0 ]; then
  :
elif [ "$check_only" = true ]; then
  echo "missing: ${missing[*]} (local/prereqs.sh installs them)"
  exit 1
elif [ "$(id -u)" -ne 0 ] && ! command -v sudo >/dev/null; then
  echo "prereqs: cannot install ${missing[*]}: not root and no sudo; as root: apt-get install ${missing[*]}" >&2
  exit 1
else
  say "installing ${missing[*]}"
  sudo_if_needed apt-get update -q
  sudo_if_needed apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# The deployed runtime's Python, for .venv-312 (make venv-runtime). No registry here has one to install, so
# this only looks; without one, local/runtime.py says what it tried (skipped, or FAILED under CI=true).
if python_ok; then
  runtime=$("$(command -v python3.11 || command -v python3)" -m local.runtime interpreter)
  if [ -n "$runtime" ]; then echo "the deployed runtime's Python: $runtime"; fi
fi
