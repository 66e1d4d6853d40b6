// The wspush admin page: polls GET /admin/stats once a second with the admin
// token in an Authorization header, draws the counters' rates as sparklines,
// and publishes with POST /publish. No dependencies; nothing here is trusted
// to the DOM as HTML (topic names are text).
"use strict";

(() => {
  const POLL_MS = 1000;     // how often the stats are read
  const HISTORY = 120;      // points per chart: two minutes at POLL_MS
  const TOP = 10;           // topics in the top-topics table
  const TOKEN_KEY = "wspush-admin-token";
  const LATENCY_WINDOW = 10; // polls the latency quantiles are taken over
  const UNITS = { latency: " ms" }; // of a chart's max label

  const $ = (id) => document.getElementById(id);
  let token = sessionStorage.getItem(TOKEN_KEY) || "";
  let prev = null;          // the previous snapshot, for rates
  let timer = 0;
  const series = {};        // chart id -> values, oldest first
  let latencies = [];       // the last LATENCY_WINDOW push_latency snapshots

  // fetchAdmin sends a request to this admin server with the token, if any.
  function fetchAdmin(path, init = {}) {
    const headers = new Headers(init.headers || {});
    if (token) headers.set("Authorization", "Bearer " + token);
    return fetch(path, { ...init, headers, cache: "no-store", credentials: "omit" });
  }

  function setStatus(status) {
    const el = $("status");
    el.dataset.status = status;
    el.textContent = status.replace("_", " ");
  }

  function showError(msg) {
    const el = $("error");
    el.hidden = !msg;
    el.textContent = msg || "";
  }

  function askToken(reason) {
    setStatus("unauthorized");
    $("auth").hidden = false;
    $("auth-reason").textContent = reason;
    $("token").focus();
  }

  async function poll() {
    clearTimeout(timer);
    try {
      const resp = await fetchAdmin("/admin/stats?top=" + TOP);
      if (resp.status === 401) {
        askToken(token ? "The token was refused: enter the admin token (-publish-token)."
                       : "This server requires its admin token (-publish-token).");
        return; // polling resumes when a token is given
      }
      if (!resp.ok) throw new Error("GET /admin/stats: " + resp.status + " " + (await errorText(resp)));
      render(await resp.json());
      showError("");
    } catch (err) {
      setStatus("unreachable");
      showError(String(err.message || err));
    }
    timer = setTimeout(poll, POLL_MS);
  }

  async function errorText(resp) {
    try {
      const body = await resp.json();
      return body.error || JSON.stringify(body);
    } catch {
      return resp.statusText;
    }
  }

  // rate is the per-second change of a counter between two snapshots, null
  // when there is no previous one or the counter went back (a restart).
  function rate(now, before, dt) {
    if (before === undefined || dt <= 0 || now < before) return null;
    return (now - before) / dt;
  }

  function render(s) {
    setStatus(s.status);
    $("auth").hidden = true;
    $("forget").hidden = !token;
    const t = Date.parse(s.time) / 1000;
    const dt = prev ? t - prev.t : 0;
    const publishes = rate(s.published_total, prev && prev.published, dt);
    const deliveries = rate(s.delivered_total, prev && prev.delivered, dt);
    const slow = rate(s.slow_consumers_dropped_total, prev && prev.slow, dt);

    setValue("connections", s.connections);
    setValue("topics", s.topics);
    setValue("subscriptions", s.subscriptions);
    setValue("publishes", publishes, 1);
    setValue("deliveries", deliveries, 1);
    setValue("slow", s.slow_consumers_dropped_total);
    latencies.push(s.push_latency);
    if (latencies.length > LATENCY_WINDOW + 1) latencies.shift();
    const p99 = quantile(0.99, s.push_latency, latencies[0]);
    const p50 = quantile(0.5, s.push_latency, latencies[0]);
    const latencyEl = $("latency");
    latencyEl.dataset.value = p99 === null ? "" : String(p99);
    latencyEl.textContent = p99 === null ? "—" : seconds(p99);
    $("latency-p50").textContent = p50 === null ? "—" : seconds(p50);
    $("slow-rate").textContent = slow === null ? "—" : fmt(slow, 1);
    push("connections", s.connections);
    push("topics", s.topics);
    push("subscriptions", s.subscriptions);
    push("publishes", publishes);
    push("deliveries", deliveries);
    push("slow", slow);
    push("latency", p99 === null ? null : p99 * 1000);
    for (const id of Object.keys(series)) draw(id);

    renderLoops(s.loops, prev, dt);
    renderBroker(s.broker);
    renderTop(s.top_topics);
    $("updated").textContent = new Date(s.time).toLocaleTimeString();
    $("uptime").textContent = duration(s.uptime_seconds);

    prev = {
      t, published: s.published_total, delivered: s.delivered_total, slow: s.slow_consumers_dropped_total,
      loops: Object.fromEntries(s.loops.map((l) => [l.loop, l])),
    };
  }

  // quantile estimates the q-quantile of the pushes between two snapshots of
  // the latency histogram, interpolating inside the bucket it falls in, as
  // Prometheus's histogram_quantile does; null without pushes in between
  // (or across a restart).
  function quantile(q, now, then) {
    if (!then || now.le.length !== then.le.length) return null;
    const n = now.count - then.count;
    if (n <= 0) return null;
    const rank = q * n;
    let lowerLe = 0, lowerCount = 0;
    for (let i = 0; i < now.le.length; i++) {
      const count = now.counts[i] - then.counts[i];
      if (count >= rank) {
        const inBucket = count - lowerCount;
        return inBucket > 0 ? lowerLe + (now.le[i] - lowerLe) * (rank - lowerCount) / inBucket : now.le[i];
      }
      lowerLe = now.le[i];
      lowerCount = count;
    }
    return lowerLe; // above the largest bucket: at least that
  }

  function seconds(s) {
    if (s < 0.001) return fmt(s * 1e6, 0) + " µs";
    if (s < 1) return fmt(s * 1000, s < 0.01 ? 2 : 1) + " ms";
    return fmt(s, 2) + " s";
  }

  function setValue(id, v, digits = 0) {
    const el = $(id);
    el.dataset.value = v === null ? "" : String(v);
    el.textContent = v === null ? "—" : fmt(v, digits);
  }

  function fmt(v, digits = 0) {
    return v.toLocaleString("en-US", { maximumFractionDigits: digits, minimumFractionDigits: 0 });
  }

  function duration(sec) {
    const d = Math.floor(sec / 86400), h = Math.floor(sec / 3600) % 24, m = Math.floor(sec / 60) % 60;
    if (d) return d + "d " + h + "h";
    if (h) return h + "h " + m + "m";
    return m + "m " + Math.floor(sec % 60) + "s";
  }

  function push(id, v) {
    const s = series[id] || (series[id] = []);
    s.push(v);
    if (s.length > HISTORY) s.shift();
  }

  // draw is a sparkline of a series on its canvas: a line over a light fill,
  // scaled from 0 to the series' maximum, which is written in the corner.
  function draw(id) {
    const canvas = $("chart-" + id);
    if (!canvas) return;
    const ratio = window.devicePixelRatio || 1;
    const w = canvas.clientWidth, h = canvas.clientHeight;
    if (canvas.width !== Math.round(w * ratio) || canvas.height !== Math.round(h * ratio)) {
      canvas.width = Math.round(w * ratio);
      canvas.height = Math.round(h * ratio);
    }
    const ctx = canvas.getContext("2d");
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, w, h);
    const values = series[id];
    const max = Math.max(1, ...values.filter((v) => v !== null));
    const step = w / (HISTORY - 1);
    const x0 = w - (values.length - 1) * step;
    const y = (v) => h - 2 - (v / max) * (h - 14);
    ctx.beginPath();
    let open = false, firstX = 0, lastX = 0, points = 0;
    values.forEach((v, i) => {
      if (v === null) return;
      const x = x0 + i * step;
      if (!open) { ctx.moveTo(x, y(v)); firstX = x; open = true; } else ctx.lineTo(x, y(v));
      lastX = x;
      points++;
    });
    if (!open) return;
    if (points === 1) { // no line yet: a dot
      const v = values.findLast((v) => v !== null);
      ctx.fillStyle = "#2563eb";
      ctx.fillRect(lastX - 2, y(v) - 2, 3, 3);
    }
    ctx.strokeStyle = "#2563eb";
    ctx.lineWidth = 1.5;
    ctx.stroke();
    ctx.lineTo(lastX, h);
    ctx.lineTo(firstX, h);
    ctx.closePath();
    ctx.fillStyle = "rgba(37, 99, 235, 0.12)";
    ctx.fill();
    ctx.fillStyle = "#6b7785";
    ctx.font = "10px system-ui, sans-serif";
    ctx.fillText("max " + fmt(max, max < 10 ? 1 : 0) + (UNITS[id] || ""), 2, 10);
  }

  function cell(row, text, cls) {
    const td = row.insertCell();
    td.textContent = text;
    if (cls) td.className = cls;
    return td;
  }

  function bar(row, share) {
    const td = cell(row, "", "bar");
    const div = document.createElement("div");
    div.style.width = (100 * share).toFixed(1) + "%";
    td.append(div);
  }

  function renderLoops(loops, before, dt) {
    const body = $("loops").tBodies[0];
    body.replaceChildren();
    const most = Math.max(1, ...loops.map((l) => l.connections));
    for (const l of loops) {
      const p = before && before.loops[l.loop];
      const row = body.insertRow();
      row.dataset.loop = l.loop;
      cell(row, String(l.loop));
      cell(row, fmt(l.connections), "connections");
      bar(row, l.connections / most);
      const wakeups = rate(l.wakeups_total, p && p.wakeups_total, dt);
      const events = rate(l.events_total, p && p.events_total, dt);
      cell(row, wakeups === null ? "—" : fmt(wakeups, 1), "wakeups");
      cell(row, events === null ? "—" : fmt(events, 1), "events");
      cell(row, fmt(l.tasks_pending), l.tasks_pending > 0 ? "tasks warn" : "tasks");
    }
  }

  function renderBroker(b) {
    const dl = $("broker");
    dl.replaceChildren();
    const item = (k, v, cls) => {
      const dt = document.createElement("dt");
      dt.textContent = k;
      const dd = document.createElement("dd");
      dd.textContent = v;
      if (cls) dd.className = cls;
      dl.append(dt, dd);
    };
    if (b.mode !== "nats") {
      item("mode", "local: publishes stay on this node (no -broker)");
      return;
    }
    item("mode", "cluster (NATS JetStream)");
    item("connected", b.connected ? "yes" : "no", b.connected ? "ok" : "bad");
    if (b.error) item("degraded", b.error, "bad");
    item("published", fmt(b.published_total));
    item("reconnects", fmt(b.reconnects_total));
    item("publish failures", fmt(b.publish_failures_total), b.publish_failures_total > 0 ? "bad" : "");
  }

  function renderTop(top) {
    const body = $("top-topics").tBodies[0];
    body.replaceChildren();
    const most = Math.max(1, ...top.topics.map((t) => t.subscribers));
    for (const t of top.topics) {
      const row = body.insertRow();
      row.dataset.topic = t.topic;
      cell(row, t.topic, "topic");
      cell(row, fmt(t.subscribers), "subscribers");
      bar(row, t.subscribers / most);
    }
    const when = new Date(top.at).toLocaleTimeString();
    $("top-note").textContent = top.walked < top.of
      ? `Best of ${fmt(top.walked)} of ${fmt(top.of)} topics (a sample), as of ${when}.`
      : `${fmt(top.of)} topics, as of ${when} (refreshed every few seconds).`;
  }

  async function publish(ev) {
    ev.preventDefault();
    const out = $("publish-result");
    const topic = $("pub-topic").value.trim();
    const data = $("pub-data").value;
    try {
      JSON.parse(data);
    } catch (err) {
      result(out, false, "not JSON: " + err.message);
      return;
    }
    out.textContent = "…";
    try {
      const resp = await fetchAdmin("/publish?topic=" + encodeURIComponent(topic), {
        method: "POST", headers: { "Content-Type": "application/json" }, body: data,
      });
      if (resp.status === 401) {
        result(out, false, "the admin token was refused");
        askToken("Publishing needs the admin token (-publish-token).");
        return;
      }
      if (!resp.ok) {
        result(out, false, resp.status + ": " + (await errorText(resp)));
        return;
      }
      const r = await resp.json();
      out.dataset.seq = r.seq;
      out.dataset.subscribers = r.subscribers;
      result(out, true, r.seq === 0
        ? `no subscriber of ${r.topic}: not kept`
        : `seq ${r.seq} to ${r.subscribers} subscriber${r.subscribers === 1 ? "" : "s"}`);
    } catch (err) {
      result(out, false, String(err.message || err));
    }
  }

  function result(el, ok, text) {
    el.dataset.ok = String(ok);
    el.textContent = text;
  }

  $("auth-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    token = $("token").value.trim();
    sessionStorage.setItem(TOKEN_KEY, token);
    $("token").value = "";
    poll();
  });
  $("forget").addEventListener("click", () => {
    token = "";
    sessionStorage.removeItem(TOKEN_KEY);
    prev = null;
    latencies = [];
    poll();
  });
  $("publish-form").addEventListener("submit", publish);
  window.addEventListener("resize", () => Object.keys(series).forEach(draw));
  poll();
})();
