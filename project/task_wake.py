"""Asks the Celery worker for a task right after a commit, never holding up the committer.

A rating worker or a web process that has just committed work for Celery (an outbox
event for the webhooks) calls `task_wake(name)`; a daemon thread of the process sends
the task to the broker. Asks that arrive while a send is under way become one more send,
so a burst of commits costs a few messages. With the broker down a send fails after
kombu's own retries (seconds), in that thread only, and is logged: a wake is a shortcut,
and whatever it would have started the beat sweeper finds in the database anyway.
"""

import atexit
import logging
import os
import threading
import time

logger = logging.getLogger(__name__)

# How long a process that exits waits for its last asks to be sent (manage.py commands).
EXIT_FLUSH_SECONDS = 2.0

_state = threading.Condition()
_wanted: set[str] = set()
_sending = 0
_thread_pid: int | None = None


def task_wake(name: str) -> None:
    """Have the task `name` sent to the broker soon, from this process's wake thread."""
    global _thread_pid
    with _state:
        _wanted.add(name)
        # None yet, or one inherited through a fork, which copies no threads.
        if _thread_pid != os.getpid():
            _thread_pid = os.getpid()
            threading.Thread(target=_send_forever, name="task-wake", daemon=True).start()
        _state.notify_all()


def _send_forever() -> None:
    global _sending
    from project.celery import app

    while True:
        with _state:
            while not _wanted:
                _state.wait()
            names = sorted(_wanted)
            _wanted.clear()
            _sending += 1
        try:
            for name in names:
                app.send_task(name, retry=False)
        except Exception:
            logger.warning("could not wake %s; the beat sweeper will", names, exc_info=True)
        finally:
            with _state:
                _sending -= 1
                _state.notify_all()


def task_wake_flush(timeout: float = EXIT_FLUSH_SECONDS) -> bool:
    """Wait until every ask so far is sent (or failed); False if `timeout` ran out."""
    deadline = time.monotonic() + timeout
    with _state:
        while (_wanted or _sending) and _thread_pid == os.getpid():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            _state.wait(remaining)
    return True


def _after_fork_in_child() -> None:
    # The parent's lock may have been held by its wake thread at the fork: start afresh.
    global _state, _sending, _thread_pid
    _state = threading.Condition()
    _wanted.clear()
    _sending = 0
    _thread_pid = None


os.register_at_fork(after_in_child=_after_fork_in_child)
atexit.register(task_wake_flush)
