#!/usr/bin/env bash
# Create a virtual environment for Apache Airflow 3.3 (kept apart from tsops' own venv) and install it with
# the pins of airflow/constraints.txt.  Usage: airflow/install.sh VENV_DIR  (PYTHON=/path/to/python3.11 to pick
# the interpreter).  Idempotent: an existing venv with the same Airflow version is left as it is.
set -euo pipefail

if [[ $# -ne 1 ]]; then
  echo "usage: $0 VENV_DIR" >&2
  exit 2
fi
venv=$1
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
python=${PYTHON:-$(command -v python3.11 || command -v python3)}
version=$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
if [[ $version != "3.11" ]]; then
  echo "error: $python is Python $version; the Airflow pins are for Python 3.11 (set PYTHON=/path/to/python3.11)" >&2
  exit 2
fi
want=$(sed -n 's/^apache-airflow==//p' "$here/constraints.txt")
stamp="$venv/.tsops-airflow-$want"
if [[ -f $stamp && -x $venv/bin/airflow ]]; then
  echo "Airflow $want already installed in $venv"
  exit 0
fi

start=$(date +%s)
"$python" -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check -c "$here/constraints.txt" -r "$here/requirements.txt"
"$venv/bin/airflow" version >/dev/null
touch "$stamp"
echo "Airflow $want installed in $venv in $(( $(date +%s) - start )) s"
