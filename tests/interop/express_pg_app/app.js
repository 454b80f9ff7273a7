"use strict";
// Reference Express app for the SQLStore interop tests: express-session with
// connect-pg-simple on the PostgreSQL table the Flask app uses. Configured
// only by env vars:
//
//   PORT               TCP port on 127.0.0.1 (0 = let the OS choose; the
//                      chosen port is printed in the "listening" line)
//   DATABASE_URL       postgres://user@host:port/db used by connect-pg-simple
//   TABLE              session table name (default "session")
//   SECRETS            JSON array of strings; the first signs, all verify
//   COOKIE_MAX_AGE_MS  optional cookie maxAge in ms; unset/empty means a
//                      browser-session cookie (no Expires)
//   PROTECT_JS         optional path of node/protect.js: the store is wrapped
//                      with it, with PROTECT_HASH_IDS ("1" or not) and
//                      PROTECT_KEYS (a JSON array of encryption keys)
//   PGOPTIONS          "-c timezone=UTC", so that connect-pg-simple's expire
//                      times are UTC as SQLStore's are (node-postgres reads it)
//
// Every route answers JSON except /health.

const express = require("express");
const session = require("express-session");
const PgStore = require("connect-pg-simple")(session);
const { Pool } = require("pg");

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
  console.error(`express_pg_app: ${message}`);
  process.exit(2);
}

function readConfig(env) {
  const port = Number(env.PORT);
  if (env.PORT === undefined || !Number.isInteger(port) || port < 0 || port > 65535) {
    fail(`PORT must be an integer 0..65535, got ${JSON.stringify(env.PORT)}`);
  }
  if (!env.DATABASE_URL) fail("DATABASE_URL is required");
  let secrets;
  try {
    secrets = JSON.parse(env.SECRETS || "");
  } catch (err) {
    fail(`SECRETS must be a JSON array of strings: ${err.message}`);
  }
  if (!Array.isArray(secrets) || secrets.length === 0) fail("SECRETS must be a non-empty array");
  let maxAge;
  if (env.COOKIE_MAX_AGE_MS !== undefined && env.COOKIE_MAX_AGE_MS !== "") {
    maxAge = Number(env.COOKIE_MAX_AGE_MS);
  }
  return { port, databaseUrl: env.DATABASE_URL, table: env.TABLE || "session", secrets, maxAge };
}

// The session as the tests see it: id, user data (no "cookie"), cookie JSON.
function describe(req) {
  if (!req.session) return { id: null, data: null, cookie: null };
  const { cookie, ...data } = req.session;
  return { id: req.sessionID, data, cookie: cookie.toJSON() };
}

function main() {
  const config = readConfig(process.env);
  const pool = new Pool({ connectionString: config.databaseUrl });
  pool.on("error", (err) => console.error(`pg pool error: ${err.message}`));

  const app = express();
  app.disable("x-powered-by");
  app.use(express.json());
  app.get("/health", (req, res) => res.type("text/plain").send("ok"));

  const cookie = config.maxAge === undefined ? {} : { maxAge: config.maxAge };
  app.use(
    session({
      name: "connect.sid",
      secret: config.secrets,
      resave: false,
      saveUninitialized: false,
      cookie,
      store: wrapStore(new PgStore({ pool, tableName: config.table, pruneSessionInterval: false })),
    }),
  );

  app.get("/get", (req, res) => res.json(describe(req)));

  app.post("/set", (req, res) => {
    for (const [key, value] of Object.entries(req.body || {})) {
      if (key === "cookie") return res.status(400).json({ error: '"cookie" is reserved' });
      req.session[key] = value;
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
    pool.end().finally(() => process.exit(0));
  };
  process.on("SIGTERM", shutdown);
  process.on("SIGINT", shutdown);
}

main();
