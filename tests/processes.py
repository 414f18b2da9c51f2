"""Running a command to completion from a test: its output in the failure when it exits non-zero."""

from __future__ import annotations

import subprocess
from pathlib import Path


def run_to_completion(*args: str | Path, cwd: Path, timeout: float,
                      env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run a command (in `env`, or the test's own environment); fail the test with its output unless it exits 0."""
    done = subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout,
                          check=False)
    assert done.returncode == 0, f"{' '.join(map(str, args))} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    return done
