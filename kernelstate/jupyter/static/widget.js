// kernelstate widget view: a cell output live over the Jupyter widget comm (anywidget).
//
// Works wherever a widget manager runs anywidget (JupyterLab / Notebook 7
// without kernelstate's server extension, VS Code, Colab, marimo). The
// kernel's Document is served over the widget's own comm as custom
// messages; stock BokehJS talks to it through a WebSocket-shaped adapter,
// so the Bokeh protocol is the same as on every other transport.
//
// Messages (custom, JSON content + binary buffers), all tagged `ks`:
//   view -> kernel  {ks:"bokehjs"}                 BokehJS is missing in this realm
//                   {ks:"connect", view}           a view wants the Document
//                   {ks:"frames", view, frames}    Bokeh protocol frames ({buffer:i} = i-th buffer)
//                   {ks:"close", view}             the view left the page
//   kernel -> view  {ks:"bokehjs", part, parts}    one chunk of BokehJS (buffers[0])
//                   {ks:"ready", view, token}      the Document is served to `view`
//                   {ks:"frames", view, frames}
//                   {ks:"closed", view, code, reason}
// BokehJS reaches a realm once: the first view asks, later views reuse
// globalThis.Bokeh. Elements are passed by reference (marimo renders into
// a shadow root, where ids are not found).
const REALM = (globalThis.kernelstate = globalThis.kernelstate || {});
const LOAD_TIMEOUT_MS = 120000;

function bokehReady(version) {
  const B = globalThis.Bokeh;
  return B !== undefined && B.version === version && B.embed !== undefined;
}

function evalScript(text) {
  // BokehJS is UMD and attaches to `this`/window; an AMD loader on the page (VS Code,
  // nbclassic) would capture it instead, so hide `define` while it runs.
  const define = globalThis.define;
  globalThis.define = undefined;
  try {
    new Function(text).call(globalThis);
  } finally {
    globalThis.define = define;
  }
}

function loadBokeh(model, version) {
  if (bokehReady(version)) return Promise.resolve(globalThis.Bokeh);
  if (globalThis.Bokeh !== undefined && globalThis.Bokeh.version !== version && !REALM.widgetBokeh) {
    return Promise.reject(new Error(`this page already has BokehJS ${globalThis.Bokeh.version}, the kernel needs ${version}`));
  }
  if (REALM.widgetBokeh) return REALM.widgetBokeh;
  const loading = new Promise((resolve, reject) => {
    const parts = [];
    let got = 0;
    const timer = setTimeout(() => finish(new Error("BokehJS did not arrive from the kernel (is it busy?)")), LOAD_TIMEOUT_MS);
    function finish(err) {
      clearTimeout(timer);
      model.off("msg:custom", onMsg);
      if (err) { REALM.widgetBokeh = null; reject(err); return; }
      resolve(globalThis.Bokeh);
    }
    function onMsg(msg, buffers) {
      if (!msg || msg.ks !== "bokehjs") return;
      if (msg.error) { finish(new Error(msg.error)); return; }
      if (parts[msg.part] === undefined) got += 1;
      parts[msg.part] = buffers[0];
      if (got < msg.parts) return;
      try {
        const blob = new Blob(parts.map((b) => new Uint8Array(b.buffer, b.byteOffset, b.byteLength)));
        blob.text().then((text) => {
          evalScript(text);
          finish(bokehReady(version) ? null : new Error("BokehJS did not start"));
        }, finish);
      } catch (e) { finish(e); }
    }
    model.on("msg:custom", onMsg);
    model.send({ ks: "bokehjs" });
  });
  REALM.widgetBokeh = loading;
  return loading;
}

// A WebSocket-shaped object BokehJS's ClientConnection can use: frames go over the widget comm.
class CommSocket {
  constructor(view) {
    this.view = view;
    this.readyState = 0;
    this.binaryType = "arraybuffer";
    this.onopen = this.onmessage = this.onclose = this.onerror = null;
    this.outbox = [];
    this.buffers = [];
    this.scheduled = false;
    setTimeout(() => { this.readyState = 1; if (this.onopen) this.onopen({}); view.socketOpened(this); }, 0);
  }
  send(frame) {
    if (this.readyState !== 1) return;
    if (typeof frame === "string") this.outbox.push(frame);
    else { this.outbox.push({ buffer: this.buffers.length }); this.buffers.push(frame instanceof ArrayBuffer ? frame : frame.buffer); }
    if (!this.scheduled) {
      // One comm message per batch of frames (a Bokeh message is several frames, sent in one go).
      this.scheduled = true;
      queueMicrotask(() => this.flush());
    }
  }
  flush() {
    this.scheduled = false;
    if (this.outbox.length === 0) return;
    const frames = this.outbox, buffers = this.buffers;
    this.outbox = []; this.buffers = [];
    this.view.model.send({ ks: "frames", view: this.view.id, frames }, undefined, buffers);
  }
  deliver(frame) {
    if (this.readyState === 1 && this.onmessage) this.onmessage({ data: frame });
  }
  close(code, reason) {
    if (this.readyState >= 2) return;
    this.flush();
    this.readyState = 3;
    this.view.socketClosed(this, code || 1000, reason || "");
  }
  closed(code, reason) {
    if (this.readyState === 3) return;
    this.readyState = 3;
    if (this.onclose) this.onclose({ code, reason, wasClean: true });
  }
}
CommSocket.CONNECTING = 0; CommSocket.OPEN = 1; CommSocket.CLOSING = 2; CommSocket.CLOSED = 3;

// BokehJS opens its connection with `new WebSocket(url)`: URLs under this prefix get a CommSocket.
const URL_PREFIX = "ws://kernelstate-widget.invalid/";
function installSocketFactory() {
  if (REALM.widgetSockets) return REALM.widgetSockets;
  const views = new Map();
  const Native = globalThis.WebSocket;
  class KernelstateWebSocket extends Native {
    constructor(url, protocols) {
      const key = String(url).split("?")[0];
      const view = key.startsWith(URL_PREFIX) ? views.get(key) : undefined;
      if (view !== undefined) return view.openSocket();  // eslint-disable-line no-constructor-return
      super(url, protocols);
    }
  }
  globalThis.WebSocket = KernelstateWebSocket;
  REALM.widgetSockets = views;
  return views;
}

function decodeFrames(msg, buffers) {
  return msg.frames.map((f) => {
    if (typeof f === "string") return f;
    const b = buffers[f.buffer];
    return b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength);
  });
}

class View {
  constructor(model, el) {
    this.model = model;
    this.el = el;
    this.id = Math.random().toString(36).slice(2, 10) + Date.now().toString(36);
    this.url = URL_PREFIX + this.id;
    this.socket = null;
    this.pending = [];
    this.gone = false;
    this.onMsg = (msg, buffers) => this.handle(msg, buffers || []);
    this.onLive = () => this.checkLive();
  }

  start() {
    this.el.classList.add("ks-widget");
    const snapshot = document.createElement("div");
    snapshot.className = "ks-widget-static";
    snapshot.innerHTML = this.model.get("snapshot");
    this.el.appendChild(snapshot);
    this.model.on("msg:custom", this.onMsg);
    this.model.on("comm_live_update", this.onLive);
    // A widget manager that exposes its kernel connection (JupyterLab's, VS Code's) says when it restarts.
    const kernel = this.model.widget_manager && this.model.widget_manager.kernel;
    this.kernelSignal = kernel && kernel.statusChanged && typeof kernel.statusChanged.connect === "function" ? kernel.statusChanged : null;
    this.onStatus = (sender, status) => {
      if (status === "restarting" || status === "autorestarting" || status === "dead") this.kernelGone(status);
    };
    if (this.kernelSignal !== null) this.kernelSignal.connect(this.onStatus);
    loadBokeh(this.model, this.model.get("bokeh_version")).then(() => {
      if (this.gone) return;
      installSocketFactory().set(this.url, this);
      this.model.send({ ks: "connect", view: this.id });
    }, (err) => this.banner("Static snapshot: " + (err && err.message ? err.message : err)));
  }

  handle(msg, buffers) {
    if (!msg || msg.view !== this.id) return;
    if (msg.ks === "ready") this.embed(msg);
    else if (msg.ks === "frames") {
      const frames = decodeFrames(msg, buffers);
      if (this.socket === null || this.socket.readyState === 0) this.pending.push(...frames);
      else frames.forEach((f) => this.socket.deliver(f));
    } else if (msg.ks === "closed") {
      this.el.dataset.ksLive = "0";
      if (this.socket !== null) this.socket.closed(msg.code, msg.reason);
      if (!this.gone) this.banner(msg.reason || "The kernel closed this output.");
    }
  }

  embed(msg) {
    const host = document.createElement("div");
    host.className = "ks-widget-roots";
    const roots = [];
    for (let i = 0; i < msg.roots; i++) {
      const r = document.createElement("div");
      host.appendChild(r);
      roots.push(r);
    }
    this.el.appendChild(host);
    globalThis.Bokeh.embed.add_document_from_session(this.url, msg.token, host, roots, false).then(() => {
      const s = this.el.querySelector(":scope > .ks-widget-static");
      if (s !== null) s.style.display = "none";
      this.el.dataset.ksLive = "1";
    }, (err) => this.banner("Not live: " + (err && err.message ? err.message : err)));
  }

  openSocket() {
    this.socket = new CommSocket(this);
    return this.socket;
  }

  socketOpened(socket) {
    const frames = this.pending;
    this.pending = [];
    frames.forEach((f) => socket.deliver(f));
  }

  socketClosed() {
    this.remove();
  }

  checkLive() {
    // ipywidgets marks a view whose kernel went away (restart, shutdown) as disconnected.
    if (this.el.closest(".jupyter-widgets-disconnected") !== null) this.kernelGone("disconnected");
  }

  kernelGone(status) {
    if (this.gone || this.el.dataset.ksLive === "0") return;
    this.el.dataset.ksLive = "0";
    if (this.socket !== null) this.socket.closed(4510, "kernel " + status);
    this.banner(status === "dead" ? "The kernel died: restart it and re-run the cell."
      : "The kernel restarted: re-run the cell.");
  }

  banner(text) {
    const old = this.el.querySelector(":scope > .ks-cell-banner");
    if (old !== null) old.remove();
    const b = document.createElement("div");
    b.className = "ks-cell-banner";
    b.setAttribute("role", "alert");
    b.style.cssText = "margin:4px 0;padding:4px 8px;border-left:3px solid #c0392b;background:#fdecea;color:#611a15;font:13px sans-serif";
    b.textContent = text;
    this.el.insertBefore(b, this.el.firstChild);
  }

  // The output was cleared, re-run or deleted: the kernel drops the output's Document once no view is left.
  remove() {
    if (this.gone) return;
    this.gone = true;
    this.model.off("msg:custom", this.onMsg);
    this.model.off("comm_live_update", this.onLive);
    if (this.kernelSignal !== null) this.kernelSignal.disconnect(this.onStatus);
    if (REALM.widgetSockets) REALM.widgetSockets.delete(this.url);
    try { this.model.send({ ks: "close", view: this.id }); } catch (e) { /* the comm is already gone */ }
  }
}

export default {
  render({ model, el }) {
    const view = new View(model, el);
    view.start();
    return () => view.remove();
  },
};
