"""A daphne process stopped with SIGTERM stops accepting, then closes its WebSockets with
1012 (service restart).

It stops listening first: on a port shared with its siblings (`daphne --fd`, deploy/)
the devices it is about to close would otherwise reconnect to it too, only to be cut
off again moments later; the connections that arrive meanwhile wait in the socket's
backlog for a sibling, or for this process's successor.

daphne's own shutdown cancels every application at once and the reactor then drops the
sockets without a close frame: devices and dashboards see 1006 and wait out their
timeouts. Closing with 1012 first tells them to reconnect at once, to a sibling process
behind the same port (deploy/), and lets each consumer's `disconnect` run, so its meter
is marked offline here before the device marks it online there. Connections that have
not closed after `CLOSE_GRACE_SECONDS` are cancelled as daphne would have.
"""

import asyncio
import logging

from protocol import CLOSE_SERVICE_RESTART

logger = logging.getLogger(__name__)

CLOSE_GRACE_SECONDS = 5.0


def close_websockets_on_shutdown() -> None:
    """Make daphne's shutdown close open WebSockets with 1012 first (a no-op without daphne)."""
    try:
        from daphne.server import Server
        from daphne.ws_protocol import WebSocketProtocol
        from twisted.internet import defer
    except ImportError:
        return
    if getattr(Server, "_meterline_closes_websockets", False):
        return
    kill_all_applications = Server.kill_all_applications

    def close_then_kill(server):
        stop_listening()
        closing = []
        for protocol, details in list(server.connections.items()):
            if isinstance(protocol, WebSocketProtocol) and protocol.state == protocol.STATE_OPEN:
                # Not serverClose(): autobahn lets applications close only with
                # 1000 or 3000-4999; 1012 is the server's own (as daphne sends 1011).
                protocol.sendCloseFrame(code=CLOSE_SERVICE_RESTART)
                instance = details.get("application_instance")
                if instance is not None and not instance.done():
                    closing.append(instance)
        if not closing:
            return kill_all_applications(server)
        logger.info("shutting down: closing %d WebSockets with 1012", len(closing))
        waited = asyncio.ensure_future(asyncio.wait(closing, timeout=CLOSE_GRACE_SECONDS))
        deferred = defer.Deferred.fromFuture(waited)
        deferred.addBoth(lambda _: kill_all_applications(server))
        return deferred

    Server.kill_all_applications = close_then_kill
    Server._meterline_closes_websockets = True


def stop_listening() -> None:
    """Stop accepting connections on every listening port of this process. The port itself
    stays open while another process (a sibling, supervisord, systemd) holds it: daphne
    listens on its own duplicate of an inherited descriptor."""
    from twisted.internet import reactor, tcp

    for reader in reactor.getReaders():
        if isinstance(reader, tcp.Port):
            reader.stopListening()
