// The pull-down screen of the demo: GET /v1/discover for the map's point (and the picked user),
// its four lists, and an app's nearest branches (GET /v1/mini-apps/<slug>) on a tap; a search box
// (q, debounced) and, with a user picked, a favourite toggle in the app's panel.
(function () {
  "use strict";

  const page = new URLSearchParams(window.location.search);
  const point = {
    lat: parseFloat(page.get("lat") || "60.1699"),
    lng: parseFloat(page.get("lng") || "24.9384"),
  };
  const radius = page.get("radius") || "1500";
  const limit = page.get("limit") || "8";
  const picker = document.getElementById("user");
  const status = document.getElementById("status");
  const detail = document.getElementById("detail");
  const search = document.getElementById("search");
  const favorite = document.getElementById("favorite");
  const lists = ["recent", "favorites", "nearby", "popular"];
  let apiKey = null;
  let branchMarkers = [];
  let current = null; // the last answer of /v1/discover shown
  let asked = 0; // the number of the last /v1/discover asked: only its answer is shown
  let typing = null;

  const map = new maplibregl.Map({
    container: "map",
    center: [point.lng, point.lat],
    zoom: parseFloat(page.get("zoom") || "15.5"),
    maxZoom: 20,
    attributionControl: false,
    style: {
      version: 8,
      sources: {
        index: { type: "raster", tiles: [window.location.origin + "/debug/tiles/{z}/{x}/{y}.png"],
                 tileSize: 512, maxzoom: 22 },
      },
      layers: [
        { id: "background", type: "background", paint: { "background-color": "#efeee9" } },
        { id: "index", type: "raster", source: "index", paint: { "raster-opacity": 0.3 } },
      ],
    },
  });
  const hereElement = document.createElement("div");
  hereElement.className = "here";
  const here = new maplibregl.Marker({ element: hereElement }).setLngLat([point.lng, point.lat]).addTo(map);

  function setStatus(text, isError) {
    status.textContent = text;
    status.className = isError ? "error" : "";
  }

  function headers() {
    const wanted = { Accept: "application/json" };
    if (apiKey) wanted["X-API-Key"] = apiKey;
    return wanted;
  }

  async function request(url, method) {
    const response = await fetch(url, { method: method || "GET", headers: headers() });
    const body = response.status === 204 ? null : await response.json();
    if (!response.ok) {
      const error = (body && body.error) || {};
      throw new Error((error.param ? error.param + ": " : "") + (error.message || response.status));
    }
    return body;
  }

  const getJson = (url) => request(url, "GET");

  function distanceText(metres) {
    if (metres === null || metres === undefined) return "not near";
    return metres < 1000 ? Math.round(metres) + " m" : (metres / 1000).toFixed(1) + " km";
  }

  // The popularity a nearby or popular item ranked by (listed plus usage now), when any.
  function usageText(popularity) {
    return popularity >= 0.5 ? " · ↑" + Math.round(popularity) : "";
  }

  // One list item: {slug, name, icon, distance, usage} whichever list it comes from.
  function entryOf(item, listName) {
    if (listName === "recent" || listName === "favorites") {
      return { slug: item.slug, name: item.name || item.slug, icon: item.icon_url,
               distance: item.nearest ? item.nearest.distance_m : null };
    }
    const app = item.app || {};
    return { slug: item.mini_app || "", id: item.id, name: app.name || item.mini_app || item.name || item.id,
             icon: app.icon_url, distance: item.distance_m, lat: item.lat, lng: item.lng,
             usage: item.popularity_now };
  }

  function iconElement(url) {
    if (!url) {
      const blank = document.createElement("span");
      blank.className = "blank";
      return blank;
    }
    const image = document.createElement("img");
    image.alt = "";
    image.src = url;
    return image;
  }

  function renderList(listName, items) {
    const list = document.querySelector("#" + listName + " ul");
    list.replaceChildren();
    items.map((item) => entryOf(item, listName)).forEach((entry) => {
      const li = document.createElement("li");
      li.dataset.slug = entry.slug;
      if (entry.id) li.dataset.id = entry.id;
      const name = document.createElement("span");
      name.className = "name";
      name.textContent = entry.name;
      const distance = document.createElement("span");
      distance.className = "distance";
      distance.textContent = distanceText(entry.distance) + usageText(entry.usage);
      li.append(iconElement(entry.icon), name, distance);
      li.addEventListener("click", () => (entry.slug ? showApp(entry.slug) : map.easeTo({ center: [entry.lng, entry.lat] })));
      list.appendChild(li);
    });
    if (!items.length) {
      const empty = document.createElement("li");
      empty.className = "empty";
      const mine = listName === "recent" || listName === "favorites";
      empty.textContent = mine ? (picker.value ? "nothing here" : "pick a user") : (searched() ? "no match" : "nothing here");
      list.appendChild(empty);
    }
  }

  function discoverParams() {
    const params = new URLSearchParams({
      lat: point.lat.toFixed(7), lng: point.lng.toFixed(7), radius: radius, limit: limit,
    });
    if (picker.value) params.set("user", picker.value);
    if (searched()) params.set("q", searched());
    return params;
  }

  function searched() {
    return search.value.trim();
  }

  async function load() {
    const params = discoverParams();
    const number = ++asked;
    document.body.dataset.query = params.toString();
    document.body.dataset.state = "querying";
    setStatus("loading…");
    try {
      const body = await getJson("/v1/discover?" + params.toString());
      if (number !== asked) return;
      current = body;
      lists.forEach((name) => renderList(name, body[name]));
      setStatus("within " + radius + " m · " + body.sources.nearby);
      document.body.dataset.state = detail.hidden ? "results" : "detail";
    } catch (error) {
      if (number !== asked) return;
      setStatus(String(error.message || error), true);
      document.body.dataset.state = "error";
    }
  }

  // The panel's toggle: whether the app is among the user's favourites of the last answer.
  function showFavorite() {
    const slug = detail.dataset.slug;
    const held = Boolean(current && current.favorites.some((item) => item.slug === slug));
    favorite.hidden = !picker.value || !apiKey;
    favorite.dataset.favorite = String(held);
    favorite.textContent = held ? "★ In my mini-apps" : "☆ Add to my mini-apps";
  }

  async function toggleFavorite() {
    const url = "/v1/users/" + encodeURIComponent(picker.value) + "/favorites/" + encodeURIComponent(detail.dataset.slug);
    favorite.disabled = true;
    document.body.dataset.state = "querying";
    try {
      await request(url, favorite.dataset.favorite === "true" ? "DELETE" : "PUT");
      await load();
    } catch (error) {
      setStatus(String(error.message || error), true);
      document.body.dataset.state = "error";
    }
    favorite.disabled = false;
    showFavorite();
  }

  function clearBranches() {
    branchMarkers.forEach((marker) => marker.remove());
    branchMarkers = [];
  }

  function showBranches(branches) {
    clearBranches();
    const list = document.getElementById("branches");
    list.replaceChildren();
    const bounds = new maplibregl.LngLatBounds([point.lng, point.lat], [point.lng, point.lat]);
    branches.forEach((branch, index) => {
      const element = document.createElement("div");
      element.className = "branch-marker";
      element.textContent = String(index + 1);
      branchMarkers.push(new maplibregl.Marker({ element: element }).setLngLat([branch.lng, branch.lat]).addTo(map));
      bounds.extend([branch.lng, branch.lat]);
      const li = document.createElement("li");
      li.dataset.id = branch.id;
      li.innerHTML = "<span class=name></span> <span class=meta></span>";
      li.firstChild.textContent = branch.name || branch.id;
      const attrs = branch.attrs || {};
      const street = [attrs.addr_street, attrs.addr_housenumber].filter(Boolean).join(" ");
      li.lastChild.textContent = [distanceText(branch.distance_m), street].filter(Boolean).join(" · ");
      list.appendChild(li);
    });
    if (branches.length) map.fitBounds(bounds, { padding: 40, maxZoom: 17, duration: 0 });
  }

  async function showApp(slug) {
    document.body.dataset.state = "querying";
    try {
      const params = new URLSearchParams({ lat: point.lat.toFixed(7), lng: point.lng.toFixed(7), radius: radius, limit: "5" });
      const body = await getJson("/v1/mini-apps/" + encodeURIComponent(slug) + "?" + params.toString());
      detail.querySelector("h2").textContent = body.app.name || slug;
      detail.querySelector("img").src = body.app.icon_url || "";
      detail.querySelector(".description").textContent = body.app.description || "";
      detail.dataset.slug = slug;
      showFavorite();
      showBranches(body.branches);
      detail.hidden = false;
      document.body.dataset.state = "detail";
    } catch (error) {
      setStatus(String(error.message || error), true);
      document.body.dataset.state = "error";
    }
  }

  function closeApp() {
    detail.hidden = true;
    clearBranches();
    document.body.dataset.state = "results";
  }

  function moveTo(lngLat) {
    point.lat = lngLat.lat;
    point.lng = lngLat.lng;
    here.setLngLat([point.lng, point.lat]);
    closeApp();
    return load();
  }

  document.getElementById("back").addEventListener("click", closeApp);
  picker.addEventListener("change", () => { closeApp(); load(); });
  favorite.addEventListener("click", toggleFavorite);
  search.addEventListener("input", () => {
    clearTimeout(typing);
    typing = setTimeout(load, 250);
  });
  map.on("click", (event) => moveTo(event.lngLat));
  map.on("load", async () => {
    try {
      const config = await getJson("/demo/config.json");
      apiKey = config.api_key;
      config.users.forEach((user) => picker.add(new Option(user, user)));
      if (!apiKey) {
        picker.disabled = true;
        setStatus("no API key (NEARBY_API_KEYS): no users");
      }
      if (page.get("user")) picker.value = page.get("user");
    } catch (error) {
      setStatus("no demo configuration: " + error.message, true);
    }
    await load();
  });
  window.demo = { map: map, load: load, moveTo: moveTo, showApp: showApp, point: point };
})();
