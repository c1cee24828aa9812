#!/usr/bin/env bash
# The ROS 2 PyPI wheels were built on a manylinux host and their exported CMake targets name
# that host's Python include dirs (/opt/python/cp3XX-cp3XX/...), which do not exist here and
# make CMake fail at generate time. Point them at this venv's Python and numpy instead.
# Idempotent, no root; re-run after installing more ros-* message packages.
set -euo pipefail
venv=${1:?usage: fix_wheel_cmake.sh VENV_DIR}
py="$venv/bin/python"
py_inc=$("$py" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
np_inc=$("$py" -c 'import numpy; print(numpy.get_include())')
# grep exits 1 when nothing is left to fix (a re-run): that is success here
{ grep -rlZ --include='*.cmake' '/opt/python/' "$venv/share" || true; } | xargs -0 -r sed -i \
  -e "s#/opt/python/cp3[0-9]*-cp3[0-9]*/include/python3\.[0-9]*#${py_inc}#g" \
  -e "s#/opt/python/cp3[0-9]*-cp3[0-9]*/lib/python3\.[0-9]*/site-packages/numpy/_core/include#${np_inc}#g"
