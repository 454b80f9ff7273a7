"use strict";
// Protection at rest for express-session, the Express side of
// flask-connect-session's CONNECT_SESSION_HASH_IDS and CONNECT_SESSION_ENCRYPT
// (docs/protection.rst describes the stored format).
//
//   const protect = require("./node/protect.js");
//   app.use(session({
//     store: protect(new RedisStore({ client }), { hashIds: true, keys: ["new key", "old key"] }),
//     ...
//   }));
//
// The wrapper keeps each session under the base64url SHA-256 of its id
// (hashIds) and stores every member of the session but "cookie" as one
// AES-256-GCM ciphertext bound to the member's name and the hashed id
// (keys: the first encrypts, all decrypt). Plain Node: only node:crypto.

const crypto = require("node:crypto");

const VERSION = "fcs1";
const SEALED_PREFIX = `${VERSION}.`;
const SEALED_MEMBER = "sealed";
const COOKIE_MEMBER = "cookie";
const DEVICE_MEMBER = "_device";
const MIN_KEY_LENGTH = 32;
const HKDF_SALT = Buffer.from("flask-connect-session");
const HKDF_INFO_AES = Buffer.from("flask-connect-session aes-256-gcm");
const HKDF_INFO_ID = Buffer.from("flask-connect-session key id");
const KEY_ID_BYTES = 6;
const NONCE_BYTES = 12;
const TAG_BYTES = 16;
const BASE64URL = /^[A-Za-z0-9_-]*$/;
const HASHED = /^[A-Za-z0-9_-]{43}$/;

/** The hashed form of a session id: base64url (unpadded) SHA-256 of its UTF-8. */
function hashId(sid) {
  return crypto.createHash("sha256").update(sid, "utf8").digest("base64url");
}

/** Whether a store key has the shape of a hashed id. */
function looksHashed(key) {
  return HASHED.test(key);
}

/** The data each ciphertext is bound to: version, hashed id, member name. */
function associatedData(hashed, name) {
  return Buffer.concat([
    Buffer.from(`${VERSION}\0`, "utf8"),
    Buffer.from(hashed, "ascii"),
    Buffer.from("\0", "utf8"),
    Buffer.from(name, "utf8"),
  ]);
}

class CorruptDocument extends Error {}

function deriveKey(secret) {
  const material = Buffer.from(secret, "utf8");
  const derive = (info, length) =>
    Buffer.from(crypto.hkdfSync("sha256", material, HKDF_SALT, info, length));
  return { id: derive(HKDF_INFO_ID, KEY_ID_BYTES).toString("base64url"), aes: derive(HKDF_INFO_AES, 32) };
}

/**
 * Hashes store keys and seals/opens session documents, as
 * flask_connect_session.protect.Protection does.
 */
class Protection {
  constructor({ hashIds = false, keys = [], nonce = crypto.randomBytes } = {}) {
    if (typeof keys === "string") keys = [keys];
    if (!Array.isArray(keys)) throw new TypeError("protect: keys must be a string or an array of strings");
    this.hashIds = Boolean(hashIds);
    this.nonce = nonce;
    this.keys = new Map();
    for (const secret of keys) {
      if (typeof secret !== "string" || secret.length < MIN_KEY_LENGTH) {
        throw new TypeError(`protect: each key must be a string of at least ${MIN_KEY_LENGTH} characters`);
      }
      const key = deriveKey(secret);
      if (this.keys.has(key.id)) throw new TypeError("protect: the same key is given twice");
      this.keys.set(key.id, key);
    }
    this.first = keys.length ? this.keys.values().next().value : null;
  }

  /** The key the store keeps session `sid` under. */
  storeKey(sid) {
    return this.hashIds ? hashId(sid) : sid;
  }

  /** The hashed id of the session stored under `key`. */
  hashed(key) {
    return this.hashIds && looksHashed(key) ? key : hashId(key);
  }

  sealValue(hashed, name, value) {
    if (name === COOKIE_MEMBER || this.first === null) return value;
    if (name === DEVICE_MEMBER && isObject(value) && typeof value.user === "string") {
      return { user: value.user, [SEALED_MEMBER]: this.encrypt(hashed, name, value) };
    }
    return this.encrypt(hashed, name, value);
  }

  encrypt(hashed, name, value) {
    const key = this.first;
    const nonce = this.nonce(NONCE_BYTES);
    const cipher = crypto.createCipheriv("aes-256-gcm", key.aes, nonce);
    cipher.setAAD(associatedData(hashed, name));
    const sealed = Buffer.concat([cipher.update(JSON.stringify(value), "utf8"), cipher.final(), cipher.getAuthTag()]);
    return `${SEALED_PREFIX}${key.id}.${Buffer.concat([nonce, sealed]).toString("base64url")}`;
  }

  /** A whole document (plain JSON data) as the store is to keep it. */
  seal(hashed, document) {
    if (this.first === null) return document;
    const sealed = {};
    for (const [name, value] of Object.entries(document)) sealed[name] = this.sealValue(hashed, name, value);
    return sealed;
  }

  /**
   * A stored document in the clear. Plain members are read as they are.
   * Throws CorruptDocument when a sealed value does not decrypt.
   */
  open(hashed, stored) {
    const document = {};
    for (const [name, value] of Object.entries(stored)) {
      document[name] = name === COOKIE_MEMBER ? value : this.openValue(hashed, name, value);
    }
    return document;
  }

  openValue(hashed, name, value) {
    if (typeof value === "string" && value.startsWith(SEALED_PREFIX)) return this.decrypt(hashed, name, value);
    if (name === DEVICE_MEMBER && isObject(value)) {
      const sealed = value[SEALED_MEMBER];
      if (typeof sealed === "string" && sealed.startsWith(SEALED_PREFIX)) {
        const device = this.decrypt(hashed, name, sealed);
        if (Object.keys(value).length !== 2 || !isObject(device) || device.user !== value.user) {
          throw new CorruptDocument(`'${DEVICE_MEMBER}' does not match its ciphertext`);
        }
        return device;
      }
    }
    return value;
  }

  decrypt(hashed, name, value) {
    if (this.first === null) throw new CorruptDocument("a member is encrypted but no key is configured");
    const [, keyId = "", payload = ""] = splitOnce(value);
    const key = this.keys.get(keyId);
    if (!key) throw new CorruptDocument("a member is encrypted under a key that is not configured");
    if (!BASE64URL.test(payload)) throw new CorruptDocument("a member's ciphertext is not base64url");
    const raw = Buffer.from(payload, "base64url");
    if (raw.length < NONCE_BYTES + TAG_BYTES) throw new CorruptDocument("a member's ciphertext is too short");
    const decipher = crypto.createDecipheriv("aes-256-gcm", key.aes, raw.subarray(0, NONCE_BYTES));
    decipher.setAAD(associatedData(hashed, name));
    decipher.setAuthTag(raw.subarray(raw.length - TAG_BYTES));
    let plain;
    try {
      plain = Buffer.concat([decipher.update(raw.subarray(NONCE_BYTES, raw.length - TAG_BYTES)), decipher.final()]);
    } catch {
      throw new CorruptDocument("a member does not decrypt (tampered with, or moved from another session)");
    }
    try {
      return JSON.parse(plain.toString("utf8"));
    } catch {
      throw new CorruptDocument("a decrypted member is not JSON");
    }
  }
}

function isObject(value) {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}

// "fcs1.<key id>.<payload>" -> ["fcs1", key id, payload]
function splitOnce(value) {
  const first = value.indexOf(".");
  const second = value.indexOf(".", first + 1);
  if (second < 0) return [value];
  return [value.slice(0, first), value.slice(first + 1, second), value.slice(second + 1)];
}

// The session as plain JSON data (express-session's Session and Cookie
// objects serialise through toJSON, as a store would write them).
function plain(sess) {
  return JSON.parse(JSON.stringify(sess));
}

/**
 * Wrap an express-session store with protection at rest. The wrapper
 * inherits everything else from the store (its events, regenerate, load,
 * createSession, its own extra methods).
 *
 * @param store any express-session store (connect-redis, connect-pg-simple...)
 * @param options {hashIds: boolean, keys: string | string[], log?: (message) => void}
 */
function protect(store, { hashIds = false, keys = [], log = console.error, nonce } = {}) {
  const protection = new Protection({ hashIds, keys, nonce });
  const wrapper = Object.create(store);

  // A stored document opened, or null (logged) when it is corrupt: a new
  // session starts, and the entry is left in place.
  const opened = (hashed, stored, sid) => {
    try {
      return protection.open(hashed, stored);
    } catch (err) {
      if (!(err instanceof CorruptDocument)) throw err;
      log(`protect: corrupt session document (sid ${String(sid).slice(0, 6)}...), a new session starts: ${err.message}`);
      return null;
    }
  };

  // A session still stored under its id (before hashIds was on) moves under
  // its hash. The Flask app's user index still names the id: "until" 0 in
  // its "_device" tells that app to file it again at its next save.
  const moveUnderHash = (sid, document, done) => {
    const hashed = hashId(sid);
    const moved = { ...document };
    if (isObject(moved[DEVICE_MEMBER]) && "until" in moved[DEVICE_MEMBER]) {
      moved[DEVICE_MEMBER] = { ...moved[DEVICE_MEMBER], until: 0 };
    }
    store.set(hashed, protection.seal(hashed, moved), (err) => {
      if (err) return done(err);
      store.destroy(sid, (err2) => done(err2, moved));
    });
  };

  wrapper.get = function get(sid, callback) {
    const hashed = hashId(sid);
    const key = protection.storeKey(sid);
    store.get(key, (err, stored) => {
      if (err) return callback(err);
      if (stored) return callback(null, opened(hashed, stored, sid));
      if (!protection.hashIds) return callback(null, null);
      store.get(sid, (err2, unhashed) => {
        if (err2) return callback(err2);
        if (unhashed) {
          const document = opened(hashed, unhashed, sid);
          if (!document) return callback(null, null);
          return moveUnderHash(sid, document, callback);
        }
        // Another request may have moved it meanwhile: it writes the hash
        // before it removes the id.
        store.get(key, (err3, again) => {
          if (err3) return callback(err3);
          callback(null, again ? opened(hashed, again, sid) : null);
        });
      });
    });
  };

  wrapper.set = function set(sid, sess, callback) {
    store.set(protection.storeKey(sid), protection.seal(hashId(sid), plain(sess)), callback);
  };

  if (typeof store.touch === "function") {
    wrapper.touch = function touch(sid, sess, callback) {
      store.touch(protection.storeKey(sid), protection.seal(hashId(sid), plain(sess)), callback);
    };
  }

  wrapper.destroy = function destroy(sid, callback) {
    store.destroy(protection.storeKey(sid), callback);
  };

  if (typeof store.all === "function") {
    // Sessions as the store lists them (an array, or an object by key),
    // opened; corrupt ones are left out.
    wrapper.all = function all(callback) {
      store.all((err, sessions) => {
        if (err) return callback(err);
        const open = (key, stored) => opened(protection.hashed(key), stored, key);
        if (Array.isArray(sessions)) {
          return callback(null, sessions.map((s) => s && open(String(s.id), s)).filter(Boolean));
        }
        const result = {};
        for (const [key, stored] of Object.entries(sessions || {})) {
          const document = open(key, stored);
          if (document) result[key] = document;
        }
        callback(null, result);
      });
    };
  }
  return wrapper;
}

module.exports = protect;
module.exports.protect = protect;
module.exports.Protection = Protection;
module.exports.CorruptDocument = CorruptDocument;
module.exports.hashId = hashId;
module.exports.associatedData = associatedData;
