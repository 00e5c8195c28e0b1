#!/usr/bin/env bash
# Print what to try once the demo API is up.
host=${1:-127.0.0.1}
port=${2:-8000}
base="http://$host:$port"
cat <<TEXT

nearby demo: central Helsinki, serving on $base  (Ctrl-C stops it)

  curl '$base/v1/nearby?lat=60.1699&lng=24.9384&radius=500'
  curl '$base/v1/nearby?lat=60.1699&lng=24.9384&radius=300&kinds=bike&available=true&sort=distance'
  curl '$base/v1/nearby?lat=60.1699&lng=24.9384&radius=1000&group=mini_app&limit=5'
  curl '$base/v1/nearby?lat=60.1699&lng=24.9384&radius=800&category=cafe&open_now=true&explain=true'
  curl -H 'Accept: application/geo+json' '$base/v1/nearby?lat=60.1699&lng=24.9384&radius=400'
  curl '$base/readyz'
  open $base/debug/map    (the debug map)
  open $base/demo         (the pull-down screen: demo-anna, demo-ben)

TEXT
