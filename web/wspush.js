/*
 * wspush.js: the browser client of wspush (wire protocol v1 and the v1.1
 * recovery of issue 11, docs/protocol.md).
 *
 * No dependencies. Works as a classic script (<script src="/wspush.js">) and as
 * a side-effect module (import "/wspush.js"); both set globalThis.WSPush.
 * For a named ES import use /wspush.mjs, which re-exports it.
 *
 *   const push = new WSPush("wss://example.com/ws");
 *   push.subscribe("news", (data, msg) => console.log(msg.topic, msg.seq, data));
 *
 * Events (client.on(name, fn) gets the detail; addEventListener gets a
 * CustomEvent with .detail): state, open, close, error, push, subscribed,
 * unsubscribed, reconnecting, recovered, unrecovered; with auth (v1.1) also
 * refreshed and denied. See docs/client.md.
 *
 * Recovery (v1.1): the client keeps each topic's position (epoch, seq) and
 * resubscribes with "since" on every reconnect. Per topic it then emits
 * "recovered" (every push missed meanwhile follows, as ordinary pushes) or
 * "unrecovered" (pushes were lost: reload the state another way).
 *
 * Auth (v1.1, docs/auth.md): options.getToken, a function returning a JWT
 * (or a promise of one), is called before each (re)connect, before the
 * token's exp (the token is refreshed on the open connection with
 * {"op":"refresh"}) and after a close 4001 (token expired). A close 4002
 * (disconnected by the server API) stops reconnecting.
 */
(function (root) {
  "use strict";

  var OPEN = 1;
  var TOPIC_RE = /^[\x21-\x7e]{1,200}$/;
  var DEFAULTS = {
    minDelay: 500, // ms before the first reconnect attempt
    maxDelay: 30000, // ms, upper bound of the backoff
    factor: 2, // growth of the delay per failed attempt
    jitter: 0.5, // the delay is reduced by a random share of up to this fraction
    maxBuffered: 1 << 20, // bytes: limit of bufferedAmount (open) or of the queue (not open)
    connectTimeout: 10000, // ms a handshake may take before it is abandoned
    reconnect: true,
    protocols: undefined, // Sec-WebSocket-Protocol offers
    WebSocket: undefined, // constructor; defaults to globalThis.WebSocket
    random: Math.random,
    getToken: undefined, // v1.1: () => token or Promise of one; see the header
    refreshBefore: 10000, // ms before exp to refresh (at most a third of the token's life left)
  };

  // Close codes of v1.1 auth.
  var CLOSE_TOKEN_EXPIRED = 4001;
  var CLOSE_DISCONNECTED = 4002;

  // tokenExp reads the exp claim (ms) of a JWT without verifying it: the
  // server verifies; the client only needs to know when to refresh.
  function tokenExp(token) {
    try {
      var part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
      var exp = JSON.parse(atob(part + "===".slice((part.length + 3) % 4))).exp;
      return typeof exp === "number" && exp > 0 ? exp * 1000 : 0;
    } catch (e) {
      return 0;
    }
  }

  function utf8Length(s) {
    var n = 0;
    for (var i = 0; i < s.length; i++) {
      var c = s.charCodeAt(i);
      if (c < 0x80) n += 1;
      else if (c < 0x800) n += 2;
      else if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) { n += 4; i++; }
      else n += 3;
    }
    return n;
  }

  function report(err) {
    if (typeof root.reportError === "function") root.reportError(err);
    else setTimeout(function () { throw err; });
  }

  function makeEvent(type, detail) {
    if (typeof CustomEvent === "function") return new CustomEvent(type, { detail: detail });
    var ev = new Event(type);
    ev.detail = detail;
    return ev;
  }

  function defaultURL() {
    var loc = root.location;
    if (!loc || !loc.host) throw new TypeError("WSPush: no URL given and no page location to derive it from");
    return (loc.protocol === "https:" ? "wss://" : "ws://") + loc.host + "/ws";
  }

  // backoffDelay returns the wait in ms before reconnect attempt number
  // `attempt` (0 for the first): min(maxDelay, minDelay * factor^attempt),
  // minus a random share of up to `jitter` of it.
  function backoffDelay(attempt, o, random) {
    var base = Math.min(o.maxDelay, o.minDelay * Math.pow(o.factor, attempt));
    return Math.round(base * (1 - o.jitter * (random || Math.random)()));
  }

  class WSPush extends EventTarget {
    constructor(url, options) {
      super();
      this.options = Object.assign({}, DEFAULTS, options || {});
      var u = new URL(url || defaultURL(), root.location ? root.location.href : undefined);
      if (u.protocol === "http:") u.protocol = "ws:";
      if (u.protocol === "https:") u.protocol = "wss:";
      // Topics given in the URL are subscribed by the handshake itself, on
      // every connect for as long as they are held.
      this._urlTopics = new Set();
      (u.searchParams.get("topics") || "").split(",").forEach(function (t) { if (t) this._urlTopics.add(t); }, this);
      u.searchParams.delete("topics");
      this.url = u.toString();
      this._topics = new Map(); // topic -> Set of handlers
      this._urlTopics.forEach(function (t) { this._topics.set(t, new Set()); }, this);
      this._seq = new Map(); // topic -> last push seq seen
      this._pos = new Map(); // (v1.1) topic -> {epoch, seq}: where to resume from
      this._queue = []; // messages sent while not open
      this._queued = 0; // their bytes
      this._listeners = new Map(); // on() fn -> wrapper, per event
      this._ws = null;
      this._timer = null;
      this._stopped = false;
      this.state = "closed";
      this.attempt = 0; // reconnect attempts since the last open
      this.reconnects = 0; // successful opens after the first
      this._everOpened = false;
      this.connect();
    }

    // on subscribes fn to an event; fn receives the event's detail.
    // It returns a function that removes fn again.
    on(type, fn) {
      if (!this._listeners.has(type)) this._listeners.set(type, new Map());
      var m = this._listeners.get(type);
      if (!m.has(fn)) {
        var wrap = function (ev) { fn.call(this, ev.detail); };
        m.set(fn, wrap);
        this.addEventListener(type, wrap);
      }
      return this.off.bind(this, type, fn);
    }

    off(type, fn) {
      var m = this._listeners.get(type);
      if (m && m.has(fn)) { this.removeEventListener(type, m.get(fn)); m.delete(fn); }
    }

    _emit(type, detail) { this.dispatchEvent(makeEvent(type, detail)); }

    _setState(state, extra) {
      if (this.state === state) return;
      var prev = this.state;
      this.state = state;
      this._emit("state", Object.assign({ state: state, previous: prev }, extra));
    }

    get connected() { return !!this._ws && this._ws.readyState === OPEN; }

    // connect opens the connection; the constructor calls it. After close()
    // it starts over; while waiting to reconnect it tries at once.
    connect(token) {
      if (this._ws) return;
      this._stopped = false;
      clearTimeout(this._timer);
      this._timer = null;
      if (this.state !== "reconnecting") this._setState("connecting");
      if (this.options.getToken && token === undefined) { this._connectWithToken(); return; }
      var WS = this.options.WebSocket || root.WebSocket;
      var url = this.url;
      var held = [];
      this._urlTopics.forEach(function (t) { if (this._topics.has(t)) held.push(t); }, this);
      if (held.length) url += (url.indexOf("?") < 0 ? "?" : "&") + "topics=" + held.map(encodeURIComponent).join(",");
      var since = this._since(held);
      if (since) url += "&since=" + encodeURIComponent(JSON.stringify(since));
      if (token) url += (url.indexOf("?") < 0 ? "?" : "&") + "token=" + encodeURIComponent(token);
      var ws;
      try {
        ws = this.options.protocols ? new WS(url, this.options.protocols) : new WS(url);
      } catch (e) { // e.g. a port the browser blocks: report it and keep trying
        this._emit("error", { source: "socket", message: String(e && e.message || e), opened: false });
        if (this.options.reconnect) this._scheduleReconnect();
        else this._setState("closed");
        return;
      }
      this._ws = ws;
      var opened = false;
      var timeout = setTimeout(function () { ws.close(); }, this.options.connectTimeout);
      var self = this;
      ws.onopen = function () {
        clearTimeout(timeout);
        opened = true;
        self._onOpen(held);
        if (token) self._scheduleRefresh(ws, tokenExp(token));
      };
      ws.onmessage = function (ev) {
        if (self._ws === ws) self._onMessage(typeof ev.data === "string" ? ev.data : String(ev.data));
      };
      ws.onerror = function () {
        if (self._ws === ws) self._emit("error", { source: "socket", message: "WebSocket error", opened: opened });
      };
      ws.onclose = function (ev) {
        clearTimeout(timeout);
        var current = self._ws === ws; // false once close() let go of it
        if (current) { self._ws = null; self._stopRefresh(); }
        if (opened) self._emit("close", { code: ev.code, reason: ev.reason, wasClean: ev.wasClean });
        if (!current) return;
        if (!self.options.reconnect || ev.code === CLOSE_DISCONNECTED) { self._stopped = true; self._setState("closed"); return; }
        if (ev.code === CLOSE_TOKEN_EXPIRED && self.options.getToken) { self.attempt = 0; self.connect(); return; } // a new token at once
        self._scheduleReconnect();
      };
    }

    _scheduleReconnect() {
      var delay = backoffDelay(this.attempt++, this.options, this.options.random);
      this._setState("reconnecting", { attempt: this.attempt, delay: delay });
      this._emit("reconnecting", { attempt: this.attempt, delay: delay });
      var self = this;
      this._timer = setTimeout(function () { self._timer = null; self.connect(); }, delay);
    }

    _onOpen(urlTopics) {
      if (this._everOpened) this.reconnects++;
      this._everOpened = true;
      this.attempt = 0;
      // Resubscribe everything the URL did not cover, in one command.
      var rest = [];
      this._topics.forEach(function (_, t) { if (urlTopics.indexOf(t) < 0) rest.push(t); });
      if (rest.length) {
        var cmd = { op: "sub", topics: rest };
        var since = this._since(rest);
        if (since) cmd.since = since;
        this._ws.send(JSON.stringify(cmd));
      }
      var queue = this._queue;
      this._queue = [];
      this._queued = 0;
      for (var i = 0; i < queue.length; i++) this._ws.send(queue[i]);
      this._setState("open");
      this._emit("open", { url: this._ws.url, reconnects: this.reconnects });
    }

    _onMessage(text) {
      var msg;
      try { msg = JSON.parse(text); } catch (e) {
        this._emit("error", { source: "client", message: "unparsable message from server", raw: text });
        return;
      }
      if (this._onAuthMessage(msg)) return;
      if (msg.op === "subscribed") {
        var prev = this._pos.get(msg.topic);
        if (typeof msg.epoch === "string" && msg.epoch && this._topics.has(msg.topic)) {
          this._pos.set(msg.topic, { epoch: msg.epoch, seq: msg.seq });
        }
        var detail = { topic: msg.topic, seq: msg.seq, lastSeq: this.lastSeq(msg.topic) };
        if (msg.epoch !== undefined) detail.epoch = msg.epoch; // v1.1
        if (msg.recovered !== undefined) detail.recovered = msg.recovered; // v1.1, topics resumed with since
        this._emit("subscribed", detail);
        if (msg.recovered === true) {
          this._emit("recovered", { topic: msg.topic, epoch: msg.epoch, seq: msg.seq });
        } else if (msg.recovered === false) {
          this._emit("unrecovered", { topic: msg.topic, epoch: msg.epoch, seq: msg.seq, previous: prev || null });
        }
      } else if (msg.op === "unsubscribed") {
        this._emit("unsubscribed", { topic: msg.topic });
      } else if (msg.op === "error") {
        this._emit("error", { source: "server", message: msg.error });
      } else if (typeof msg.topic === "string" && typeof msg.seq === "number") {
        this._seq.set(msg.topic, msg.seq);
        var pos = this._pos.get(msg.topic);
        if (pos) pos.seq = msg.seq;
        var handlers = this._topics.get(msg.topic);
        if (handlers) handlers.forEach(function (h) {
          try { h(msg.data, msg); } catch (e) { report(e); }
        });
        this._emit("push", msg);
      }
    }

    // subscribe adds handler(data, {topic, seq, data}) for topic. The first
    // subscription of a topic sends a sub command (or waits for the next
    // connect). It returns a function that undoes this subscription.
    subscribe(topic, handler) {
      if (!TOPIC_RE.test(topic)) throw new TypeError("WSPush: invalid topic name " + JSON.stringify(topic));
      var handlers = this._topics.get(topic);
      if (!handlers) {
        handlers = new Set();
        this._topics.set(topic, handlers);
        if (this.connected) this._ws.send(JSON.stringify({ op: "sub", topics: [topic] }));
      }
      if (handler) handlers.add(handler);
      return this.unsubscribe.bind(this, topic, handler);
    }

    // unsubscribe removes handler from topic, or every handler when none is
    // given. When no handler is left the topic is unsubscribed.
    unsubscribe(topic, handler) {
      var handlers = this._topics.get(topic);
      if (!handlers) return;
      if (handler) {
        handlers.delete(handler);
        if (handlers.size) return;
      }
      this._topics.delete(topic);
      this._pos.delete(topic);
      if (this.connected) this._ws.send(JSON.stringify({ op: "unsub", topics: [topic] }));
    }

    // position is where the client stands in topic (v1.1): {epoch, seq} of
    // the stream, as of the last subscribed answer and push; null before the
    // first answer, or from a v1 server (no epoch).
    position(topic) {
      var p = this._pos.get(topic);
      return p ? { epoch: p.epoch, seq: p.seq } : null;
    }

    // _since is the "since" object for the topics with a known position,
    // or null when none has one.
    _since(topics) {
      var since = null;
      for (var i = 0; i < topics.length; i++) {
        var p = this._pos.get(topics[i]);
        if (!p) continue;
        since = since || {};
        since[topics[i]] = { epoch: p.epoch, seq: p.seq };
      }
      return since;
    }

    topics() { return Array.from(this._topics.keys()); }

    // lastSeq is the seq of the last push seen on topic, 0 if none.
    lastSeq(topic) { return this._seq.get(topic) || 0; }

    // publish sends {"op":"pub"} (the server must run with -client-publish,
    // otherwise it answers an error event). Returns what send returns.
    publish(topic, data) {
      if (data === undefined) throw new TypeError("WSPush: publish needs data");
      return this.send({ op: "pub", topic: topic, data: data });
    }

    // send sends a command (an object is JSON encoded). While not open it is
    // queued for the next connect. It returns false, sending nothing, when
    // the message would take bufferedAmount (open) or the queue (not open)
    // past options.maxBuffered bytes.
    send(msg) {
      var text = typeof msg === "string" ? msg : JSON.stringify(msg);
      var n = utf8Length(text);
      var max = this.options.maxBuffered;
      if (this.connected) {
        if (this._ws.bufferedAmount + n > max) return false;
        this._ws.send(text);
        return true;
      }
      if (this._stopped || this._queued + n > max) return false;
      this._queue.push(text);
      this._queued += n;
      return true;
    }

    get bufferedAmount() { return this.connected ? this._ws.bufferedAmount : this._queued; }

    // close closes the connection and stops reconnecting; queued messages
    // are dropped. connect() starts again.
    close(code, reason) {
      this._stopped = true;
      clearTimeout(this._timer);
      this._timer = null;
      this._queue = [];
      this._queued = 0;
      var ws = this._ws;
      this._ws = null;
      this._stopRefresh();
      if (ws) ws.close(code || 1000, reason || "");
      this._setState("closed");
    }

    // _connectWithToken asks options.getToken for a token, then connects
    // with it; a failure is an error event (source "token") and a
    // reconnect attempt with backoff.
    _connectWithToken() {
      if (this._fetchingToken) return;
      this._fetchingToken = true;
      var self = this;
      this._fetchToken().then(function (token) {
        self._fetchingToken = false;
        if (!self._stopped && !self._ws && !self._timer) self.connect(token);
      }, function (err) {
        self._fetchingToken = false;
        if (self._stopped || self._ws || self._timer) return;
        self._emit("error", { source: "token", message: String(err && err.message || err), opened: false });
        if (self.options.reconnect) self._scheduleReconnect();
        else self._setState("closed");
      });
    }

    _fetchToken() {
      var get = this.options.getToken;
      return Promise.resolve().then(function () { return get(); }).then(function (token) {
        if (typeof token !== "string" || !token) throw new Error("getToken gave no token");
        return token;
      });
    }

    // _scheduleRefresh sets the refresh of ws's token, expiring at exp (ms):
    // refreshBefore ahead of it, and at most a third of the time left.
    _scheduleRefresh(ws, exp) {
      this._stopRefresh();
      this._tokenExp = exp;
      if (!exp || !this.options.getToken) return;
      var left = exp - Date.now();
      if (left <= 0) return;
      this._refreshIn(ws, left - Math.min(this.options.refreshBefore, left / 3));
    }

    _refreshIn(ws, delay) {
      var self = this;
      this._refreshTimer = setTimeout(function () { self._refreshTimer = null; self._refresh(ws); }, delay);
    }

    _stopRefresh() {
      clearTimeout(this._refreshTimer);
      this._refreshTimer = null;
      this._refreshing = null;
    }

    // _refresh fetches a token and sends {"op":"refresh"} on ws. A failure
    // is retried at halving intervals while the token is valid; at exp the
    // server closes with 4001 and the client reconnects with a new token.
    _refresh(ws) {
      var self = this;
      this._fetchToken().then(function (token) {
        if (self._ws !== ws || !self.connected) return;
        if (tokenExp(token) <= self._tokenExp) throw new Error("getToken gave no token expiring later than the current one");
        self._refreshing = { ws: ws, token: token };
        ws.send(JSON.stringify({ op: "refresh", token: token }));
      }).catch(function (err) { if (self._ws === ws) self._refreshFailed(ws, err); });
    }

    _refreshFailed(ws, err) {
      this._refreshing = null;
      this._emit("error", { source: "token", message: "token refresh: " + String(err && err.message || err), opened: true });
      var delay = Math.min((this._tokenExp - Date.now()) / 2, 5000);
      if (delay >= 10) this._refreshIn(ws, delay);
    }

    // _onAuthMessage handles the v1.1 auth answers and reports whether msg
    // was one: refreshed, an error answering a refresh, a topic refused
    // (denied: a topic not subscribed on this connection is no longer held;
    // a refused pub leaves the subscription alone) and a subscription the
    // server ended (unsubscribed while still held here: it is forgotten).
    _onAuthMessage(msg) {
      if (this._confirmedWs !== this._ws) { this._confirmedWs = this._ws; this._confirmed = new Set(); }
      if (msg.op === "subscribed") this._confirmed.add(msg.topic);
      var pending = this._refreshing;
      if (msg.op === "refreshed" && pending) {
        this._refreshing = null;
        var exp = typeof msg.exp === "number" ? msg.exp * 1000 : tokenExp(pending.token);
        this._scheduleRefresh(pending.ws, exp);
        this._emit("refreshed", { exp: exp });
        return true;
      }
      if (msg.op === "error" && typeof msg.topic !== "string" && pending) {
        this._refreshFailed(pending.ws, new Error(msg.error));
        return true;
      }
      if (msg.op === "error" && typeof msg.topic === "string" && msg.topic) {
        if (!this._confirmed.has(msg.topic)) this._topics.delete(msg.topic);
        this._emit("denied", { topic: msg.topic, reason: msg.error });
        this._emit("error", { source: "server", message: msg.error, topic: msg.topic });
        return true;
      }
      if (msg.op === "unsubscribed") this._confirmed.delete(msg.topic);
      if (msg.op === "unsubscribed" && this._topics.has(msg.topic)) {
        this._topics.delete(msg.topic);
        this._emit("unsubscribed", { topic: msg.topic, byServer: true });
        return true;
      }
      return false;
    }
  }

  WSPush.backoffDelay = backoffDelay;
  WSPush.tokenExp = tokenExp;
  WSPush.defaults = DEFAULTS;
  root.WSPush = WSPush;
  if (typeof module === "object" && module && module.exports) module.exports = WSPush;
})(typeof globalThis !== "undefined" ? globalThis : this);
