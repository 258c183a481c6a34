"""The wheel carries exactly one shim jar, of the package's own version."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import decom

REPO = Path(__file__).resolve().parents[2]


def test_wheel_holds_exactly_one_jar_of_the_matching_version(tmp_path: Path) -> None:
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                    "-w", str(tmp_path), str(REPO)], check=True, timeout=300)
    (wheel,) = tmp_path.glob("decom-*.whl")
    assert wheel.name.startswith(f"decom-{decom.__version__}-")
    with zipfile.ZipFile(wheel) as z:
        jars = [n for n in z.namelist() if n.endswith(".jar")]
        assert jars == [f"decom/jars/decom-shim-{decom.__version__}.jar"]
        assert "decom/py.typed" in z.namelist()
        inner = tmp_path / "shim.jar"
        inner.write_bytes(z.read(jars[0]))
    with zipfile.ZipFile(inner) as j:
        props = j.read("decom-shim.properties").decode()
        classes = j.namelist()
    assert f"version={decom.__version__}" in props
    assert "io/decom/DecomPlugin.class" in classes and "org/apache/spark/decom/SparkInternals.class" in classes


def test_installed_wheel_finds_its_own_jar(tmp_path: Path) -> None:
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                    "-w", str(tmp_path), str(REPO)], check=True, timeout=300)
    (wheel,) = tmp_path.glob("decom-*.whl")
    target = tmp_path / "site"
    with zipfile.ZipFile(wheel) as z:
        z.extractall(target)
    out = subprocess.run([sys.executable, "-c", "import decom; print(decom.jar_path())"], cwd=tmp_path,
                         env={"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin"}, capture_output=True,
                         text=True, check=True)
    assert out.stdout.strip() == str(target / "decom" / "jars" / f"decom-shim-{decom.__version__}.jar")
