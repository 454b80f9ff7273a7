"use strict";
// Reference Express app for the flask_connect_session interop tests: the real
// express-session + connect-redis pair whose wire format (cookie and Redis
// documents) the Flask extension must match. Configured only by env vars:
//
//   PORT               TCP port on 127.0.0.1 (0 = let the OS choose; the
//                      chosen port is printed in the "listening" line)
//   REDIS_URL          redis://host:port/db used by connect-redis
//   SECRETS            JSON array of strings; the first signs, all verify
//   COOKIE_MAX_AGE_MS  optional cookie maxAge in ms; unset/empty means a
//                      browser-session cookie (no Expires)
//   PROTECT_JS         optional path of node/protect.js: the store is wrapped
//                      with it, with PROTECT_HASH_IDS ("1" or not) and
//                      PROTECT_KEYS (a JSON array of encryption keys)
//
// Every route answers JSON except /health.

const express = require("express");
const session = require("express-session");
const { RedisStore } = require("connect-redis"); // v8+: named export
const { createClient } = require("redis"); // node-redis v5

// The store, wrapped with node/protect.js when PROTECT_JS names it.
function wrapStore(store) {
  if (!process.env.PROTECT_JS) return store;
  const protect = require(process.env.PROTECT_JS);
  return protect(store, {
    hashIds: process.env.PROTECT_HASH_IDS === "1",
    keys: JSON.parse(process.env.PROTECT_KEYS || "[]"),
  });
}

function fail(message) {
  console.error(`express_app: ${message}`);
  process.exit(2);
}

function readConfig(env) {
  const port = Number(env.PORT);
  if (env.PORT === undefined || !Number.isInteger(port) || port < 0 || port > 65535) {
    fail(`PORT must be an integer 0..65535, got ${JSON.stringify(env.PORT)}`);
  }
  if (!env.REDIS_URL) fail("REDIS_URL is required");
  let secrets;
  try {
    secrets = JSON.parse(env.SECRETS || "");
  } catch (err) {
    fail(`SECRETS must be a JSON array of strings: ${err.message}`);
  }
  if (!Array.isArray(secrets) || secrets.length === 0 || !secrets.every((s) => typeof s === "string" && s)) {
    fail("SECRETS must be a non-empty JSON array of non-empty strings");
  }
  let maxAge;
  if (env.COOKIE_MAX_AGE_MS !== undefined && env.COOKIE_MAX_AGE_MS !== "") {
    maxAge = Number(env.COOKIE_MAX_AGE_MS);
    if (!Number.isFinite(maxAge)) fail(`COOKIE_MAX_AGE_MS must be a number, got ${env.COOKIE_MAX_AGE_MS}`);
  }
  return { port, redisUrl: env.REDIS_URL, secrets, maxAge };
}

// The session as the tests see it: id, user data (no "cookie"), cookie JSON.
function describe(req) {
  if (!req.session) return { id: null, data: null, cookie: null };
  // Own enumerable props only: id/req are non-enumerable on express-session's
  // Session, methods live on the prototype.
  const { cookie, ...data } = req.session;
  return { id: req.sessionID, data, cookie: cookie.toJSON() };
}

function isPlainObject(value) {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}

async function main() {
  const config = readConfig(process.env);

  const client = createClient({
    url: config.redisUrl,
    // Fail commands at once while Redis is down instead of queueing them, so a
    // test that stops Redis gets a prompt 500 rather than a hanging request.
    disableOfflineQueue: true,
  });
  client.on("error", (err) => console.error(`redis client error: ${err.message}`));
  await client.connect();

  const app = express();
  app.disable("x-powered-by");
  app.use(express.json());

  // /health is registered before the session middleware: it must never touch
  // the store, so the fixture can poll it cheaply.
  app.get("/health", (req, res) => res.type("text/plain").send("ok"));

  const cookie = config.maxAge === undefined ? {} : { maxAge: config.maxAge };
  app.use(
    session({
      name: "connect.sid",
      secret: config.secrets,
      resave: false,
      saveUninitialized: false,
      cookie,
      store: wrapStore(new RedisStore({ client, prefix: "sess:" })),
    }),
  );

  app.get("/get", (req, res) => res.json(describe(req)));

  app.post("/set", (req, res) => {
    if (!isPlainObject(req.body)) {
      return res.status(400).json({ error: "body must be a JSON object" });
    }
    for (const [key, value] of Object.entries(req.body)) {
      if (key === "cookie") return res.status(400).json({ error: '"cookie" is reserved' });
      req.session[key] = value;
    }
    res.json(describe(req));
  });

  // Stores JavaScript Date objects, which connect-redis serialises with
  // JSON.stringify (ISO 8601 strings): body {key: msSinceEpoch, ...}.
  app.post("/set-dates", (req, res) => {
    if (!isPlainObject(req.body)) {
      return res.status(400).json({ error: "body must be a JSON object" });
    }
    for (const [key, value] of Object.entries(req.body)) {
      if (key === "cookie") return res.status(400).json({ error: '"cookie" is reserved' });
      if (!Number.isFinite(value)) return res.status(400).json({ error: `${key}: not a number` });
      req.session[key] = new Date(value);
    }
    res.json(describe(req));
  });

  // Deletes session keys: body ["key", ...].
  app.post("/unset", (req, res) => {
    if (!Array.isArray(req.body) || !req.body.every((key) => typeof key === "string")) {
      return res.status(400).json({ error: "body must be a JSON array of strings" });
    }
    for (const key of req.body) {
      if (key === "cookie") return res.status(400).json({ error: '"cookie" is reserved' });
      delete req.session[key];
    }
    res.json(describe(req));
  });

  app.post("/regenerate", (req, res, next) => {
    req.session.regenerate((err) => (err ? next(err) : res.json(describe(req))));
  });

  app.post("/destroy", (req, res, next) => {
    const destroyed = req.sessionID;
    req.session.destroy((err) => (err ? next(err) : res.json({ ...describe(req), destroyed })));
  });

  app.post("/touch", (req, res) => {
    req.session.touch();
    res.json(describe(req));
  });

  // Store failures (e.g. Redis stopped by a test) become JSON 500s.
  // eslint-disable-next-line no-unused-vars
  app.use((err, req, res, next) => {
    console.error(`request error: ${err.stack || err}`);
    res.status(500).json({ error: String(err.message || err) });
  });

  const server = app.listen(config.port, "127.0.0.1", (err) => {
    if (err) fail(`cannot listen: ${err.message}`);
    console.log(`listening on http://127.0.0.1:${server.address().port}`);
  });
  server.on("error", (err) => fail(`server error: ${err.message}`));

  const shutdown = () => {
    server.close();
    server.closeAllConnections();
    client.destroy();
    process.exit(0);
  };
  process.on("SIGTERM", shutdown);
  process.on("SIGINT", shutdown);
}

main().catch((err) => fail(err.stack || String(err)));
