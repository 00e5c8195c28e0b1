#!/usr/bin/env bash
# Load the demo city into the index named by DATABASE_URL / REDIS_URL:
# the real shops of central Helsinki (OpenStreetMap), and bikes and chargers
# generated among them and imported through their real feed formats (GBFS 2.3,
# OCPI 2.2.1). The feeds are written fresh at each run, with the current time.
# Then the demo's mini-apps: a catalog derived from the shops' brands and
# names, their branches' mini_app, a simulated week of usage events through a
# Redis Stream, and two users (demo-anna, demo-ben) with favourites and recents.
# A rerun leaves the same state (the week of events is sent only once).
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

# The catalog names icons the demo serves itself (/demo/icons/SLUG.svg).
"$BIN/python" scripts/gen_demo_catalog.py --out "$feeds" \
    --icon-base "${DEMO_ORIGIN:-http://127.0.0.1:8000}/demo/icons/"
"$BIN/nearby" import mini-apps "$feeds/mini_apps.ndjson" --replace
# The branches again, each with its app's slug as mini_app (same source, same ids: an upsert).
"$BIN/nearby" import stores "$feeds/branches.ndjson" --source osm-helsinki \
    --rejects "$feeds/branches.rejects.csv"
"$BIN/python" scripts/gen_demo_usage.py --catalog "$feeds/mini_apps.ndjson" \
    --branches "$feeds/branches.ndjson" --stream nearby-demo:events
"$BIN/nearby" events consume nearby-demo:events --until-empty
