"""project/limits.py: the open-file limit the start-up raises for the processes it starts."""

import resource
import subprocess
import sys

import pytest

RAISED_IN_A_CHILD = """
import resource, sys
from project.limits import open_files_raise
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))
wanted = int(sys.argv[1])
got = open_files_raise(wanted)
print(got, resource.getrlimit(resource.RLIMIT_NOFILE)[0], hard)
"""


def raised(wanted: int) -> tuple[int, int, int]:
    """In a child process (this one keeps its limit): what open_files_raise returned, the
    soft limit after it, and the hard limit, from a soft limit of 256."""
    result = subprocess.run(
        [sys.executable, "-c", RAISED_IN_A_CHILD, str(wanted)],
        capture_output=True,
        text=True,
        check=True,
    )
    got, soft, hard = (int(n) for n in result.stdout.split())
    return got, soft, hard


def test_a_low_soft_limit_is_raised_as_far_as_the_hard_limit_allows():
    got, soft, hard = raised(1000)
    assert got == soft == min(1000, hard)


def test_beyond_the_hard_limit_it_stops_at_the_hard_limit():
    if resource.getrlimit(resource.RLIMIT_NOFILE)[1] == resource.RLIM_INFINITY:
        pytest.skip("no hard limit here to stop at")
    got, soft, hard = raised(10**7)
    assert got == soft == hard
