"""The container image's HEALTHCHECK: exits 0 when GET /healthz on this container answers 200.

It asks as a host in ALLOWED_HOSTS: Django answers 400 to any other, and production
lists only its public name there.
"""

import os
import urllib.request

host = os.environ.get("ALLOWED_HOSTS", "localhost").split(",")[0].strip().lstrip(".")
if host in ("", "*"):
    host = "localhost"
url = f"http://127.0.0.1:{os.environ.get('PORT', '8000')}/healthz"
# urlopen raises on anything but a 2xx answer (healthz gives 503 when a part is down).
urllib.request.urlopen(urllib.request.Request(url, headers={"Host": host}), timeout=4)
