// Interop tests of the wspush wire protocol (docs/protocol.md) from Node,
// with the ws package, and of web/wspush.js running on top of ws.
//
// They need a running server; go test ./web (TestNodeInterop) starts one and
// sets:
//   WSPUSH_URL        ws://host:port/ws of a server run with -client-publish
//   WSPUSH_ADMIN      http://host:port of its admin port
//   WSPUSH_PID        its process id: the last test stops it with SIGTERM
//   WSPUSH_URL_NOPUB  ws://host:port/ws of a server run without -client-publish
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import WebSocket from "ws";
import { loadWSPush } from "./load.mjs";

const { WSPUSH_URL, WSPUSH_ADMIN, WSPUSH_PID, WSPUSH_URL_NOPUB } = process.env;
const skip = WSPUSH_URL && WSPUSH_ADMIN ? false : "WSPUSH_URL and WSPUSH_ADMIN not set: run go test ./web";
const WAIT = 5000;

// A fresh topic name per use, so tests do not see each other's pushes.
const topic = (name) => `${name}-${randomBytes(4).toString("hex")}`;

// Peer is a raw ws connection that records everything it receives.
const peers = [];
after(() => peers.forEach((p) => p.ws.terminate()));

class Peer {
  static async open(url) {
    const p = new Peer(url);
    await new Promise((resolve, reject) => {
      p.ws.once("open", resolve);
      p.ws.once("error", reject);
    });
    return p;
  }
  constructor(url) {
    this.ws = new WebSocket(url);
    peers.push(this);
    this.inbox = [];
    this.waiters = [];
    this.ws.on("message", (data, isBinary) => {
      assert.equal(isBinary, false, "the server sends text frames only");
      this.inbox.push(JSON.parse(data.toString()));
      this.waiters.forEach((w) => w());
    });
    this.closed = new Promise((resolve) => {
      this.ws.on("close", (code, reason) => resolve({ code, reason: reason.toString() }));
    });
  }
  send(obj) { this.ws.send(typeof obj === "string" ? obj : JSON.stringify(obj)); }
  // next removes and returns the first received message matching pred.
  next(pred = () => true, what = "a message") {
    return new Promise((resolve, reject) => {
      const check = () => {
        const i = this.inbox.findIndex(pred);
        if (i < 0) return false;
        this.waiters = this.waiters.filter((w) => w !== check);
        clearTimeout(timer);
        resolve(this.inbox.splice(i, 1)[0]);
        return true;
      };
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== check);
        reject(new Error(`timed out waiting for ${what}; inbox: ${JSON.stringify(this.inbox)}`));
      }, WAIT);
      if (!check()) this.waiters.push(check);
    });
  }
  push(t) { return this.next((m) => m.topic === t && m.op === undefined, `a push on ${t}`); }
  answer(op) { return this.next((m) => m.op === op, `an ${op} answer`); }
  close() { this.ws.close(); return this.closed; }
}

async function publish(t, data) {
  const res = await fetch(`${WSPUSH_ADMIN}/publish?topic=${encodeURIComponent(t)}`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(data),
  });
  return { status: res.status, body: await res.json() };
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// v1 checks the v1.1 "epoch" of a subscribed or publish answer (issue 11)
// and returns the answer without it, for the v1 comparisons below.
const EPOCH = /^[A-Za-z0-9_-]{1,32}$/;
function v1(m) {
  assert.match(String(m.epoch), EPOCH, `no valid epoch in ${JSON.stringify(m)}`);
  const { epoch, ...rest } = m;
  return rest;
}

test("subscribe by query: topics held before the 101, client never sends", { skip }, async () => {
  const a = topic("qa"), b = topic("qb");
  const p = await Peer.open(`${WSPUSH_URL}?topics=${a},${b}`);
  // Right after the 101: one subscribed answer per URL topic, in order.
  assert.deepEqual(v1(await p.next()), { op: "subscribed", topic: a, seq: 0 });
  assert.deepEqual(v1(await p.next()), { op: "subscribed", topic: b, seq: 0 });
  const res = await publish(a, { hello: "a" });
  assert.equal(res.status, 200);
  assert.deepEqual(v1(res.body), { topic: a, seq: 1, subscribers: 1 });
  assert.deepEqual(await p.push(a), { topic: a, seq: 1, data: { hello: "a" } });
  await publish(b, [1, 2, 3]);
  assert.deepEqual(await p.push(b), { topic: b, seq: 1, data: [1, 2, 3] });
  await p.close();
});

test("subscribe by command: answers in order, pushes in seq order with data intact", { skip }, async () => {
  const a = topic("ca"), b = topic("cb");
  const p = await Peer.open(WSPUSH_URL);
  p.send({ op: "sub", topics: [a, b] });
  assert.deepEqual(v1(await p.next()), { op: "subscribed", topic: a, seq: 0 });
  assert.deepEqual(v1(await p.next()), { op: "subscribed", topic: b, seq: 0 });
  const values = [0, "two", { three: 3 }, [4], null, true, 6.5, "ünïcødé ✓"];
  for (const v of values) await publish(a, v);
  for (let i = 0; i < values.length; i++) {
    assert.deepEqual(await p.push(a), { topic: a, seq: i + 1, data: values[i] });
  }
  // Subscribing again answers subscribed again, with the topic's last seq.
  p.send({ op: "sub", topics: [a] });
  assert.deepEqual(v1(await p.answer("subscribed")), { op: "subscribed", topic: a, seq: values.length });
  await p.close();
});

test("subscribed carries the last seq; later pushes are above it", { skip }, async () => {
  const t = topic("seq");
  const holder = await Peer.open(`${WSPUSH_URL}?topics=${t}`);
  for (let i = 0; i < 3; i++) await publish(t, i);
  const late = await Peer.open(WSPUSH_URL);
  late.send({ op: "sub", topics: [t] });
  assert.deepEqual(v1(await late.answer("subscribed")), { op: "subscribed", topic: t, seq: 3 });
  await publish(t, "next");
  assert.deepEqual(await late.push(t), { topic: t, seq: 4, data: "next" });
  await holder.close();
  await late.close();
});

test("unsub: answered per topic (held or not), and no pushes afterwards", { skip }, async () => {
  const t = topic("un"), never = topic("never");
  const p = await Peer.open(`${WSPUSH_URL}?topics=${t}`);
  p.send({ op: "unsub", topics: [t, never] });
  assert.deepEqual(await p.answer("unsubscribed"), { op: "unsubscribed", topic: t });
  assert.deepEqual(await p.answer("unsubscribed"), { op: "unsubscribed", topic: never });
  const res = await publish(t, "gone");
  assert.equal(res.body.subscribers, 0);
  await sleep(300);
  assert.deepEqual(p.inbox.filter((m) => m.op === undefined), [], "a push arrived after unsub");
  await p.close();
});

test("client pub: published like the admin API, the publisher gets its own push", { skip }, async () => {
  const t = topic("pub");
  const p = await Peer.open(`${WSPUSH_URL}?topics=${t}`);
  const other = await Peer.open(`${WSPUSH_URL}?topics=${t}`);
  p.send({ op: "pub", topic: t, data: { text: "hi" } });
  assert.deepEqual(await p.push(t), { topic: t, seq: 1, data: { text: "hi" } });
  assert.deepEqual(await other.push(t), { topic: t, seq: 1, data: { text: "hi" } });
  await p.close();
  await other.close();
});

test("errors answer bad commands and leave the connection open", { skip }, async () => {
  const p = await Peer.open(WSPUSH_URL);
  const bad = [
    "{not json",
    { op: "dance" },
    { topics: ["x"] },
    { op: "sub", topics: ["has space"] },
    { op: "pub", topic: topic("nodata") },
  ];
  for (const cmd of bad) {
    p.send(cmd);
    const m = await p.next(() => true, `an answer to ${JSON.stringify(cmd)}`);
    assert.equal(m.op, "error", `answer to ${JSON.stringify(cmd)}: ${JSON.stringify(m)}`);
    assert.equal(typeof m.error, "string");
    assert.ok(m.error.length > 0);
  }
  p.ws.send(Buffer.from([1, 2, 3]), { binary: true });
  assert.equal((await p.next(() => true, "an answer to a binary frame")).op, "error");
  // Still open and working.
  const t = topic("after");
  p.send({ op: "sub", topics: [t] });
  assert.deepEqual(v1(await p.answer("subscribed")), { op: "subscribed", topic: t, seq: 0 });
  await p.close();
});

test("pub without -client-publish is answered with an error", { skip: skip || (!WSPUSH_URL_NOPUB && "WSPUSH_URL_NOPUB not set") }, async () => {
  const t = topic("nopub");
  const p = await Peer.open(`${WSPUSH_URL_NOPUB}?topics=${t}`);
  p.send({ op: "pub", topic: t, data: 1 });
  const m = await p.answer("error");
  assert.ok(m.error.length > 0);
  await sleep(200);
  assert.deepEqual(p.inbox.filter((m) => m.op === undefined), [], "the pub was published anyway");
  await p.close();
});

test("the server answers the client's close with 1000", { skip }, async () => {
  const p = await Peer.open(WSPUSH_URL);
  p.ws.close(1000, "bye");
  assert.equal((await p.closed).code, 1000);
});

test("handshake failures are HTTP errors", { skip }, async () => {
  const status = (url) => new Promise((resolve) => {
    const ws = new WebSocket(url);
    ws.on("unexpected-response", (req, res) => { resolve(res.statusCode); req.destroy(); });
    ws.on("open", () => { resolve(101); ws.terminate(); });
    ws.on("error", () => {});
  });
  assert.equal(await status(`${WSPUSH_URL}?topics=${encodeURIComponent("bad topic")}`), 400);
  assert.equal(await status(WSPUSH_URL.replace(/\/ws$/, "/nope")), 404);
});

test("wspush.js on ws: subscribe, receive, publish, lastSeq, server error event", { skip }, async () => {
  const WSPush = loadWSPush();
  const q = topic("jsq"), c = topic("jsc");
  const client = new WSPush(`${WSPUSH_URL}?topics=${q}`, { WebSocket });
  const got = [];
  const errors = [];
  client.on("error", (d) => errors.push(d));
  const opened = new Promise((resolve) => client.on("open", resolve));
  const subscribed = new Promise((resolve) => client.on("subscribed", (d) => d.topic === c && resolve(d)));
  client.subscribe(q, (data, msg) => got.push([msg.topic, msg.seq, data]));
  client.subscribe(c, (data, msg) => got.push([msg.topic, msg.seq, data]));
  await opened;
  assert.equal(client.state, "open");
  await subscribed;
  await publish(q, "by query");
  await publish(c, "by command");
  assert.equal(client.publish(c, { own: true }), true);
  const deadline = Date.now() + WAIT;
  while (got.length < 3 && Date.now() < deadline) await sleep(20);
  // Realm-neutral copy (the client runs in its own V8 context).
  const byTopic = (t) => JSON.parse(JSON.stringify(got.filter((g) => g[0] === t)));
  assert.deepEqual(byTopic(q), [[q, 1, "by query"]]);
  assert.deepEqual(byTopic(c), [[c, 1, "by command"], [c, 2, { own: true }]]);
  assert.equal(client.lastSeq(c), 2);
  client.send({ op: "nope" });
  while (!errors.some((e) => e.source === "server") && Date.now() < deadline) await sleep(20);
  assert.ok(errors.some((e) => e.source === "server"), "no server error event");
  const closed = new Promise((resolve) => client.on("close", resolve));
  client.close();
  assert.equal((await closed).code, 1000);
  assert.equal(client.state, "closed");
});

// Last: it stops the server.
test("SIGTERM: every connection is closed with 1001", { skip: skip || (!WSPUSH_PID && "WSPUSH_PID not set") }, async () => {
  const raw = await Peer.open(`${WSPUSH_URL}?topics=${topic("bye")}`);
  const WSPush = loadWSPush();
  const client = new WSPush(WSPUSH_URL, { WebSocket, minDelay: 60000 });
  await new Promise((resolve) => client.on("open", resolve));
  const clientClosed = new Promise((resolve) => client.on("close", resolve));
  process.kill(Number(WSPUSH_PID), "SIGTERM");
  const rawClose = await raw.closed;
  assert.equal(rawClose.code, 1001);
  const c = await clientClosed;
  assert.equal(c.code, 1001);
  assert.equal(c.wasClean, true);
  assert.equal(client.state, "reconnecting", "the client goes on trying");
  client.close();
});
