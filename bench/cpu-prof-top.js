#!/usr/bin/env node
// The functions of a V8 CPU profile (.cpuprofile, from node --cpu-prof) by self and by total
// (inclusive) time, as a share of the profile's non-idle samples:
//   node bench/cpu-prof-top.js FILE.cpuprofile [--top 40] [--filter routed-session]
// --filter keeps rows whose function or file contains the text.
"use strict";
const fs = require("node:fs");
const { parseArgs } = require("node:util");

const { values: opt, positionals } = parseArgs({
  allowPositionals: true,
  options: { top: { type: "string", default: "40" }, filter: { type: "string", default: "" } },
});
if (positionals.length !== 1) {
  console.error("usage: node bench/cpu-prof-top.js FILE.cpuprofile [--top N] [--filter TEXT]");
  process.exit(2);
}
const prof = JSON.parse(fs.readFileSync(positionals[0], "utf8"));
const byId = new Map(prof.nodes.map((n) => [n.id, n]));
const parent = new Map();
for (const n of prof.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
const hits = new Map();
for (const s of prof.samples) hits.set(s, (hits.get(s) ?? 0) + 1);

const label = (n) => {
  const f = n.callFrame;
  const file = f.url.replace(/^.*\/(data-plane|node_modules)\//, "$1/").replace(/^node:/, "");
  return `${f.functionName || "(anonymous)"} ${file}:${f.lineNumber + 1}`;
};
const IDLE = new Set(["(idle)", "(program)", "(garbage collector)"]);
let total = 0;
const self = new Map();
const incl = new Map();
for (const [id, count] of hits) {
  const n = byId.get(id);
  if (IDLE.has(n.callFrame.functionName) && n.callFrame.functionName !== "(garbage collector)") continue;
  total += count;
  const l = label(n);
  self.set(l, (self.get(l) ?? 0) + count);
  const seen = new Set();
  for (let cur = id; cur !== undefined; cur = parent.get(cur)) {
    const cl = label(byId.get(cur));
    if (seen.has(cl)) continue; // recursion counts once
    seen.add(cl);
    incl.set(cl, (incl.get(cl) ?? 0) + count);
  }
}
const top = Number(opt.top);
const show = (title, m) => {
  console.log(`\n${title} (% of ${total} non-idle samples)`);
  [...m]
    .filter(([l]) => opt.filter === "" || l.includes(opt.filter))
    .sort((a, b) => b[1] - a[1])
    .slice(0, top)
    .forEach(([l, c]) => console.log(`${((100 * c) / total).toFixed(1).padStart(6)}  ${l}`));
};
show("self", self);
show("total", incl);
