#!/usr/bin/env node
// Micro-benchmark of statement classification and digests (issue 4, point 9):
// µs per statement for classify(), classify() + digest() (text and hash) and
// classify() + digestHash(), over sysbench's oltp_read_write statements.
//   npx tsc -b && node bench/classify.js [--iterations 1000000] [--json out.json]
// Each statement shape is timed separately over 1,000 pre-built COM_QUERY
// payloads (command byte + text, so classification runs on a view at offset 1)
// with random ids and sysbench-like c/pad strings, after a warm-up; each cell
// is the median of 5 rounds of iterations/5 calls.
"use strict";
const path = require("node:path");
const fs = require("node:fs");
const { classify } = require(path.join(__dirname, "../data-plane/dist/routing/classify.js"));
const { digest, digestHash } = require(path.join(__dirname, "../data-plane/dist/routing/digest.js"));
const { createClassification } = require(path.join(__dirname, "../data-plane/dist/routing/statement-kind.js"));

const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : dflt;
};
const ITERATIONS = Number(opt("iterations", "1000000"));
const WARMUP = Math.max(1000, Math.floor(ITERATIONS / 5));
const jsonOut = opt("json", null);

// deterministic PRNG so runs are comparable
let seed = 42;
const rand = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 0x100000000);
const id = () => 1 + Math.floor(rand() * 10000);
const digits = (n) => Array.from({ length: n }, () => Math.floor(rand() * 10)).join("");
// sysbench: c = 10 groups of 11 digits, pad = 5 groups, joined by '-'
const cval = () => Array.from({ length: 10 }, () => digits(11)).join("-");
const padval = () => Array.from({ length: 5 }, () => digits(11)).join("-");

// sysbench oltp_read_write (oltp_common.lua) statements, with the default range size 100
const SHAPES = [
  ["point_select", 10, () => `SELECT c FROM sbtest1 WHERE id=${id()}`],
  ["simple_range", 1, () => { const a = id(); return `SELECT c FROM sbtest1 WHERE id BETWEEN ${a} AND ${a + 99}`; }],
  ["sum_range", 1, () => { const a = id(); return `SELECT SUM(k) FROM sbtest1 WHERE id BETWEEN ${a} AND ${a + 99}`; }],
  ["order_range", 1, () => { const a = id(); return `SELECT c FROM sbtest1 WHERE id BETWEEN ${a} AND ${a + 99} ORDER BY c`; }],
  ["distinct_range", 1, () => { const a = id(); return `SELECT DISTINCT c FROM sbtest1 WHERE id BETWEEN ${a} AND ${a + 99} ORDER BY c`; }],
  ["index_update", 1, () => `UPDATE sbtest1 SET k=k+1 WHERE id=${id()}`],
  ["non_index_update", 1, () => `UPDATE sbtest1 SET c='${cval()}' WHERE id=${id()}`],
  ["delete", 1, () => `DELETE FROM sbtest1 WHERE id=${id()}`],
  ["insert", 1, () => `INSERT INTO sbtest1 (id, k, c, pad) VALUES (${id()}, ${id()}, '${cval()}', '${padval()}')`],
  ["begin", 1, () => "BEGIN"],
  ["commit", 1, () => "COMMIT"],
];

const POOL = 1000;
const payload = (sql) => Buffer.concat([Buffer.from([0x03]), Buffer.from(sql, "utf8")]);
const pools = SHAPES.map(([, , make]) => Array.from({ length: POOL }, () => payload(make())));

const out = createClassification();
let sink = 0;
const OPS = {
  classify: (b) => {
    classify(b, 1, b.length, out);
    sink += out.kind;
  },
  "classify+digest": (b) => {
    classify(b, 1, b.length, out);
    sink += digest(b, 1, b.length).text.length;
  },
  "classify+digestHash": (b) => {
    classify(b, 1, b.length, out);
    sink += digestHash(b, 1, b.length).length;
  },
  "toString (reference)": (b) => {
    sink += b.toString("utf8", 1).length;
  },
};

const ROUNDS = 5;
/** µs per call of op over pool, n calls: the median of ROUNDS rounds of n / ROUNDS (the machine is shared and noisy). */
function time(op, pool, n) {
  const per = Math.ceil(n / ROUNDS);
  const results = [];
  for (let r = 0; r < ROUNDS; r++) {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < per; i++) op(pool[i % pool.length]);
    results.push(Number(process.hrtime.bigint() - t0) / 1000 / per);
  }
  results.sort((a, b) => a - b);
  return results[ROUNDS >> 1];
}

// mixed pool in oltp_read_write proportions (10 point selects per transaction, one of each other)
const mix = [];
SHAPES.forEach(([, weight], s) => {
  for (let i = 0; i < POOL; i++) for (let w = 0; w < weight; w++) mix.push(pools[s][i]);
});
for (let i = mix.length - 1; i > 0; i--) {
  const j = Math.floor(rand() * (i + 1));
  [mix[i], mix[j]] = [mix[j], mix[i]];
}

const rows = [];
for (const op of Object.values(OPS)) for (const p of pools) time(op, p, Math.ceil(WARMUP / pools.length));
for (let s = 0; s <= SHAPES.length; s++) {
  const isMix = s === SHAPES.length;
  const name = isMix ? "oltp_read_write mix" : SHAPES[s][0];
  const pool = isMix ? mix : pools[s];
  const bytes = isMix ? mix.reduce((a, b) => a + b.length - 1, 0) / mix.length : pool.reduce((a, b) => a + b.length - 1, 0) / POOL;
  const row = { statement: name, bytes: Math.round(bytes) };
  for (const [opName, op] of Object.entries(OPS)) row[opName] = Number(time(op, pool, ITERATIONS).toFixed(3));
  rows.push(row);
}

const cols = ["statement", "bytes", ...Object.keys(OPS)];
const width = cols.map((c) => Math.max(c.length, ...rows.map((r) => String(r[c]).length)));
const line = (cells) => cells.map((c, i) => String(c).padEnd(width[i])).join("  ");
console.log(`node ${process.version}, ${ITERATIONS} iterations per cell (median of ${ROUNDS} rounds) after ${WARMUP} warm-up; µs per statement`);
console.log(line(cols));
for (const r of rows) console.log(line(cols.map((c) => r[c])));
if (jsonOut) fs.writeFileSync(jsonOut, JSON.stringify({ date: new Date().toISOString(), node: process.version, iterations: ITERATIONS, rows }, null, 2) + "\n");
if (sink === -1) console.log(sink);
