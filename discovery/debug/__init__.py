"""Debug tools that show the index as it is: map tiles, query overlays, the debug map.

Read-side tools, used by ``scripts/debug_tile.py`` and, with ``NEARBY_DEBUG=1``,
by the API's debug map:

- :mod:`discovery.debug.tiles`: tile geometry, the layers' value types, GeoJSON (pure);
- :mod:`discovery.debug.data`: what a tile shows, read from PostGIS and Redis;
- :mod:`discovery.debug.render`: a tile's layers drawn as a PNG;
- :mod:`discovery.debug.reference`: the brute-force scan a query overlay shows;
- :mod:`discovery.debug.overlay`: what one nearby query did;
- :mod:`discovery.debug.views`: the blueprint of ``/debug/…`` and its static files.
"""
