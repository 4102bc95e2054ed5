"""The open-file limit Meterline's own start-up raises: every WebSocket is a descriptor.

`make run` (runstack) and the test and bench stacks (devtools/stack.py) raise it for the
processes they start, as scripts/serve does for supervisord (`ulimit -n`) and systemd for
its units (LimitNOFILE). A soft limit of 1024, the default of many shells and CI
runners, would refuse the 1,021st socket of a daphne.
"""

import resource

OPEN_FILES = 65536  # as scripts/serve and deploy/systemd/ take


def open_files_raise(wanted: int = OPEN_FILES) -> int:
    """Raise this process's soft limit to `wanted`, or as far as the hard limit allows
    (the processes it starts inherit it); returns the soft limit now."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):  # above the kernel's own cap (fs.nr_open)
            return soft
        return target
    return soft
