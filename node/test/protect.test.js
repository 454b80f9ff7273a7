"use strict";
// node --test node/test: protect.js against the shared test vectors (which
// tests/test_protect.py checks the Python side against) and its own rules.

const assert = require("node:assert/strict");
const fs = require("node:fs");
const path = require("node:path");
const test = require("node:test");

const protect = require("../protect.js");
const { Protection, CorruptDocument, hashId, associatedData } = protect;

const vectors = JSON.parse(fs.readFileSync(path.join(__dirname, "vectors.json"), "utf8"));
const KEY = "a key of at least thirty-two characters, for the tests";
const OTHER_KEY = "another app's key, thirty-two characters or more too";

function fixedNonces(hexes) {
  const queue = hexes.map((hex) => Buffer.from(hex, "hex"));
  return () => queue.shift();
}

test("test vectors: the exact stored JSON, and back", () => {
  for (const vector of vectors) {
    const protection = new Protection({ hashIds: vector.hashIds, keys: vector.keys, nonce: fixedNonces(vector.nonces) });
    assert.equal(protection.storeKey(vector.sid), vector.storeKey, vector.name);
    assert.equal(hashId(vector.sid), vector.hashedId, vector.name);
    assert.equal(JSON.stringify(protection.seal(vector.hashedId, vector.document)), vector.stored, vector.name);
    assert.deepEqual(protection.open(vector.hashedId, JSON.parse(vector.stored)), vector.document, vector.name);
  }
});

test("associated data", () => {
  assert.deepEqual(associatedData("H", "k"), Buffer.from("fcs1\0H\0k"));
});

test("values that do not decrypt are corrupt documents", () => {
  const protection = new Protection({ keys: [KEY] });
  const hashed = hashId("sid");
  const stored = protection.seal(hashed, { a: 1, b: 2, cookie: {}, _device: { user: "42" } });
  const cases = [
    () => protection.open(hashId("other"), stored),
    () => protection.open(hashed, { ...stored, a: stored.b }),
    () => new Protection({ keys: [OTHER_KEY] }).open(hashed, stored),
    () => new Protection({ keys: [] }).open(hashed, stored),
    () => protection.open(hashed, { ...stored, _device: { ...stored._device, user: "1" } }),
    () => protection.open(hashed, { ...stored, a: `${stored.a.slice(0, -3)}!!!` }),
  ];
  for (const open of cases) assert.throws(open, CorruptDocument);
  assert.deepEqual(protection.open(hashed, stored), { a: 1, b: 2, cookie: {}, _device: { user: "42" } });
});

test("keys: at least 32 characters, all different", () => {
  assert.throws(() => protect({}, { keys: ["short"] }), TypeError);
  assert.throws(() => protect({}, { keys: [KEY, KEY] }), TypeError);
});

test("plain documents are read as they are", () => {
  const protection = new Protection({ hashIds: true, keys: [KEY] });
  assert.deepEqual(protection.open(hashId("sid"), { n: 1, cookie: {} }), { n: 1, cookie: {} });
});

// A minimal callback store, as express-session's MemoryStore.
function memoryStore() {
  const entries = new Map();
  return {
    entries,
    get(sid, cb) {
      cb(null, entries.has(sid) ? JSON.parse(entries.get(sid)) : null);
    },
    set(sid, sess, cb) {
      entries.set(sid, JSON.stringify(sess));
      cb(null);
    },
    destroy(sid, cb) {
      entries.delete(sid);
      cb(null);
    },
  };
}

test("the wrapper: hashed keys, sealed values, sessions moved under their hash", async () => {
  const inner = memoryStore();
  const store = protect(inner, { hashIds: true, keys: [KEY] });
  const call = (method, ...args) =>
    new Promise((resolve, reject) => store[method](...args, (err, value) => (err ? reject(err) : resolve(value))));
  await call("set", "sid", { n: 1, cookie: { expires: null } });
  assert.deepEqual([...inner.entries.keys()], [hashId("sid")]);
  assert.ok(!inner.entries.get(hashId("sid")).includes('"n":1'));
  assert.deepEqual(await call("get", "sid"), { n: 1, cookie: { expires: null } });
  // Stored before hashIds was on: found under its id, and moved.
  inner.entries.set("old", JSON.stringify({ m: 2, cookie: {}, _device: { user: "42", until: 5 } }));
  assert.deepEqual(await call("get", "old"), { m: 2, cookie: {}, _device: { user: "42", until: 0 } });
  assert.ok(!inner.entries.has("old") && inner.entries.has(hashId("old")));
  await call("destroy", "sid");
  assert.equal(await call("get", "sid"), null);
});
