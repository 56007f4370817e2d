"""scripts/setup.sh installs once: a second start skips pip while pyproject.toml and the script are unchanged."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def fake_checkout(tmp_path: Path) -> Path:
    """The setup script and pyproject.toml beside a .venv whose python only records how it was called."""
    (tmp_path / "scripts").mkdir()
    shutil.copy(ROOT / "scripts" / "setup.sh", tmp_path / "scripts" / "setup.sh")
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    bin_dir = tmp_path / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "python").write_text(f'#!/bin/sh\necho "$@" >> {tmp_path / "calls.log"}\n')
    (bin_dir / "kdx").write_text("#!/bin/sh\n")
    for tool in ("python", "kdx"):
        (bin_dir / tool).chmod(0o755)
    return tmp_path


def setup(checkout: Path, **env: str) -> list[str]:
    log = checkout / "calls.log"
    log.unlink(missing_ok=True)
    subprocess.run(["bash", "scripts/setup.sh"], cwd=checkout, check=True, env={"PATH": "/usr/bin:/bin", **env})
    return log.read_text().splitlines() if log.exists() else []


def test_setup_installs_once_then_only_when_the_project_changes(tmp_path: Path) -> None:
    checkout = fake_checkout(tmp_path)
    first = setup(checkout)
    assert any("torch==2.13.0" in call for call in first) and any("--editable" in call for call in first)
    assert setup(checkout) == []  # current: nothing to install
    with (checkout / "pyproject.toml").open("a") as handle:
        handle.write("\n# a new dependency\n")
    assert any("--editable" in call for call in setup(checkout))
    assert setup(checkout) == []
    assert any("--editable" in call for call in setup(checkout, KDX_SETUP="always"))
