#!/usr/bin/env bash
# Run here (online, any Python): downloads into .whl/ (git-ignored) the wheels that the GPU
# machine lacks: RecBole itself and the three small pure-Python packages it imports that the
# machine's image does not have. Nothing else: torch, numpy, pandas, scipy, scikit-learn,
# tensorboard, tqdm, pyyaml, psutil, tabulate and colorama are already there. No ray.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .whl
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || grep -qx '/.whl/' .gitignore || echo '/.whl/' >> .git/info/exclude
for pkg in recbole==1.2.1 colorlog==4.7.2 texttable==1.7.2 thop==0.1.1.post2209072238; do
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d .whl "$pkg"
done
ls -1 .whl
