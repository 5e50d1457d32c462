#!/usr/bin/env node
// Micro-benchmark of the query rules' result cache (issue 4, point 5):
// µs per call of ResultCache.get on a hit (key already built), cacheKey +
// get (what the engine pays per cacheable statement), a miss, put (with LRU
// eviction once full), and ResponseRecorder add + take of one response.
//   npx tsc -b && node bench/result-cache.js [--iterations 1000000] [--entries 10000] [--json out.json]
// Each cell is the median of 5 rounds after a warm-up; no I/O.
"use strict";
const path = require("node:path");
const fs = require("node:fs");
const { ResultCache, ResponseRecorder, cacheKey } = require(path.join(__dirname, "../data-plane/dist/session/result-cache.js"));

const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : dflt;
};
const ITERATIONS = Number(opt("iterations", "1000000"));
const ENTRIES = Number(opt("entries", "10000"));
const jsonOut = opt("json", null);

const CAPS = 0x01aaa20f; // a typical client's: PROTOCOL_41, DEPRECATE_EOF, SESSION_TRACK, MULTI_RESULTS, …
const sqls = Array.from({ length: ENTRIES }, (_, i) => `SELECT name, iso2, iso3, region FROM countries WHERE id = ${i + 1}`);
const keys = sqls.map((s) => cacheKey("app", "shop", s, CAPS));
const ROWS = [256, 4096, 65536];

const ROUNDS = 5;
function time(op, n) {
  const per = Math.max(1, Math.ceil(n / ROUNDS));
  const results = [];
  for (let r = 0; r < ROUNDS; r++) {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < per; i++) op(i);
    results.push(Number(process.hrtime.bigint() - t0) / 1000 / per);
  }
  results.sort((a, b) => a - b);
  return results[ROUNDS >> 1];
}

let sink = 0;
const rows = [];
for (const size of ROWS) {
  const body = Buffer.alloc(size, 0x61);
  const big = new ResultCache({ maxBytes: 1 << 30 });
  for (const k of keys) big.put(k, body, 3_600_000, 0);
  const small = new ResultCache({ maxBytes: Math.max(64 * 1024, (ENTRIES / 10) * (size + 300)) }); // holds ~1/10: every put evicts
  const rec = new ResponseRecorder(1 << 20);
  const chunk = Buffer.alloc(size, 0x62);
  const ops = {
    "get hit": (i) => { sink += big.get(keys[i % ENTRIES], 1).length; },
    "cacheKey + get hit": (i) => { sink += big.get(cacheKey("app", "shop", sqls[i % ENTRIES], CAPS), 1).length; },
    "get miss": (i) => { sink += big.get(keys[i % ENTRIES] + "x", 1) === null ? 1 : 0; },
    "put (evicting)": (i) => { small.put(keys[i % ENTRIES], body, 3_600_000, 1); },
    "recorder add + take": () => { rec.add(chunk); sink += rec.take().length; },
  };
  for (const op of Object.values(ops)) time(op, Math.ceil(ITERATIONS / 10)); // warm-up
  const row = { "response bytes": size };
  for (const [name, op] of Object.entries(ops)) row[name] = Number(time(op, ITERATIONS).toFixed(3));
  row["entries (get)"] = big.stats().entries;
  rows.push(row);
}

const cols = Object.keys(rows[0]);
const width = cols.map((c) => Math.max(c.length, ...rows.map((r) => String(r[c]).length)));
const line = (cells) => cells.map((c, i) => String(c).padEnd(width[i])).join("  ");
console.log(`node ${process.version}, ${ITERATIONS} calls per cell (median of ${ROUNDS} rounds) after a warm-up, ${ENTRIES} keys; µs per call`);
console.log(line(cols));
for (const r of rows) console.log(line(cols.map((c) => r[c])));
if (jsonOut) fs.writeFileSync(jsonOut, JSON.stringify({ date: new Date().toISOString(), node: process.version, iterations: ITERATIONS, entries: ENTRIES, rows }, null, 2) + "\n");
if (sink === -1) console.log(sink);
