#!/usr/bin/env bash
# Tests what users install: builds the sdist and, from it, the wheel (`python -m build`), checks
# that both carry what PoX needs at run time and what Snakemake's plugin catalog reads, installs
# the wheel into a clean virtualenv (no access to this checkout) and runs tests/package/Snakefile
# there with `--executor pox --pox-chain none`, then `pox verify` on the run.
# Usage: scripts/test-package.sh [PYTHON]  (PYTHON builds and hosts the clean virtualenv; the
# build frontend comes from .venv). Work files in build/package/, replaced on every run.
set -euo pipefail
cd "$(dirname "$0")/.."
repo="$PWD"
python="${1:-python3}"
work="$repo/build/package"
rm -rf "$work"
mkdir -p "$work"

echo "== package: building sdist and wheel"
.venv/bin/python -m build --outdir "$work/dist" . >"$work/build.log" 2>&1 || {
  tail -n 30 "$work/build.log" >&2
  exit 1
}
wheel="$(ls "$work"/dist/snakemake_executor_plugin_pox-*.whl)"
sdist="$(ls "$work"/dist/snakemake_executor_plugin_pox-*.tar.gz)"

echo "== package: checking contents of $(basename "$wheel") and $(basename "$sdist")"
"$python" - "$wheel" "$sdist" <<'PY'
import sys
import tarfile
import zipfile
from pathlib import Path

wheel, sdist = sys.argv[1], sys.argv[2]
wheel_names = set(zipfile.ZipFile(wheel).namelist())
with tarfile.open(sdist) as archive:
    root = archive.getnames()[0].split("/")[0]
    sdist_names = {name.removeprefix(root + "/") for name in archive.getnames()}

repo = Path.cwd()
package_data = [
    path.relative_to(repo).as_posix()
    for folder in (
        "pox_executor/chain/artifacts",
        "pox_executor/enclave/verifiers/roots",
        "pox_executor/audit/html_assets",
    )
    for path in sorted((repo / folder).iterdir())
]
wheel_needs = [
    "snakemake_executor_plugin_pox/__init__.py",
    "pox_executor/plugin.py",
    "pox_executor/py.typed",
    *package_data,
]
sdist_needs = [*wheel_needs, "pyproject.toml", "README.md", "docs/intro.md", "docs/further.md"]
problems = [f"wheel lacks {name}" for name in wheel_needs if name not in wheel_names]
problems += [f"sdist lacks {name}" for name in sdist_needs if name not in sdist_names]
metadata = zipfile.ZipFile(wheel).read(
    next(name for name in wheel_names if name.endswith(".dist-info/METADATA"))
).decode()
for field in ("Name: snakemake-executor-plugin-pox", "Keywords:", "Project-URL:", "Classifier:"):
    if field not in metadata:
        problems.append(f"wheel METADATA lacks {field!r}")
if problems:
    sys.exit("package check failed:\n  " + "\n  ".join(problems))
print(f"wheel: {len(wheel_names)} files, sdist: {len(sdist_names)} files, all required present")
PY

echo "== package: installing the wheel into a clean virtualenv"
"$python" -m venv "$work/venv"
"$work/venv/bin/python" -m pip install -q --disable-pip-version-check "$wheel" \
  >"$work/install.log" 2>&1 || { tail -n 30 "$work/install.log" >&2; exit 1; }

echo "== package: running a workflow with --executor pox from the installed package"
run="$work/workflow"
mkdir -p "$run"
cp tests/package/Snakefile "$run/"
cd "$run"
# No PYTHONPATH and a directory outside the checkout: only the installed wheel can be imported.
unset PYTHONPATH
location="$("$work/venv/bin/python" -c 'import snakemake_executor_plugin_pox as p; print(p.__file__)')"
case "$location" in
  "$work/venv/"*) ;;
  *) echo "error: the plugin was imported from $location, not the clean virtualenv" >&2; exit 1 ;;
esac
export XDG_CACHE_HOME="$work/cache"
"$work/venv/bin/snakemake" --executor pox --pox-chain none --cores 2 >"$work/snakemake.log" 2>&1 || {
  tail -n 40 "$work/snakemake.log" >&2
  exit 1
}
expected=$'part 0\npart 1\npart 2\n2\n2\n2'
if [[ "$(cat summary.txt)" != "$expected" ]]; then
  echo "error: summary.txt is not what the workflow should produce:" >&2
  cat summary.txt >&2
  exit 1
fi
"$work/venv/bin/pox" verify --allow-simulated --offline
# the explorer page's template, script and style are package data: they must be in the wheel
"$work/venv/bin/pox" html --allow-simulated --offline -o run.html >/dev/null
grep -q '"format":"pox-html/v1"' run.html || { echo "error: pox html wrote no page" >&2; exit 1; }
echo "== package: ok (wheel installed in a clean virtualenv ran and verified the workflow)"
