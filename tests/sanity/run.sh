#!/usr/bin/env bash
# Run `ansible-test sanity` on the collection.
#
# ansible-test needs the collection at a real path ending in ansible_collections/netboot/talos, so
# this copies the work tree's files there (tracked and new, not ignored: uncommitted edits are
# checked too) and runs the sanity tests in the copy. With --committed it copies HEAD instead.
# Other arguments go to ansible-test, e.g. `tests/sanity/run.sh --test validate-modules`.
#
# ansible-test bootstraps pip in each test's virtualenv with a script from ci-files.testing.ansible.com;
# where that host cannot be reached, a stand-in that uses ensurepip and PyPI is put in its cache.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
venv_bin=${VENV_BIN:-$repo/.venv/bin}
python_version=${SANITY_PYTHON:-3.11}

committed=false
if [[ ${1:-} == --committed ]]; then
    committed=true
    shift
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/netboot-talos-sanity.XXXXXX")
trap 'rm -rf "$work"' EXIT
copy=$work/ansible_collections/netboot/talos
mkdir -p "$copy"

if $committed; then
    git -C "$repo" archive HEAD | tar -x -C "$copy"
else
    cd "$repo"
    git ls-files -z --cached --others --exclude-standard |
        while IFS= read -r -d '' path; do
            # a file deleted in the work tree but still in the index is left out
            if [[ -e $path || -L $path ]]; then printf '%s\0' "$path"; fi
        done |
        cpio -0 -pdm --quiet "$copy"
fi
# The symlink that makes the work tree importable as a collection would loop inside the copy.
rm -f "$copy/collections/ansible_collections/netboot/talos"

# Stand-in for get-pip.py, named like the cache entry ansible-test looks for.
pip_version=$("$venv_bin/python" -c '
import types
from ansible_test._internal.python_requirements import get_venv_packages
print(get_venv_packages(types.SimpleNamespace(version="'"$python_version"'"))["pip"])')
get_pip=$HOME/.ansible/test/cache/get_pip_${pip_version//./_}.py
if [[ ! -s $get_pip ]]; then
    mkdir -p "$(dirname "$get_pip")"
    cat >"$get_pip" <<'PY'
# Stand-in for get-pip.py written by netboot.talos tests/sanity/run.sh: the real script comes from
# ci-files.testing.ansible.com, which cannot be reached here. Installs the bundled pip with ensurepip,
# then the requested packages (e.g. pip==24.2) from PyPI; --no-setuptools/--no-wheel as get-pip.py.
import subprocess
import sys

args = sys.argv[1:]
packages = [arg for arg in args if not arg.startswith("-")]
subprocess.check_call([sys.executable, "-m", "ensurepip", "--upgrade"], stdout=subprocess.DEVNULL)
subprocess.check_call([sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check"] + packages)
unwanted = [name for name in ("setuptools", "wheel") if "--no-" + name in args]
if unwanted:
    subprocess.check_call([sys.executable, "-m", "pip", "uninstall", "-q", "-y"] + unwanted)
PY
fi

cd "$copy"
git init -q .
git add -A
"$venv_bin/ansible-test" sanity --python "$python_version" --color no "$@"
