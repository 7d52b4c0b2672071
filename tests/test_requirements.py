"""RecBole missing, or of an unsupported version: one line saying what to install, exit 2, no
traceback, for ``import recbole_ext`` and for the command line. And no ray is ever imported."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def fake_recbole(tmp_path, body: str) -> dict:
    """An environment whose ``import recbole`` finds a stand-in package with ``body``."""
    pkg = tmp_path / "fake" / "recbole"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text(body)
    return dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path / "fake"), ROOT]))


@pytest.mark.parametrize(
    "body,needle",
    [
        ("raise ImportError('no module named recbole')", "RecBole is not installed"),
        ("__version__ = '1.1.1'", "RecBole 1.1.1 is installed, but recbole_ext needs RecBole 1.2.x"),
    ],
)
@pytest.mark.parametrize(
    "command",
    [["-c", "import recbole_ext"], [os.path.join(ROOT, "run_recbole_ext.py"), "--list-models"]],
    ids=["import", "cli"],
)
def test_missing_or_unsupported_recbole_is_one_line(tmp_path, body, needle, command):
    proc = subprocess.run(
        [sys.executable, *command],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=fake_recbole(tmp_path, body),
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("recbole_ext: error: "), proc.stderr
    assert needle in lines[0] and "pip install --no-deps recbole==1.2.1" in lines[0]


def test_the_error_can_be_caught_by_a_library_user(tmp_path):
    code = "try:\n    import recbole_ext\nexcept ImportError as e:\n    print('caught:', type(e).__name__)\n"
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=fake_recbole(tmp_path, "__version__ = '2.0.0'"),
        timeout=120,
    )
    assert proc.returncode == 0 and proc.stdout.strip() == "caught: RecBoleRequirementError", proc.stderr


def test_recbole_ext_never_imports_ray():
    code = "import recbole_ext, recbole_ext.quick_start, recbole_ext.cli, sys; assert 'ray' not in sys.modules"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
