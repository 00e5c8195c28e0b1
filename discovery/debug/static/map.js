// The nearby debug map: index tiles rendered by the API, and a nearby query on each click.
// No base map: the tiles draw the H3 cells and the entities themselves.
(function () {
  "use strict";

  const page = new URLSearchParams(window.location.search);
  const start = {
    lat: parseFloat(page.get("lat") || "60.170"),
    lng: parseFloat(page.get("lng") || "24.943"),
    zoom: parseFloat(page.get("zoom") || "14"),
  };
  const form = document.getElementById("params");
  const list = document.getElementById("results");
  const status = document.getElementById("status");
  let markers = [];
  let serverConfig = { nearby: false };

  function tileUrl() {
    const diff = form.elements.diff.checked ? "?diff=1" : "";
    return window.location.origin + "/debug/tiles/{z}/{x}/{y}.png" + diff;
  }

  const emptyCollection = { type: "FeatureCollection", features: [] };
  const map = new maplibregl.Map({
    container: "map",
    center: [start.lng, start.lat],
    zoom: start.zoom,
    maxZoom: 22,
    attributionControl: false,
    style: {
      version: 8,
      sources: {
        index: { type: "raster", tiles: [tileUrl()], tileSize: 512, maxzoom: 22 },
        overlay: { type: "geojson", data: emptyCollection },
      },
      layers: [
        { id: "background", type: "background", paint: { "background-color": "#f4f3ef" } },
        { id: "index", type: "raster", source: "index", paint: { "raster-opacity": 0.85 } },
        {
          id: "covered", type: "line", source: "overlay",
          filter: ["==", ["get", "layer"], "covered"],
          paint: { "line-color": "#00a0c8", "line-width": 2 },
        },
        {
          id: "circle", type: "line", source: "overlay",
          filter: ["==", ["get", "layer"], "query"],
          paint: { "line-color": "#141414", "line-width": 2 },
        },
        {
          id: "candidates", type: "circle", source: "overlay",
          filter: ["==", ["get", "layer"], "candidates"],
          paint: {
            "circle-radius": 6, "circle-color": "rgba(0,0,0,0)",
            "circle-stroke-color": "#141414", "circle-stroke-width": 1,
          },
        },
      ],
    },
  });
  map.addControl(new maplibregl.NavigationControl({ showCompass: false }), "top-left");

  function setStatus(text, isError) {
    status.textContent = text;
    status.className = isError ? "error" : "";
  }

  function queryParams(lngLat) {
    const params = new URLSearchParams({
      lat: lngLat.lat.toFixed(7),
      lng: lngLat.lng.toFixed(7),
      radius: form.elements.radius.value,
      sort: form.elements.sort.value,
      limit: form.elements.limit.value,
    });
    if (form.elements.kinds.value) params.set("kinds", form.elements.kinds.value);
    return params;
  }

  async function getJson(url) {
    const response = await fetch(url, { headers: { Accept: "application/json" } });
    const body = await response.json();
    if (!response.ok) {
      const error = (body && body.error) || {};
      throw new Error((error.param ? error.param + ": " : "") + (error.message || response.status));
    }
    return body;
  }

  // Results of GET /v1/nearby, or of the overlay's ranked layer where the API has no /v1/nearby.
  async function rankedResults(params, overlay) {
    if (serverConfig.nearby) {
      const body = await getJson("/v1/nearby?" + params.toString());
      return { source: body.source, items: body.results };
    }
    const items = overlay.features
      .filter((f) => f.properties.layer === "results")
      .map((f) => ({
        id: f.properties.id, kind: f.properties.kind, name: "",
        lat: f.geometry.coordinates[1], lng: f.geometry.coordinates[0],
      }));
    return { source: "overlay", items: items };
  }

  function clearMarkers() {
    markers.forEach((marker) => marker.remove());
    markers = [];
  }

  function showResults(items) {
    clearMarkers();
    list.replaceChildren();
    items.forEach((item, index) => {
      const rank = index + 1;
      const element = document.createElement("div");
      element.className = "rank-marker";
      element.textContent = String(rank);
      markers.push(new maplibregl.Marker({ element: element }).setLngLat([item.lng, item.lat]).addTo(map));
      const entry = document.createElement("li");
      entry.dataset.id = item.id;
      const distance = item.distance_m !== undefined ? Math.round(item.distance_m) + " m" : "";
      const score = item.score !== undefined ? "score " + item.score.toFixed(3) : "";
      entry.innerHTML = "<b></b> <span class=meta></span>";
      entry.firstChild.textContent = item.name || item.id;
      entry.lastChild.textContent = [item.kind, distance, score, item.id].filter(Boolean).join(" · ");
      entry.addEventListener("click", () => map.easeTo({ center: [item.lng, item.lat] }));
      list.appendChild(entry);
    });
  }

  async function runQuery(lngLat) {
    const params = queryParams(lngLat);
    document.body.dataset.query = params.toString();
    document.body.dataset.state = "querying";
    setStatus("querying…");
    try {
      const overlay = await getJson("/debug/query?" + params.toString());
      map.getSource("overlay").setData(overlay);
      const ranked = await rankedResults(params, overlay);
      showResults(ranked.items);
      const candidates = overlay.features.filter((f) => f.properties.layer === "candidates").length;
      setStatus(ranked.items.length + " results of " + candidates + " candidates (" + ranked.source + ")");
      document.body.dataset.state = "results";
    } catch (error) {
      setStatus(String(error.message || error), true);
      document.body.dataset.state = "error";
    }
  }

  form.elements.diff.addEventListener("change", () => map.getSource("index").setTiles([tileUrl()]));
  map.on("click", (event) => runQuery(event.lngLat));
  map.on("load", async () => {
    try {
      serverConfig = await getJson("/debug/config.json");
    } catch (error) {
      setStatus("no server configuration: " + error.message, true);
    }
    document.body.dataset.state = "ready";
  });
  window.debugMap = { map: map, runQuery: runQuery };
})();
