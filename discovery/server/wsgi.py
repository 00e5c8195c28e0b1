"""The WSGI application that ``nearby serve`` hands to gunicorn.

Each worker imports this module itself, after its worker class has set up:
with gevent (the default) the standard library is patched before redis-py and
psycopg are first imported, so they take gevent's sockets from the start. The
settings come from the environment, as ``nearby serve`` checked them.

Once the app is made, everything it holds is frozen out of the garbage
collector's sight (``gc.freeze``): a full collection would otherwise walk the
hundreds of thousands of objects of the app and its libraries, some ten
milliseconds in which none of the worker's requests moves, and a batch of
10,000 events allocates enough to start one.
"""

from __future__ import annotations

import gc

from discovery.api.app import create_app

application = create_app()
gc.freeze()
