"""py-spy on the live stack: record processes while a benchmark figure runs, and say where
their time went (scripts/bench_fleet.py --profile DIR).

Each process gets a `py-spy record --format raw --nonblocking` (sampling without pausing
it) until stopped; the raw files (collapsed stacks, one "frame;frame;... count" a line)
stay in DIR for flamegraph tools. The summary per process: the functions with the most
samples of their own (self) and Meterline's own functions by the samples under them
(total), as a share of the process's samples.
"""

import re
import shutil
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RATE = 100  # samples a second
TOP = 8
FRAME = re.compile(r"^(?P<function>.*) \((?P<file>[^()]*?)(?::\d+)?\)$")


def py_spy() -> str:
    found = Path(sys.executable).parent / "py-spy"
    if found.exists():
        return str(found)
    on_path = shutil.which("py-spy")
    if on_path is None:
        raise RuntimeError("py-spy is not installed (requirements/test.txt pins it)")
    return on_path


class Spy:
    def __init__(self, pids: dict[str, int], directory: Path) -> None:
        self.pids = pids
        self.directory = directory
        self.recorders: dict[str, subprocess.Popen] = {}

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        for name, pid in self.pids.items():
            command = [py_spy(), "record", "--pid", str(pid), "--rate", str(RATE)]
            command += ["--format", "raw", "--nonblocking", "--output", str(self.raw(name))]
            self.recorders[name] = subprocess.Popen(
                command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )

    def stop(self) -> None:
        """SIGINT: py-spy writes what it sampled and exits."""
        for recorder in self.recorders.values():
            recorder.send_signal(signal.SIGINT)
        for recorder in self.recorders.values():
            try:
                recorder.wait(30)
            except subprocess.TimeoutExpired:
                recorder.kill()

    def raw(self, name: str) -> Path:
        return self.directory / f"{name}.txt"

    def summary(self) -> dict[str, dict]:
        return {
            name: stacks_summary(self.raw(name)) for name in self.pids if self.raw(name).exists()
        }


def short(frame: str) -> tuple[str, str]:
    """("function (file)", file) of a raw frame, the file shortened to its package path."""
    match = FRAME.match(frame)
    function, file = (match["function"], match["file"]) if match else (frame, "")
    for marker in ("site-packages/", "lib/python3."):
        if marker in file:
            file = file.split(marker, 1)[1]
            file = file.split("/", 1)[1] if marker == "lib/python3." else file
            break
    else:
        file = file.removeprefix(str(ROOT) + "/")
    return f"{function} ({file})", file


def ours(file: str) -> bool:
    return not file.startswith("/") and file.split("/", 1)[0] in {
        "metering",
        "billing",
        "workers",
        "project",
        "protocol.py",
        "routing",
        "web",
        "webhooks",
    }


def stacks_summary(path: Path) -> dict:
    """Samples, and the top functions by self and (Meterline's own) by total share."""
    own, total, samples = Counter(), Counter(), 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = [short(frame) for frame in stack.split(";")]
        samples += int(count)
        own[frames[-1][0]] += int(count)
        for label in {label for label, file in frames if ours(file)}:
            total[label] += int(count)
    share = lambda n: round(100 * n / samples, 1) if samples else 0.0  # noqa: E731
    return {
        "samples": samples,
        "self": [(label, share(n)) for label, n in own.most_common(TOP)],
        "ours": [(label, share(n)) for label, n in total.most_common(TOP)],
    }


def profile_rows(profile: dict[str, dict]) -> list[list[str]]:
    rows = []
    for name, summary in sorted(profile.items()):
        rows.append([name, f"{summary['samples']:,} samples", "", ""])
        rows += [["", label, f"{pct:.1f}", ""] for label, pct in summary["self"]]
        rows += [["", f"(ours) {label}", "", f"{pct:.1f}"] for label, pct in summary["ours"]]
    return rows
