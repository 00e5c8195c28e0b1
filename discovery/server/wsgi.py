"""The WSGI application that ``nearby serve`` hands to gunicorn.

Each worker imports this module itself, after its worker class has set up:
with gevent (the default) the standard library is patched before redis-py and
psycopg are first imported, so they take gevent's sockets from the start. The
settings come from the environment, as ``nearby serve`` checked them.
"""

from __future__ import annotations

from discovery.api.app import create_app

application = create_app()
