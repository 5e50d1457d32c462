#!/usr/bin/env node
// sysbench oltp_point_select through three paths, interleaved in one run so that
// machine noise hits them alike:
//   direct   sysbench → MariaDB
//   pipe     sysbench → bare Node.js socket pipe (bench/pipe.js) → MariaDB
//   mysqlgw  sysbench → data plane (real binary, config from etcd) → MariaDB
// For 1 and 16 threads it prints QPS, p50 latency, the ratio to direct and to
// the pipe, and the proxy's CPU microseconds per query (utime+stime from /proc,
// summed over the process tree). Everything runs on loopback ports chosen here.
//
//   npm run build && node bench/point-select.js [--seconds 10] [--rounds 3] [--threads 1,16] [--workers 1] [--out FILE]
"use strict";
const { spawn, execFileSync } = require("node:child_process");
const fs = require("node:fs");
const os = require("node:os");
const path = require("node:path");
const { parseArgs } = require("node:util");
const sb = require("../sandbox/dist/index.js");

const { values: opt } = parseArgs({
  options: {
    seconds: { type: "string", default: "10" },
    rounds: { type: "string", default: "3" },
    threads: { type: "string", default: "1,16" },
    workers: { type: "string", default: "1" },
    "table-size": { type: "string", default: "10000" },
    out: { type: "string" },
  },
});
const SECONDS = Number(opt.seconds);
const ROUNDS = Number(opt.rounds);
const THREADS = opt.threads.split(",").map(Number);
const TICK_US = 1e6 / Number(execFileSync("getconf", ["CLK_TCK"]).toString().trim());
const PASSWORD = "bench-password";

function log(msg) {
  process.stderr.write(`${new Date().toISOString().slice(11, 19)} ${msg}\n`);
}

/** utime+stime in µs of pid and all its descendants. */
function cpuMicros(pid) {
  let total = 0;
  const stack = [pid];
  for (let guard = 0; stack.length > 0 && guard < 1000; guard++) {
    const p = stack.pop();
    let stat;
    try {
      stat = fs.readFileSync(`/proc/${p}/stat`, "utf8");
    } catch {
      continue;
    }
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    total += (Number(fields[11]) + Number(fields[12])) * TICK_US; // utime, stime (fields 14, 15)
    for (const t of fs.readdirSync(`/proc/${p}/task`)) {
      try {
        for (const c of fs.readFileSync(`/proc/${p}/task/${t}/children`, "utf8").trim().split(/\s+/)) if (c) stack.push(Number(c));
      } catch {
        /* task ended */
      }
    }
  }
  return total;
}

function sysbench(port, threads, command, seconds) {
  const args = [
    "oltp_point_select", "--db-driver=mysql", "--mysql-host=127.0.0.1", `--mysql-port=${port}`,
    "--mysql-user=sb", `--mysql-password=${PASSWORD}`, "--mysql-db=sbtest", "--tables=1",
    `--table-size=${opt["table-size"]}`, `--threads=${threads}`, `--time=${seconds}`, "--percentile=50",
    "--report-interval=0", "--db-ps-mode=disable", command,
  ];
  return new Promise((resolve, reject) => {
    const child = spawn("sysbench", args, { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    child.stdout.on("data", (d) => (out += d));
    child.stderr.on("data", (d) => (out += d));
    const timer = setTimeout(() => child.kill("SIGKILL"), (seconds + 60) * 1000);
    child.on("exit", (code) => {
      clearTimeout(timer);
      if (code !== 0) return reject(new Error(`sysbench ${command} on port ${port} exited ${code}:\n${out}`));
      resolve(out);
    });
  });
}

function parseRun(out) {
  const q = /queries:\s+(\d+)\s+\(([\d.]+) per sec\.\)/.exec(out);
  const p50 = /50th percentile:\s+([\d.]+)/.exec(out);
  const errs = /ignored errors:\s+(\d+)/.exec(out);
  if (!q) throw new Error(`cannot parse sysbench output:\n${out}`);
  return { queries: Number(q[1]), qps: Number(q[2]), p50ms: p50 ? Number(p50[1]) : NaN, errors: errs ? Number(errs[1]) : 0 };
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

async function main() {
  log("starting MariaDB, etcd, control plane");
  const db = await sb.startMariaDB({
    accounts: [{ user: "sb", password: PASSWORD }],
    extraArgs: ["--innodb-buffer-pool-size=256M", "--max-connections=500", "--skip-log-bin"],
  });
  await db.query("CREATE DATABASE IF NOT EXISTS sbtest");
  await sysbench(db.port, 1, "prepare", 60);
  const etcd = await sb.startEtcd();
  const cp = await sb.startControlPlane({ etcd });
  const gwPort = await sb.freePort();
  const policy = {
    clusters: [{ name: "bench", backends: [{ name: "db", address: db.address }] }],
    listeners: [{ name: "bench", bindAddress: "127.0.0.1", port: gwPort, cluster: "bench" }],
    users: [{ name: "sb", passwordHash: nativeHash(PASSWORD), backendCredentials: { user: "sb", secretRef: "env:BENCH_BACKEND_PASSWORD" } }],
  };
  const res = await fetch(`${cp.url}/v1/policy:apply`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ policy, appliedBy: "bench" }) });
  if (!res.ok) throw new Error(`apply failed: ${res.status} ${await res.text()}`);
  const dp = await sb.startDataPlane({ etcd, workers: Number(opt.workers), env: { BENCH_BACKEND_PASSWORD: PASSWORD }, waitForConfig: true });
  const pipePort = await sb.freePort();
  // its own session, as the sandbox starts the data plane: with autogroup scheduling a proxy in
  // sysbench's session group is scheduled differently (docs/benchmarks.md, split listener section)
  const pipe = spawn(process.execPath, [path.join(__dirname, "pipe.js"), String(pipePort), db.address], { stdio: ["ignore", "pipe", "inherit"], detached: true });
  await new Promise((resolve) => pipe.stdout.once("data", resolve));

  const targets = [
    { name: "direct", port: db.port, pid: null },
    { name: "pipe", port: pipePort, pid: pipe.pid },
    { name: "mysqlgw", port: gwPort, pid: dp.pid },
  ];
  // Warm up every path (JIT, buffer pool, connections).
  for (const t of targets) await sysbench(t.port, 16, "run", 3);

  const runs = [];
  try {
    for (let round = 1; round <= ROUNDS; round++) {
      for (const threads of THREADS) {
        for (const t of targets) {
          const cpu0 = t.pid ? cpuMicros(t.pid) : 0;
          const r = parseRun(await sysbench(t.port, threads, "run", SECONDS));
          const cpu = t.pid ? cpuMicros(t.pid) - cpu0 : NaN;
          const row = { round, threads, target: t.name, ...r, cpuUsPerQuery: t.pid ? cpu / r.queries : null };
          runs.push(row);
          log(`round ${round} threads ${threads} ${t.name}: ${r.qps.toFixed(0)} qps, p50 ${r.p50ms} ms${t.pid ? `, ${(cpu / r.queries).toFixed(1)} µs CPU/query` : ""}`);
        }
      }
    }
  } finally {
    pipe.kill("SIGTERM");
    await dp.stop();
    await cp.stop();
    await sb.stopAll();
  }

  const summary = [];
  for (const threads of THREADS) {
    const pick = (name, key) => median(runs.filter((r) => r.threads === threads && r.target === name).map((r) => r[key]));
    const direct = pick("direct", "qps");
    const pipeQps = pick("pipe", "qps");
    for (const t of targets) {
      const qps = pick(t.name, "qps");
      summary.push({
        threads, target: t.name, qps: Math.round(qps), p50ms: pick(t.name, "p50ms"),
        vsDirect: +(qps / direct).toFixed(3), vsPipe: +(qps / pipeQps).toFixed(3),
        cpuUsPerQuery: t.pid ? +pick(t.name, "cpuUsPerQuery").toFixed(1) : null,
      });
    }
  }
  const lines = ["| threads | path | QPS (median) | p50 ms | × direct | × pipe | proxy CPU µs/query |", "|---|---|---|---|---|---|---|"];
  for (const s of summary) lines.push(`| ${s.threads} | ${s.target} | ${s.qps} | ${s.p50ms} | ${s.vsDirect} | ${s.vsPipe} | ${s.cpuUsPerQuery ?? "—"} |`);
  const report = {
    date: new Date().toISOString(), host: { cpus: os.cpus().length, model: os.cpus()[0]?.model, node: process.version },
    settings: { seconds: SECONDS, rounds: ROUNDS, threads: THREADS, workers: Number(opt.workers), tableSize: Number(opt["table-size"]) },
    summary, runs,
  };
  console.log(lines.join("\n"));
  if (opt.out) {
    fs.writeFileSync(opt.out, JSON.stringify(report, null, 2) + "\n");
    log(`wrote ${opt.out}`);
  }
}

function nativeHash(password) {
  const crypto = require("node:crypto");
  const sha1 = (b) => crypto.createHash("sha1").update(b).digest();
  return "*" + sha1(sha1(Buffer.from(password))).toString("hex").toUpperCase();
}

main().catch(async (err) => {
  console.error(`bench failed: ${err.stack || err}`);
  await sb.stopAll().catch(() => {});
  process.exit(1);
});
