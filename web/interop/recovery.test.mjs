// Interop tests of recovery (v1.1, issue 11) on the raw protocol from Node,
// with the ws package: "since" in the sub command and in the handshake's
// query, the replay in seq order between the answer and the live pushes,
// and recovered:false when the position cannot be recovered.
//
// They run against the server without -client-publish, which the suite
// never stops (protocol.test.mjs SIGTERMs the other one):
//   WSPUSH_URL_NOPUB    ws://host:port/ws
//   WSPUSH_ADMIN_NOPUB  http://host:port of its admin port
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import WebSocket from "ws";

const { WSPUSH_URL_NOPUB: URL_, WSPUSH_ADMIN_NOPUB: ADMIN } = process.env;
const skip = URL_ && ADMIN ? false : "WSPUSH_URL_NOPUB and WSPUSH_ADMIN_NOPUB not set: run go test ./web";
const WAIT = 5000;
const EPOCH = /^[A-Za-z0-9_-]{1,32}$/;
const topic = (name) => `${name}-${randomBytes(4).toString("hex")}`;

const sockets = [];
after(() => sockets.forEach((ws) => ws.terminate()));

// open connects and returns a reader of the messages in arrival order.
async function open(url) {
  const ws = new WebSocket(url);
  sockets.push(ws);
  const inbox = [];
  let wake = null;
  ws.on("message", (data) => { inbox.push(JSON.parse(data.toString())); if (wake) wake(); });
  await new Promise((resolve, reject) => { ws.once("open", resolve); ws.once("error", reject); });
  const next = async () => {
    const deadline = Date.now() + WAIT;
    while (!inbox.length) {
      if (Date.now() > deadline) throw new Error("timed out waiting for a message");
      await new Promise((r) => { wake = r; setTimeout(r, 50); });
    }
    return inbox.shift();
  };
  return { ws, next, inbox };
}

async function publish(t, data) {
  const res = await fetch(`${ADMIN}/publish?topic=${encodeURIComponent(t)}`, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(data) });
  assert.equal(res.status, 200);
  return res.json();
}

test("a publish without subscribers gets a seq and an epoch, and is kept", { skip }, async () => {
  const t = topic("kept");
  const res = await publish(t, "first");
  assert.equal(res.seq, 1);
  assert.match(res.epoch, EPOCH);
  const c = await open(URL_);
  c.ws.send(JSON.stringify({ op: "sub", topics: [t], since: { [t]: { epoch: res.epoch, seq: 0 } } }));
  assert.deepEqual(await c.next(), { op: "subscribed", topic: t, seq: 0, epoch: res.epoch, recovered: true });
  assert.deepEqual(await c.next(), { topic: t, seq: 1, data: "first" });
  c.ws.close();
});

test("sub with since: subscribed recovered:true, the missed pushes in order, then live", { skip }, async () => {
  const t = topic("since"), other = topic("plain");
  const a = await open(`${URL_}?topics=${t}`);
  const { epoch, seq } = await a.next();
  assert.equal(seq, 0);
  await publish(t, { n: 1 });
  assert.deepEqual(await a.next(), { topic: t, seq: 1, data: { n: 1 } });
  a.ws.terminate(); // gone; three more are published meanwhile
  for (let n = 2; n <= 4; n++) await publish(t, { n });
  const b = await open(URL_);
  b.ws.send(JSON.stringify({ op: "sub", topics: [t, other], since: { [t]: { epoch, seq: 1 } } }));
  assert.deepEqual(await b.next(), { op: "subscribed", topic: t, seq: 1, epoch, recovered: true });
  for (let n = 2; n <= 4; n++) assert.deepEqual(await b.next(), { topic: t, seq: n, data: { n } });
  const plain = await b.next(); // a topic not named in since: no recovered field
  assert.equal(plain.op, "subscribed");
  assert.equal(plain.topic, other);
  assert.equal("recovered" in plain, false);
  await publish(t, { n: 5 });
  assert.deepEqual(await b.next(), { topic: t, seq: 5, data: { n: 5 } });
  b.ws.close();
});

test("query form: ?since= replays after the 101 and the subscribed answers", { skip }, async () => {
  const t = topic("query");
  const first = await publish(t, "a");
  await publish(t, "b");
  await publish(t, "c");
  const since = encodeURIComponent(JSON.stringify({ [t]: { epoch: first.epoch, seq: 1 } }));
  const c = await open(`${URL_}?topics=${t}&since=${since}`);
  assert.deepEqual(await c.next(), { op: "subscribed", topic: t, seq: 1, epoch: first.epoch, recovered: true });
  assert.deepEqual(await c.next(), { topic: t, seq: 2, data: "b" });
  assert.deepEqual(await c.next(), { topic: t, seq: 3, data: "c" });
  c.ws.close();
});

test("another epoch or a position past the last: recovered:false at the current position, live only", { skip }, async () => {
  const t = topic("lost");
  const res = await publish(t, 1);
  await publish(t, 2);
  const c = await open(URL_);
  c.ws.send(JSON.stringify({ op: "sub", topics: [t], since: { [t]: { epoch: "gone-epoch", seq: 1 } } }));
  assert.deepEqual(await c.next(), { op: "subscribed", topic: t, seq: 2, epoch: res.epoch, recovered: false });
  const d = await open(URL_);
  d.ws.send(JSON.stringify({ op: "sub", topics: [t], since: { [t]: { epoch: res.epoch, seq: 9 } } }));
  assert.deepEqual(await d.next(), { op: "subscribed", topic: t, seq: 2, epoch: res.epoch, recovered: false });
  await publish(t, 3);
  assert.deepEqual(await c.next(), { topic: t, seq: 3, data: 3 });
  assert.deepEqual(await d.next(), { topic: t, seq: 3, data: 3 });
  c.ws.close();
  d.ws.close();
});

test("an invalid since is an error, and subscribes nothing", { skip }, async () => {
  const t = topic("bad");
  const c = await open(URL_);
  c.ws.send(JSON.stringify({ op: "sub", topics: [t], since: { [t]: { epoch: "no spaces", seq: 1 } } }));
  const m = await c.next();
  assert.equal(m.op, "error");
  assert.match(m.error, /invalid epoch/);
  c.ws.send(JSON.stringify({ op: "sub", topics: [t], since: { [t]: { epoch: "E", seq: -1 } } }));
  assert.match((await c.next()).error, /needs "seq"/);
  const res = await fetch(`${ADMIN}/publish?topic=${t}`, { method: "POST", headers: { "Content-Type": "application/json" }, body: "1" });
  assert.equal((await res.json()).subscribers, 0);
  c.ws.close();
});
