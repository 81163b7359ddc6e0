"""The wheel carries every package, the templates, default config, CAP schema and migrations.

`.ci/run` goes further: it installs the wheel into a fresh virtualenv and runs the demo from
outside the checkout.
"""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_wheel_contents(tmp_path):
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    wheel = next(tmp_path.glob("warnpub-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    for required in (
        "warnpub/defaults/warnpub.toml",
        "warnpub/cap/cap12.xsd",
        "warnpub/audiences/liyang-divisions.csv",
        "warnpub/channels/__init__.py",
        "warnpub/templates/__init__.py",
        "warnpub/storage/migrations/env.py",
        "warnpub/storage/migrations/script.py.mako",
        "warnpub/storage/migrations/versions/0001_initial.py",
    ):
        assert required in names, f"{required} missing from the wheel"
    # Every Python module of the source tree is in the wheel.
    mapping = {
        "warnpub": "warnpub",
        "channels": "warnpub/channels",
        "audiences": "warnpub/audiences",
        "templates": "warnpub/templates",
        "config": "warnpub/defaults",
    }
    for src, dest in mapping.items():
        for py in (ROOT / src).rglob("*.py"):
            rel = py.relative_to(ROOT / src).as_posix()
            assert f"{dest}/{rel}" in names, (
                f"{src}/{rel} is not packaged (add its package to pyproject.toml)"
            )
    # Every Jinja2 template is in the wheel (sub-folders of templates/ are packages).
    templates = sorted((ROOT / "templates").rglob("*.j2"))
    assert templates, "no templates found under templates/"
    for template in templates:
        rel = template.relative_to(ROOT / "templates").as_posix()
        assert f"warnpub/templates/{rel}" in names, (
            f"templates/{rel} is not packaged (list its folder as a package in pyproject.toml)"
        )
