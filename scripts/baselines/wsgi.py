"""Baseline (b)'s web process as most Django teams run one: WSGI on a pool of threads
(Twisted's, which daphne already brings, in the role gunicorn's threads usually play),
each thread keeping its database connection from request to request.

    twistd -n --pidfile= web --listen tcp:8002:interface=127.0.0.1 \
        --wsgi scripts.baselines.wsgi.application
"""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "scripts.baselines.settings_wsgi")
application = get_wsgi_application()
