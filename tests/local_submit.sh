#!/usr/bin/env bash
# A stand-in for sbatch in tests: start Snakemake's job script as its own detached
# process and print its process id as the job id. Nothing is shared with the submitting
# Snakemake but the files on disk.
set -euo pipefail
jobscript="${!#}"
nohup bash "$jobscript" > "$jobscript.out" 2>&1 < /dev/null &
echo $!
