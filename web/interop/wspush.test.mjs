// Unit tests of web/wspush.js against a fake WebSocket and fake timers.
import { test } from "node:test";
import assert from "node:assert/strict";
import { loadWSPush } from "./load.mjs";

class FakeWebSocket {
  static instances = [];
  constructor(url, protocols) {
    this.url = url;
    this.protocols = protocols;
    this.readyState = 0;
    this.bufferedAmount = 0;
    this.sent = [];
    this.closedWith = null;
    FakeWebSocket.instances.push(this);
  }
  send(text) { this.sent.push(text); }
  close(code, reason) { this.closedWith = { code, reason }; this.readyState = 2; }
  // What the network does:
  open() { this.readyState = 1; this.onopen({}); }
  receive(msg) { this.onmessage({ data: JSON.stringify(msg) }); }
  drop(code = 1006, reason = "", wasClean = false) {
    this.readyState = 3;
    this.onclose({ code, reason, wasClean });
  }
  commands() { return this.sent.map((s) => JSON.parse(s)); }
}

// Fake timers: nothing runs until advance(ms).
function fakeTimers() {
  let now = 0, next = 1;
  const pending = new Map();
  return {
    setTimeout(fn, ms = 0) { pending.set(next, { at: now + ms, fn }); return next++; },
    clearTimeout(id) { pending.delete(id); },
    advance(ms) {
      const until = now + ms;
      for (;;) {
        let due = null;
        for (const [id, t] of pending) if (t.at <= until && (!due || t.at < due[1].at)) due = [id, t];
        if (!due) break;
        pending.delete(due[0]);
        now = due[1].at;
        due[1].fn();
      }
      now = until;
    },
    get pending() { return pending.size; },
  };
}

function setup(options = {}, url = "ws://push.test/ws", globals = {}) {
  FakeWebSocket.instances = [];
  const timers = fakeTimers();
  const WSPush = loadWSPush({ setTimeout: timers.setTimeout, clearTimeout: timers.clearTimeout, ...globals });
  const events = [];
  const client = new WSPush(url, { WebSocket: FakeWebSocket, jitter: 0, minDelay: 100, maxDelay: 1000, ...options });
  for (const type of ["state", "open", "close", "error", "push", "subscribed", "unsubscribed", "reconnecting"]) {
    client.on(type, (detail) => events.push([type, detail]));
  }
  const ws = () => FakeWebSocket.instances.at(-1);
  return { WSPush, client, timers, events, ws, of: (type) => events.filter((e) => e[0] === type).map((e) => e[1]) };
}

test("backoffDelay grows by factor, caps at maxDelay, jitter takes off up to its share", () => {
  const WSPush = loadWSPush();
  const o = { minDelay: 500, maxDelay: 30000, factor: 2, jitter: 0.5 };
  const noJitter = [0, 1, 2, 3, 4, 5, 6, 7, 10].map((n) => WSPush.backoffDelay(n, o, () => 0));
  assert.deepEqual(noJitter, [500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]);
  assert.equal(WSPush.backoffDelay(2, o, () => 1), 1000); // 2000 minus the full 50%
  assert.equal(WSPush.backoffDelay(2, o, () => 0.5), 1500);
  assert.equal(WSPush.backoffDelay(1, { ...o, factor: 3 }, () => 0), 1500);
  for (let i = 0; i < 200; i++) {
    const d = WSPush.backoffDelay(3, o); // real Math.random
    assert.ok(d >= 2000 && d <= 4000, `delay ${d} out of [2000, 4000]`);
  }
});

test("reconnects with exponential backoff and resets after an open", () => {
  const { client, timers, ws, of } = setup();
  assert.equal(client.state, "connecting");
  assert.equal(FakeWebSocket.instances.length, 1);
  ws().drop(); // the first connect fails
  assert.equal(client.state, "reconnecting");
  assert.deepEqual(of("reconnecting").map((d) => d.delay), [100]);
  timers.advance(99);
  assert.equal(FakeWebSocket.instances.length, 1, "reconnected before the delay");
  timers.advance(1);
  assert.equal(FakeWebSocket.instances.length, 2);
  ws().drop();
  timers.advance(200);
  ws().drop();
  timers.advance(400);
  ws().drop();
  timers.advance(800);
  ws().drop();
  timers.advance(1000);
  assert.deepEqual(of("reconnecting").map((d) => d.delay), [100, 200, 400, 800, 1000]);
  assert.equal(FakeWebSocket.instances.length, 6);
  ws().open();
  assert.equal(client.state, "open");
  assert.equal(client.reconnects, 0, "the first open is not a reconnect");
  assert.equal(of("close").length, 0, "failed attempts emit no close event");
  ws().drop(1001, "server shutdown", true);
  assert.deepEqual({ ...of("close")[0] }, { code: 1001, reason: "server shutdown", wasClean: true });
  assert.equal(of("reconnecting").at(-1).delay, 100, "backoff starts over after an open");
  timers.advance(100);
  ws().open();
  assert.equal(client.reconnects, 1);
  assert.deepEqual(of("state").map((d) => d.state), ["reconnecting", "open", "reconnecting", "open"]);
});

test("resubscribes after reconnect in one sub command; URL topics ride on the handshake", () => {
  const { client, timers, ws, of } = setup({}, "ws://push.test/ws?topics=u1,u2");
  assert.equal(ws().url, "ws://push.test/ws?topics=u1,u2");
  client.subscribe("a", () => {});
  client.subscribe("b", () => {});
  assert.equal(ws().sent.length, 0, "nothing is sent before open");
  ws().open();
  assert.deepEqual(ws().commands(), [{ op: "sub", topics: ["a", "b"] }]);
  client.subscribe("c", () => {});
  assert.deepEqual(ws().commands().at(-1), { op: "sub", topics: ["c"] });
  ws().receive({ topic: "a", seq: 7, data: 1 });
  assert.equal(client.lastSeq("a"), 7);
  ws().drop();
  timers.advance(100);
  assert.equal(ws().url, "ws://push.test/ws?topics=u1,u2");
  ws().open();
  assert.deepEqual(ws().commands(), [{ op: "sub", topics: ["a", "b", "c"] }]);
  assert.equal(client.lastSeq("a"), 7, "lastSeq survives the reconnect");
  ws().receive({ op: "subscribed", topic: "a", seq: 9 });
  assert.deepEqual({ ...of("subscribed")[0] }, { topic: "a", seq: 9, lastSeq: 7 });
  client.unsubscribe("u1");
  assert.deepEqual(ws().commands().at(-1), { op: "unsub", topics: ["u1"] });
  ws().drop();
  timers.advance(100);
  assert.equal(ws().url, "ws://push.test/ws?topics=u2", "an unsubscribed URL topic leaves the URL");
  assert.deepEqual([...client.topics()].sort(), ["a", "b", "c", "u2"]);
});

test("handlers: push dispatch, several per topic, unsub when the last goes", () => {
  const { client, ws, of } = setup();
  ws().open();
  const got1 = [], got2 = [];
  const h1 = (data, msg) => got1.push([data, msg.topic, msg.seq]);
  const h2 = (data) => got2.push(data);
  client.subscribe("t", h1);
  const off2 = client.subscribe("t", h2);
  assert.equal(ws().sent.length, 1, "a second handler sends no second sub");
  ws().receive({ topic: "t", seq: 1, data: { x: 1 } });
  ws().receive({ topic: "other", seq: 4, data: "not ours" });
  assert.deepEqual(got1.map((g) => [{ ...g[0] }, g[1], g[2]]), [[{ x: 1 }, "t", 1]]);
  assert.equal(got2.length, 1);
  assert.equal(of("push").length, 2, "every push is an event, held topic or not");
  assert.equal(client.lastSeq("other"), 4);
  assert.equal(client.lastSeq("never"), 0);
  off2();
  assert.equal(ws().sent.length, 1, "handlers left: no unsub");
  client.unsubscribe("t", h1);
  assert.deepEqual(ws().commands().at(-1), { op: "unsub", topics: ["t"] });
  assert.deepEqual([...client.topics()], []);
  assert.throws(() => client.subscribe("has space"), { name: "TypeError" });
  assert.throws(() => client.subscribe(""), { name: "TypeError" });
  assert.throws(() => client.subscribe("x".repeat(201)), { name: "TypeError" });
});

test("a throwing handler is reported and does not stop the others", () => {
  const reported = [];
  const { client, ws } = setup({}, undefined, { reportError: (e) => reported.push(e.message) });
  ws().open();
  const got = [];
  client.subscribe("t", () => { throw new Error("boom"); });
  client.subscribe("t", (d) => got.push(d));
  ws().receive({ topic: "t", seq: 1, data: 5 });
  assert.deepEqual(got, [5]);
  assert.deepEqual(reported, ["boom"]);
});

test("server errors and unparsable messages surface as error events", () => {
  const { client, ws, of } = setup();
  ws().open();
  ws().receive({ op: "error", error: "publishing from clients is disabled" });
  ws().onmessage({ data: "not json" });
  ws().onerror({});
  assert.deepEqual(of("error").map((d) => [d.source, d.message]), [
    ["server", "publishing from clients is disabled"],
    ["client", "unparsable message from server"],
    ["socket", "WebSocket error"],
  ]);
  assert.equal(client.state, "open", "an error answer leaves the connection open");
});

test("send queues while not open, up to maxBuffered bytes, and flushes after resubscribing", () => {
  const { client, ws } = setup({ maxBuffered: 100 });
  client.subscribe("t");
  const sixty = "x".repeat(60);
  assert.equal(client.send(sixty), true);
  assert.equal(client.send(sixty), false, "past maxBuffered the queue refuses");
  assert.equal(client.bufferedAmount, 60);
  assert.equal(client.send("é".repeat(20)), true, "é is 2 bytes: 60+40 = 100 fits");
  assert.equal(client.send("y"), false);
  ws().open();
  assert.deepEqual(ws().sent, ['{"op":"sub","topics":["t"]}', sixty, "é".repeat(20)]);
  assert.equal(client.bufferedAmount, 0);
});

test("send while open refuses what would take bufferedAmount past maxBuffered", () => {
  const { client, ws } = setup({ maxBuffered: 100 });
  ws().open();
  ws().bufferedAmount = 90;
  assert.equal(client.send("x".repeat(11)), false);
  assert.equal(client.publish("t", "12345"), false, "a pub is 34 bytes");
  assert.equal(client.send("x".repeat(10)), true);
  assert.deepEqual(ws().sent, ["x".repeat(10)]);
  ws().bufferedAmount = 0;
  assert.equal(client.publish("t", { a: 1 }), true);
  assert.deepEqual(JSON.parse(ws().sent.at(-1)), { op: "pub", topic: "t", data: { a: 1 } });
  assert.throws(() => client.publish("t"), { name: "TypeError" }, "pub needs data");
});

test("close stops reconnecting and refuses sends; connect starts again", () => {
  const { client, timers, ws, of } = setup();
  ws().open();
  const first = ws();
  client.close();
  assert.deepEqual(first.closedWith, { code: 1000, reason: "" });
  assert.equal(client.state, "closed");
  first.drop(1000, "", true);
  assert.deepEqual(of("close").map((d) => d.code), [1000]);
  timers.advance(60000);
  assert.equal(FakeWebSocket.instances.length, 1, "no reconnect after close()");
  assert.equal(client.send("x"), false);
  client.subscribe("t");
  client.connect();
  assert.equal(client.state, "connecting");
  assert.equal(FakeWebSocket.instances.length, 2);
  ws().open();
  assert.deepEqual(ws().commands(), [{ op: "sub", topics: ["t"] }]);
});

test("close during the backoff wait cancels the pending reconnect", () => {
  const { client, timers, ws } = setup();
  ws().drop();
  assert.equal(client.state, "reconnecting");
  client.close();
  assert.equal(client.state, "closed");
  timers.advance(60000);
  assert.equal(FakeWebSocket.instances.length, 1);
});

test("a handshake that takes longer than connectTimeout is abandoned", () => {
  const { ws, timers } = setup({ connectTimeout: 5000 });
  timers.advance(4999);
  assert.equal(ws().closedWith, null);
  timers.advance(1);
  assert.notEqual(ws().closedWith, null);
});

test("options: protocols, reconnect false, http URLs", () => {
  let { client, ws, timers } = setup({ protocols: ["wspush.v1"], reconnect: false }, "http://push.test/ws");
  assert.equal(ws().url, "ws://push.test/ws");
  assert.deepEqual(ws().protocols, ["wspush.v1"]);
  ws().open();
  ws().drop(1001, "", true);
  assert.equal(client.state, "closed");
  timers.advance(60000);
  assert.equal(FakeWebSocket.instances.length, 1);
  ({ ws } = setup({}, "https://push.test/x/ws?k=v&topics=a"));
  assert.equal(ws().url, "wss://push.test/x/ws?k=v&topics=a");
});

test("a WebSocket constructor that throws is reported and retried", () => {
  let fail = false;
  class Flaky extends FakeWebSocket {
    constructor(url) {
      if (fail) throw new Error("port blocked");
      super(url);
    }
  }
  const { client, timers, of } = setup({ WebSocket: Flaky });
  FakeWebSocket.instances[0].drop();
  fail = true;
  timers.advance(100);
  assert.equal(client.state, "reconnecting");
  assert.deepEqual(of("error").map((d) => d.message), ["port blocked"]);
  assert.deepEqual(of("reconnecting").map((d) => d.delay), [100, 200]);
  fail = false;
  timers.advance(200);
  assert.equal(FakeWebSocket.instances.length, 2);
  FakeWebSocket.instances[1].open();
  assert.equal(client.state, "open");
});

// plain copies a value made in wspush.js's context (its own Object
// prototype) into this one, for deepEqual.
const plain = (v) => JSON.parse(JSON.stringify(v));

test("v1.1: keeps (epoch, seq) per topic, resubscribes with since, emits recovered / unrecovered", () => {
  const { client, timers, ws } = setup({}, "ws://push.test/ws?topics=u");
  const rec = [];
  client.on("recovered", (d) => rec.push(["recovered", d]));
  client.on("unrecovered", (d) => rec.push(["unrecovered", d]));
  client.subscribe("a", () => {});
  ws().open();
  assert.deepEqual(ws().commands(), [{ op: "sub", topics: ["a"] }], "no since before a position is known");
  ws().receive({ op: "subscribed", topic: "u", seq: 0, epoch: "EU" });
  ws().receive({ op: "subscribed", topic: "a", seq: 4, epoch: "EA" });
  assert.deepEqual(plain(client.position("a")), { epoch: "EA", seq: 4 });
  ws().receive({ topic: "a", seq: 5, data: 1 });
  ws().receive({ topic: "u", seq: 1, data: 1 });
  assert.deepEqual(plain(client.position("a")), { epoch: "EA", seq: 5 });
  ws().drop();
  timers.advance(100);
  const url = new URL(ws().url);
  assert.equal(url.searchParams.get("topics"), "u");
  assert.deepEqual(JSON.parse(url.searchParams.get("since")), { u: { epoch: "EU", seq: 1 } });
  ws().open();
  assert.deepEqual(ws().commands(), [{ op: "sub", topics: ["a"], since: { a: { epoch: "EA", seq: 5 } } }]);
  ws().receive({ op: "subscribed", topic: "u", seq: 1, epoch: "EU", recovered: true });
  ws().receive({ op: "subscribed", topic: "a", seq: 9, epoch: "EB", recovered: false });
  assert.deepEqual(rec.map(([k, d]) => [k, d.topic]), [["recovered", "u"], ["unrecovered", "a"]]);
  assert.deepEqual(plain(rec[1][1]), { topic: "a", epoch: "EB", seq: 9, previous: { epoch: "EA", seq: 5 } });
  assert.deepEqual(plain(client.position("a")), { epoch: "EB", seq: 9 }, "the position moves to the new stream");
  client.unsubscribe("a");
  assert.equal(client.position("a"), null);
});

test("v1 server (no epoch): no since, no recovery events", () => {
  const { client, timers, ws } = setup();
  const rec = [];
  client.on("recovered", (d) => rec.push(d));
  client.on("unrecovered", (d) => rec.push(d));
  client.subscribe("a", () => {});
  ws().open();
  ws().receive({ op: "subscribed", topic: "a", seq: 0 });
  ws().receive({ topic: "a", seq: 1, data: 1 });
  ws().drop();
  timers.advance(100);
  ws().open();
  assert.deepEqual(ws().commands(), [{ op: "sub", topics: ["a"] }]);
  assert.equal(client.position("a"), null);
  assert.equal(rec.length, 0);
});
