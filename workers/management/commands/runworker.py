"""channels' runworker, plus the heartbeat that /healthz counts workers by."""

import threading

from channels.management.commands.runworker import Command as ChannelsRunworker

from workers.heartbeat import heartbeat_start


class Command(ChannelsRunworker):
    def handle(self, *args, **options):
        stop = threading.Event()
        thread = heartbeat_start(stop=stop)
        try:
            super().handle(*args, **options)
        finally:
            stop.set()
            thread.join(timeout=3)
