#!/usr/bin/env node
// Micro-benchmark of the tables of a statement for query rules (issue 4, point 2):
// µs per statement for a node-sql-parser parse (parseTables, uncached), a cached
// lookup (TableExtractor.get on a digest hash already known), and what the engine
// pays per statement when a rule names tables (digestHash + cached lookup). For
// scale, the routing decision (decideRoute, no rule) and matching 10 rules that
// need neither digest nor tables.
//   npx tsc -b && node bench/tables.js [--iterations 200000] [--parses 2000] [--json out.json]
// Each cell is the median of 5 rounds over 200 pre-built statements per shape
// (random ids), after a warm-up.
"use strict";
const path = require("node:path");
const fs = require("node:fs");
const routing = require(path.join(__dirname, "../data-plane/dist/routing/index.js"));
const { parseTables, createTableExtractor, digestHash, classify, decideRoute, createSessionRouteState, compileRules, createRuleContext } = routing;

const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : dflt;
};
const ITERATIONS = Number(opt("iterations", "200000"));
const PARSES = Number(opt("parses", "2000"));
const jsonOut = opt("json", null);

let seed = 42;
const rand = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 0x100000000);
const id = () => 1 + Math.floor(rand() * 10000);
const digits = (n) => Array.from({ length: n }, () => Math.floor(rand() * 10)).join("");
const cval = () => Array.from({ length: 10 }, () => digits(11)).join("-");

const SHAPES = [
  ["point_select", () => `SELECT c FROM sbtest1 WHERE id=${id()}`],
  ["distinct_range", () => { const a = id(); return `SELECT DISTINCT c FROM sbtest1 WHERE id BETWEEN ${a} AND ${a + 99} ORDER BY c`; }],
  ["non_index_update", () => `UPDATE sbtest1 SET c='${cval()}' WHERE id=${id()}`],
  ["insert", () => `INSERT INTO sbtest1 (id, k, c, pad) VALUES (${id()}, ${id()}, '${cval()}', '${cval()}')`],
  ["join_subquery", () => `SELECT o.id, c.name FROM shop.orders o JOIN customers c ON c.id = o.customer_id WHERE o.id IN (SELECT order_id FROM items WHERE sku = 'x${id()}') ORDER BY o.id DESC LIMIT 10`],
];

const POOL = 200;
const pools = SHAPES.map(([, make]) => Array.from({ length: POOL }, () => {
  const sql = make();
  const bytes = Buffer.from(sql, "utf8");
  return { sql, bytes, hash: digestHash(bytes), c: classify(bytes) };
}));

const extractor = createTableExtractor();
const session = createSessionRouteState();
const SPLIT = 3; // ListenerMode.Split
const tenRules = compileRules(Array.from({ length: 10 }, (_, i) => ({
  name: `r${i}`, match: { users: [`user${i}`], kinds: ["UPDATE"], digests: [], listeners: [], schemas: [], tables: [], pattern: "" },
})));

let sink = 0;
const OPS = {
  "parse (uncached)": [PARSES, (s) => { const t = parseTables(s.sql); sink += t === null ? 0 : t.length; }],
  "cached lookup": [ITERATIONS, (s) => { sink += extractor.get(s.sql, s.hash).length; }],
  "digestHash + cached lookup": [ITERATIONS, (s) => { sink += extractor.get(s.sql, digestHash(s.bytes)).length; }],
  "decideRoute (no rule)": [ITERATIONS, (s) => { sink += decideRoute(SPLIT, s.c, session, null).target; }],
  "match 10 rules (no digest/tables)": [ITERATIONS, (s) => {
    const ctx = createRuleContext({ user: "app", schema: "shop", listener: "split", sql: s.sql, classification: s.c, bytes: s.bytes }, extractor);
    sink += tenRules.match(ctx) === null ? 1 : 0;
  }],
};

const ROUNDS = 5;
function time(op, pool, n) {
  const per = Math.max(1, Math.ceil(n / ROUNDS));
  const results = [];
  for (let r = 0; r < ROUNDS; r++) {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < per; i++) op(pool[i % pool.length]);
    results.push(Number(process.hrtime.bigint() - t0) / 1000 / per);
  }
  results.sort((a, b) => a - b);
  return results[ROUNDS >> 1];
}

// warm-up (also fills the cache: every digest of the pools is cached before the lookups are timed)
for (const [n, op] of Object.values(OPS)) for (const p of pools) time(op, p, Math.max(POOL, Math.ceil(n / 10)));

const rows = [];
SHAPES.forEach(([name], s) => {
  const row = { statement: name, bytes: Math.round(pools[s].reduce((a, x) => a + x.bytes.length, 0) / POOL) };
  for (const [opName, [n, op]] of Object.entries(OPS)) row[opName] = Number(time(op, pools[s], n).toFixed(3));
  rows.push(row);
});

const cols = ["statement", "bytes", ...Object.keys(OPS)];
const width = cols.map((c) => Math.max(c.length, ...rows.map((r) => String(r[c]).length)));
const line = (cells) => cells.map((c, i) => String(c).padEnd(width[i])).join("  ");
console.log(`node ${process.version}, parses: ${PARSES}, other cells: ${ITERATIONS} calls (median of ${ROUNDS} rounds) after a warm-up; µs per statement`);
console.log(line(cols));
for (const r of rows) console.log(line(cols.map((c) => r[c])));
console.log(`cache: ${JSON.stringify(extractor.stats())}`);
if (jsonOut) fs.writeFileSync(jsonOut, JSON.stringify({ date: new Date().toISOString(), node: process.version, iterations: ITERATIONS, parses: PARSES, rows }, null, 2) + "\n");
if (sink === -1) console.log(sink);
