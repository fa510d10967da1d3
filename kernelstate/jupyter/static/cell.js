// kernelstate cell-output runtime (inlined into every live output).
//
// An output is a static snapshot (plain HTML, shown even in untrusted
// notebooks) followed by this script. When the script runs (trusted output,
// JupyterLab / Notebook 7 / nbclassic), it loads BokehJS from the kernelstate
// server extension and embeds the Document live: BokehJS opens a same-origin
// WebSocket to {baseUrl}kernelstate/kernels/<kernel>/docs/<doc>/<view>/ws,
// which the extension relays to the kernel as comm messages. If that is not
// possible, the Document is rendered from the snapshot in the output and a
// banner says why. Nothing here touches JupyterLab's own kernel connection.
(function () {
  "use strict";
  var ks = (window.kernelstate = window.kernelstate || {});
  var RUNTIME = 1;
  if (ks.cellRuntime && ks.cellRuntime.version >= RUNTIME) return;
  var COMPONENTS = ["bokeh", "bokeh-gl", "bokeh-widgets", "bokeh-tables"];
  var DETACH_GRACE_MS = 5000;
  // ws url (no query) -> the Output waiting for BokehJS to open that socket
  var sockets = (ks.cellSockets = ks.cellSockets || new Map());

  function baseUrl() {
    var el = document.getElementById("jupyter-config-data");
    if (el !== null) {
      try {
        var cfg = JSON.parse(el.textContent);
        if (cfg && typeof cfg.baseUrl === "string") return cfg.baseUrl;
      } catch (e) { /* fall through */ }
    }
    if (document.body && document.body.dataset && document.body.dataset.baseUrl) return document.body.dataset.baseUrl;
    return null;
  }

  // Observe (never alter) WebSockets opened to kernelstate output endpoints so
  // an output can show the reason the server gave when it closes.
  if (!ks.cellSocketsObserved) {
    ks.cellSocketsObserved = true;
    var Native = window.WebSocket;
    window.WebSocket = class extends Native {
      constructor(url, protocols) {
        super(url, protocols);
        var output = sockets.get(String(url).split("?")[0]);
        if (output !== undefined) output.adopt(this);
      }
    };
  }

  var bokehLoading = null;
  function loadBokeh(base, version) {
    if (window.Bokeh !== undefined && window.Bokeh.version === version && window.Bokeh.embed) {
      return Promise.resolve(window.Bokeh);
    }
    if (window.Bokeh !== undefined && window.Bokeh.version !== version && bokehLoading === null) {
      return Promise.reject(new Error("this page already has BokehJS " + window.Bokeh.version + ", the kernel needs " + version));
    }
    if (bokehLoading !== null) return bokehLoading;
    bokehLoading = new Promise(function (resolve, reject) {
      // Some hosts (nbclassic) have an AMD loader; BokehJS must attach to window.
      var define = window.define;
      var i = 0;
      function next() {
        if (i >= COMPONENTS.length) {
          window.define = define;
          if (window.Bokeh === undefined) reject(new Error("BokehJS did not load"));
          else resolve(window.Bokeh);
          return;
        }
        var s = document.createElement("script");
        s.src = base + "kernelstate/static/js/" + COMPONENTS[i] + ".min.js?v=" + encodeURIComponent(version);
        s.onload = function () { i += 1; next(); };
        s.onerror = function () {
          window.define = define;
          bokehLoading = null;
          reject(new Error("could not load BokehJS from the kernelstate server extension (is it enabled? `jupyter server extension list`)"));
        };
        document.head.appendChild(s);
      }
      window.define = undefined;
      next();
    });
    return bokehLoading;
  }

  function randomId() {
    return Math.random().toString(36).slice(2, 10) + Date.now().toString(36);
  }

  function Output(el, cfg) {
    this.el = el;
    this.cfg = cfg;
    this.socket = null;
    this.live = false;
    this.stopping = false;
    this.detachedSince = null;
    this.timer = null;
  }

  Output.prototype.start = function () {
    var base = baseUrl();
    var self = this;
    if (base === null) return;  // not in a Jupyter page (e.g. exported HTML): the snapshot stays
    loadBokeh(base, this.cfg.bokeh_version).then(function () {
      if (!self.cfg.kernel_id) {
        self.renderSnapshot();
        self.banner("Static snapshot: this kernel was not started by this Jupyter server.", false);
        return;
      }
      self.connect();
    }, function (err) {
      self.banner("Static snapshot: " + (err && err.message ? err.message : err), false);
    });
    this.timer = setInterval(function () { self.watch(); }, 1000);
  };

  Output.prototype.freshHost = function () {
    var old = this.el.querySelector(":scope > .ks-cell-roots");
    var host = document.createElement("div");
    host.className = "ks-cell-roots";
    var roots = [];
    for (var i = 0; i < this.cfg.roots.length; i++) {
      var r = document.createElement("div");
      r.className = "ks-cell-root";
      host.appendChild(r);
      roots.push(r);
    }
    if (old !== null) old.replaceWith(host); else this.el.appendChild(host);
    return { host: host, roots: roots };
  };

  Output.prototype.hideStatic = function () {
    var s = this.el.querySelector(":scope > .ks-cell-static");
    if (s !== null) s.style.display = "none";
  };

  Output.prototype.connect = function () {
    var self = this;
    var cfg = this.cfg;
    var base = baseUrl();
    var path = base + "kernelstate/kernels/" + encodeURIComponent(cfg.kernel_id) + "/docs/" +
      encodeURIComponent(cfg.doc_id) + "/" + randomId();
    var url = (location.protocol === "https:" ? "wss:" : "ws:") + "//" + location.host + path + "/ws";
    var target = this.freshHost();
    this.live = false;
    this.stopping = false;
    this.socket = null;
    sockets.set(url, this);
    window.Bokeh.embed.add_document_from_session(url, cfg.token, target.host, target.roots, false).then(function () {
      sockets.delete(url);
      self.live = true;
      self.hideStatic();
      self.clearBanner();
      self.el.dataset.ksLive = "1";
    }, function (err) {
      sockets.delete(url);
      self.renderSnapshot();
      if (!self.bannerShown()) self.banner("Not live: " + (err && err.message ? err.message : err), true);
    });
  };

  Output.prototype.adopt = function (socket) {
    var self = this;
    this.socket = socket;
    socket.addEventListener("close", function (ev) {
      if (self.socket !== socket) return;
      self.live = false;
      self.el.dataset.ksLive = "0";
      if (self.stopping) return;
      if (ev.code >= 4000 && ev.code <= 4999) {
        self.banner(ev.reason || "The kernel closed this output.", true);
      } else {
        self.banner("Lost the connection to the kernel (is the kernel running? Was this output re-run?).", true);
      }
    });
  };

  Output.prototype.renderSnapshot = function () {
    if (this.snapshotShown || !window.Bokeh) return;
    var cfg = this.cfg;
    var target = this.freshHost();
    var roots = {};
    for (var i = 0; i < cfg.roots.length; i++) roots[cfg.roots[i]] = target.roots[i];
    var docs = {};
    docs[cfg.doc_id] = cfg.docs_json;
    var self = this;
    this.snapshotShown = true;
    window.Bokeh.embed.embed_items(docs, [{ docid: cfg.doc_id, roots: roots, root_ids: cfg.roots }]).then(function () {
      self.hideStatic();
    }, function () { /* the plain snapshot stays visible */ });
  };

  Output.prototype.bannerShown = function () {
    return this.el.querySelector(":scope > .ks-cell-banner") !== null;
  };

  Output.prototype.clearBanner = function () {
    var b = this.el.querySelector(":scope > .ks-cell-banner");
    if (b !== null) b.remove();
  };

  Output.prototype.banner = function (text, reconnect) {
    this.clearBanner();
    var b = document.createElement("div");
    b.className = "ks-cell-banner";
    b.setAttribute("role", "alert");
    b.style.cssText = "margin:4px 0;padding:4px 8px;border-left:3px solid #c0392b;background:#fdecea;color:#611a15;font:13px sans-serif;display:flex;gap:8px;align-items:center";
    var span = document.createElement("span");
    span.textContent = text;
    b.appendChild(span);
    if (reconnect) {
      var self = this;
      var button = document.createElement("button");
      button.textContent = "Reconnect";
      button.onclick = function () { self.snapshotShown = false; self.clearBanner(); self.connect(); };
      b.appendChild(button);
    }
    this.el.insertBefore(b, this.el.firstChild);
  };

  // Outputs removed from the page (cell re-run or cleared, notebook closed)
  // close their connection after a grace period; an output re-attached by
  // notebook windowing reconnects.
  Output.prototype.watch = function () {
    var now = Date.now();
    if (this.el.isConnected) {
      if (this.detachedSince !== null && this.stopping) {
        this.detachedSince = null;
        this.snapshotShown = false;
        this.connect();
      }
      this.detachedSince = null;
      return;
    }
    if (this.detachedSince === null) this.detachedSince = now;
    if (!this.stopping && now - this.detachedSince > DETACH_GRACE_MS) {
      this.stopping = true;
      if (this.socket !== null && this.socket.readyState <= 1) this.socket.close(1000, "output removed from the page");
    }
    if (now - this.detachedSince > 600000) {
      clearInterval(this.timer);
      this.banner("Disconnected while hidden.", true);
    }
  };

  ks.cellRuntime = {
    version: RUNTIME,
    mount: function (script, cfg) {
      var el = script !== null ? script.previousElementSibling : null;
      if (el === null || !el.classList.contains("ks-cell") || el.dataset.ksMounted) {
        el = null;
        var all = document.querySelectorAll(".ks-cell");
        for (var i = 0; i < all.length; i++) {
          if (all[i].dataset.ksDoc === cfg.doc_id && !all[i].dataset.ksMounted) { el = all[i]; break; }
        }
      }
      if (el === null) return;
      el.dataset.ksMounted = "1";
      new Output(el, cfg).start();
    },
  };
})();
