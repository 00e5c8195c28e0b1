#!/usr/bin/env bash
# Load the demo city into the index named by DATABASE_URL / REDIS_URL:
# the real shops of central Helsinki (OpenStreetMap), and bikes and chargers
# generated among them and imported through their real feed formats (GBFS 2.3,
# OCPI 2.2.1). The feeds are written fresh at each run, with the current time.
set -euo pipefail
BIN=${BIN:-.venv/bin}
feeds=$(mktemp -d)
trap 'rm -rf "$feeds"' EXIT

# The upgrade builds the hot index when Redis holds none; the imports fill it.
"$BIN/nearby" db upgrade
# Exit 1 means some points were rejected (unusable ones of the extract): the rest is loaded.
"$BIN/nearby" import stores data/helsinki_center_pois.geojson --source osm-helsinki \
    --replace --rejects "$feeds/shops.rejects.csv" || [ $? -eq 1 ]
"$BIN/python" scripts/gen_demo_feeds.py --out "$feeds" >/dev/null
"$BIN/nearby" import gbfs "$feeds/gbfs"
"$BIN/nearby" import chargers "$feeds/ocpi_locations.json" --format ocpi
