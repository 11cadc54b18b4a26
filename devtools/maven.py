"""Java programs fetched from Maven Central: `mvn dependency:copy-dependencies` with progress lines.

Kafka and Druid are run from the jars Maven resolves for a small POM under devtools/ rather than
from release tarballs, because Maven Central is the one Java source every machine of the project
reaches. Resolving takes a while the first time (Druid: a few hundred artifacts), so each copy
prints a line every ten downloads, and a marker file named after the version and the POM's mtime
makes later fetches instant until the POM changes.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path


def pom_property(pom: Path, name: str) -> str:
    """A `<properties>` value of a POM, e.g. the version it pins (read as text: no Maven start-up)."""
    match = re.search(rf"<{re.escape(name)}>([^<]+)</{re.escape(name)}>", pom.read_text())
    assert match, f"{pom} has no <{name}> property"
    return match.group(1)


class MavenFetch:
    """Fill folders under `cache_dir` with the runtime jars of `pom` (or of one of its profiles)."""

    def __init__(self, tag: str, pom: Path, cache_dir: Path, version: str, retry_hint: str) -> None:
        self.tag = tag
        self.pom = pom
        self.cache_dir = cache_dir
        self.version = version
        self.retry_hint = retry_hint
        self.downloaded = 0

    @property
    def marker(self) -> Path:
        return self.cache_dir / f".complete-{self.version}-{self.pom.stat().st_mtime_ns}"

    @property
    def done(self) -> bool:
        return self.marker.exists()

    def copy(self, output_dir: Path, profile: str | None = None) -> None:
        """Replace `output_dir` with the runtime-scope jars; SystemExit with Maven's output if it fails."""
        if shutil.which("mvn") is None:
            raise SystemExit("Maven (mvn) is not on PATH; install it (apt-get install maven) and retry.")
        if output_dir.exists():
            shutil.rmtree(output_dir)
        command = [
            "mvn", "-B", "-f", str(self.pom), "dependency:copy-dependencies",
            f"-DoutputDirectory={output_dir}", "-DincludeScope=runtime",
        ]
        if profile:
            command.append(f"-P{profile}")
        output: list[str] = []
        with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as mvn:
            assert mvn.stdout is not None
            for line in mvn.stdout:
                output.append(line)
                if "Downloaded from" in line:
                    self.downloaded += 1
                    if self.downloaded % 10 == 0:
                        print(f"[{self.tag}]   {self.downloaded} artifacts downloaded ...", flush=True)
        if mvn.returncode != 0:
            sys.stdout.write("".join(output[-40:]))
            raise SystemExit(f"[{self.tag}] Maven could not resolve the jars (output above); check network "
                             f"access to Maven Central and retry {self.retry_hint}.")

    def finish(self, *folders: Path) -> None:
        """Say what is there and write the completion marker (dropping older versions' markers)."""
        jars = [jar for folder in folders for jar in folder.rglob("*.jar")]
        size_mb = sum(jar.stat().st_size for jar in jars) / 1e6
        print(f"[{self.tag}] {len(jars)} jars ready ({size_mb:.0f} MB, {self.downloaded} downloaded now)", flush=True)
        for old in self.cache_dir.glob(".complete-*"):
            old.unlink()
        self.marker.touch()
