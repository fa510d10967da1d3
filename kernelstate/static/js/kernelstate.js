// kernelstate page runtime: embeds the session's Document with stock BokehJS,
// removes the global loading spinner once it has rendered, and shows a banner
// (with the server's reason) when the connection closes or is refused.
(function () {
  "use strict";
  const ks = (window.kernelstate = window.kernelstate || {});
  ks.banner = function (text, offerReload) {
    let el = document.getElementById("ks-banner");
    if (el === null) {
      el = document.createElement("div");
      el.id = "ks-banner";
      el.className = "ks-banner";
      el.setAttribute("role", "alert");
      document.body.appendChild(el);
    }
    el.textContent = "";
    const span = document.createElement("span");
    span.textContent = text;
    const button = document.createElement("button");
    button.textContent = "Reload";
    button.onclick = function () { window.location.reload(); };
    el.appendChild(span);
    if (offerReload !== false) el.appendChild(button);
    ks.hideSpinner();
  };
  ks.hideSpinner = function () {
    const el = document.getElementById("ks-loading-spinner");
    if (el !== null) el.remove();
  };
  // Observe (not alter) the page's WebSocket closes so the reason the server
  // gives (4000-4999 codes: session expired, kernel died, ...) is visible.
  const NativeWebSocket = window.WebSocket;
  class ObservedWebSocket extends NativeWebSocket {
    constructor(url, protocols) {
      super(url, protocols);
      this.addEventListener("close", function (ev) {
        if (ks.unloading) return;
        if (ev.code >= 4000 && ev.code <= 4999) {
          ks.closedForGood = true;
          ks.banner(ev.reason || "The session ended. Reload the page to start a new one.");
        } else if ((ev.code === 1012 || ks.restarting) && !ks.closedForGood) {
          // The server restarts with a session store: BokehJS reconnects (its first tries may
          // find the port closed) and the session carries on, so there is nothing to reload.
          ks.restarting = true;
          ks.banner("The server is restarting: reconnecting.", false);
        } else if (!ks.closedForGood) {
          ks.banner("Connection to the server lost. Reload the page if it does not come back.");
        }
      });
      this.addEventListener("open", function () {
        ks.restarting = false;
        const el = document.getElementById("ks-banner");
        if (el !== null && !ks.closedForGood) el.remove();
      });
    }
  }
  window.WebSocket = ObservedWebSocket;
  window.addEventListener("beforeunload", function () { ks.unloading = true; });
  // Location sync (kernelstate/location.py): on back/forward, give the server the synced
  // names' values in the URL now shown, through the hidden model's value (a stock TextInput).
  ks.LOCATION_MODEL = "kernelstate-location";
  window.addEventListener("popstate", function () {
    const docs = (window.Bokeh !== undefined && window.Bokeh.documents) || [];
    const params = new URLSearchParams(window.location.search);
    for (const doc of docs) {
      const model = doc.get_model_by_name(ks.LOCATION_MODEL);
      if (model === null || model === undefined) continue;
      let synced;
      try { synced = JSON.parse(model.value); } catch (err) { continue; }
      if (synced === null || typeof synced !== "object") continue;
      const shown = {};
      for (const name of Object.keys(synced)) shown[name] = params.getAll(name);
      model.value = JSON.stringify(shown);
    }
  });
  ks.embed = function (itemsId, appPath, absoluteUrl) {
    function run() {
      const items = JSON.parse(document.getElementById(itemsId).textContent);
      const done = window.Bokeh.embed.embed_items({}, items, appPath, absoluteUrl);
      Promise.resolve(done).then(function () {
        ks.rendered = true;
        window.requestAnimationFrame(ks.hideSpinner);
      }, function (err) {
        ks.banner("Could not load this app: " + err);
      });
    }
    if (window.Bokeh !== undefined) { run(); return; }
    let attempts = 0;
    const timer = setInterval(function () {
      if (window.Bokeh !== undefined) { clearInterval(timer); run(); }
      else if (++attempts > 500) { clearInterval(timer); ks.banner("BokehJS failed to load."); }
    }, 10);
  };
})();
