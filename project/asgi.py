"""ASGI entry point: HTTP, WebSockets, and the named channels runworker serves."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
# Set up Django before importing anything that touches models.
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.urls import re_path  # noqa: E402

from project.redaction import redact_daphne_access_log  # noqa: E402
from project.shutdown import close_websockets_on_shutdown  # noqa: E402
from routing.channels import channel_router  # noqa: E402
from routing.websocket import device_urlpatterns, websocket_urlpatterns  # noqa: E402

redact_daphne_access_log()
close_websockets_on_shutdown()

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        # Sessions and users for dashboards opened from the signed-in pages;
        # DashboardConsumer checks the Origin of those. Devices use tokens, and skip
        # resolving a session and a user they do not have (a thread hop and a few KiB
        # a connection, for fleets of thousands).
        "websocket": URLRouter(
            [
                *device_urlpatterns,
                re_path(r"", AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
            ]
        ),
        "channel": channel_router,
    }
)
