"""Guards of the layering: only ml_platform is installed, and it never imports dagster."""

from __future__ import annotations

import ast
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_wheel_installs_only_ml_platform(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
         "-w", str(tmp_path), str(ROOT)],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("ml_platform-*.whl")
    top_level = {name.split("/")[0] for name in zipfile.ZipFile(wheel).namelist()}
    dist_info = {t for t in top_level if t.endswith(".dist-info")}
    assert top_level - dist_info == {"ml_platform"}, top_level


def test_domain_has_no_dagster_import() -> None:
    offenders = []
    for path in (ROOT / "ml_platform").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [f"{path.relative_to(ROOT)}:{node.lineno} {n}" for n in names
                          if n.split(".")[0].startswith("dagster")]
    assert not offenders, offenders


def test_importing_the_domain_loads_no_dagster() -> None:
    code = (
        "import importlib, pkgutil, sys, ml_platform\n"
        "for m in pkgutil.walk_packages(ml_platform.__path__, 'ml_platform.'):\n"
        "    importlib.import_module(m.name)\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0].startswith('dagster'))\n"
        "print(bad); sys.exit(1 if bad else 0)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_nothing_happens_at_import_of_the_composition_root() -> None:
    """definitions.py must not read project files or touch backends when imported."""
    code = (
        "import os; os.environ['ML_PLATFORM_PROJECTS'] = '/nonexistent'\n"
        "import definitions\n"
        "print('ok')\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0 and "ok" in proc.stdout, proc.stderr
