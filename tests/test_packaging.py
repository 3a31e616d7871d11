"""What a person installs works: the wheel carries its resources, the desktop entry opens a notebook."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from tests.conftest import REPO, SAMPLE

DESKTOP = REPO / "packaging" / "synth-studio.desktop"


def _desktop_exec(path: Path) -> str:
    return next(line.split("=", 1)[1] for line in path.read_text().splitlines() if line.startswith("Exec="))


def _run(cmd: list[str], cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, f"{shlex.join(cmd)}\n{proc.stdout}\n{proc.stderr}"
    return proc


@pytest.mark.slow
def test_the_wheel_installs_and_runs_outside_the_repository(tmp_path):
    # Build from a copy of the sources, so the repository's own build/ (stale files from
    # earlier builds) can neither leak into the wheel nor be touched by this test.
    src = tmp_path / "src"
    shutil.copytree(REPO, src, ignore=shutil.ignore_patterns(
        ".venv", ".git", "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache", "*.db", "screenshots"))
    wheels = tmp_path / "wheels"
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q",
          "-w", str(wheels), str(src)], cwd=tmp_path)
    (wheel,) = wheels.glob("synth_studio-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for data in ("resources/quality/default_rules.toml", "resources/quality/default_constitution.toml",
                 "resources/sample/support_topics.csv", "resources/sample/support_ticket.j2",
                 "resources/icons/synth-studio.svg"):
        assert data in names, f"{data} is missing from the wheel"

    # A bare venv with the wheel installed, the test venv's dependencies visible through a
    # .pth file (no network). A path listed in a .pth is not itself scanned for .pth files,
    # so the editable install's finder in .venv stays out and the wheel's copy is imported.
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], cwd=tmp_path)
    py = venv / "bin" / "python"
    site = Path(_run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                     cwd=tmp_path).stdout.strip())
    (site / "_test_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    _run([sys.executable, "-m", "pip", "--python", str(py), "install", "--no-deps", "--no-index", "-q",
          str(wheel)], cwd=tmp_path)

    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    work = tmp_path / "elsewhere"  # not the repository: nothing may be found relative to the cwd
    work.mkdir()
    where = _run([str(py), "-c", ("import app, resources, widgets.launcher as w; "
                                  "from app.core.paths import resources_dir; "
                                  "print(app.__file__); print(w.__file__); print(resources_dir())")],
                 cwd=work, env=env)
    for line in where.stdout.splitlines():
        assert Path(line).is_relative_to(site), f"imported {line}, not the installed wheel's copy"

    studio = str(venv / "bin" / "synth-studio")
    assert _run([studio, "--version"], cwd=work, env=env).stdout.strip() == "synth-studio 0.1.0"
    _run([studio, "new", "nb.db"], cwd=work, env=env)
    _run([studio, "import", "nb.db", str(SAMPLE / "support_topics.csv"), "--output-column", "topic"],
         cwd=work, env=env)
    counts = json.loads(_run([studio, "validate", "nb.db", "--json"], cwd=work, env=env).stdout)
    assert counts and sum(c["passed"] + c["failed"] for c in counts.values()) > 0


def test_version_through_the_launcher(capsys):
    from app import __version__
    from widgets.launcher import main

    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.strip() == f"synth-studio {__version__}"


@pytest.mark.parametrize("desktop", ["repo", "installed"])
def test_the_desktop_entry_opens_the_file_it_is_given(desktop, tmp_path, monkeypatch):
    import widgets.main_window
    from widgets.launcher import main

    entry = DESKTOP
    if desktop == "installed":  # what packaging/install-desktop.sh writes: the same, with an absolute Exec
        fake = tmp_path / "bin" / "synth-studio"
        fake.parent.mkdir()
        fake.write_text("#!/bin/sh\n")
        fake.chmod(0o755)
        data = tmp_path / "xdg-data"
        subprocess.run(["sh", str(REPO / "packaging" / "install-desktop.sh"), str(fake)], check=True,
                       env={**os.environ, "XDG_DATA_HOME": str(data)}, capture_output=True)
        entry = data / "applications" / "synth-studio.desktop"
        assert (data / "icons" / "hicolor" / "scalable" / "apps" / "synth-studio.svg").read_bytes() == \
            (REPO / "resources" / "icons" / "synth-studio.svg").read_bytes()

    opened = []
    monkeypatch.setattr(widgets.main_window, "run_gui", lambda nb=None, sample=False: opened.append(nb) or 0)
    notebook = tmp_path / "my notebook.db"  # a space: the launcher must get one argument
    # what a desktop does with Exec: %f becomes the file (or nothing), then split like a shell
    line = _desktop_exec(entry)
    argv = shlex.split(line.replace("%f", shlex.quote(str(notebook))))
    assert Path(argv[0]).name == "synth-studio"
    assert main(argv[1:]) == 0
    assert shlex.split(line.replace("%f", ""))[1:] == ["gui"]
    assert main(["gui"]) == 0
    assert opened == [str(notebook), None]
