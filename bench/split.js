#!/usr/bin/env node
// sysbench through a SPLIT listener (issue 4, point 9), interleaved in one run
// with the paths it is compared to, so that machine noise hits them alike:
//   direct   sysbench → one replica
//   pipe     sysbench → bare Node.js socket pipe (bench/pipe.js) → one replica
//   pipe2    the same bare pipe over both replicas (connections alternate between them)
//   ro       (--read-only) the same data plane's READ_ONLY listener: pass-through, a replica per connection
//   split-nomux (--no-multiplexing) the same data plane's SPLIT listener with multiplexing off: each
//            session holds a connection per role (primary, one replica) for its life
//   split    sysbench → data plane (real binary, config from etcd), a SPLIT
//            listener, multiplexed over the pool → primary + 2 replicas
// Workloads: oltp_point_select, oltp_read_only (its reads sit between BEGIN and
// COMMIT, so on a SPLIT listener they all run on the primary) and
// oltp_read_only --skip-trx (the same reads without the transaction: replicas).
// For each it prints median QPS, p50 latency, the ratio to direct and to the
// pipe, the proxy's CPU µs per query (utime+stime from /proc, summed over the
// process tree), and for split the backend connections of the gateway's backend
// user (SHOW PROCESSLIST on every server) and those lent to sessions at once
// (the data plane's mysqlgw_pool_connections{state="in_use"}), sampled during
// the run: sysbench threads ÷ their peaks is the multiplexing ratio under load.
//
//   npm run build && node bench/split.js [--seconds 10] [--rounds 3] [--threads 16]
//     [--workloads point_select,read_only,read_only_skip_trx] [--workers 1]
//     [--pool-max 16] [--table-size 10000] [--cpu-prof DIR] [--node-flags=--perf-basic-prof]
//     [--baseline ROOT] [--dp-args "ARGS"] [--baseline-dp-args "ARGS"] [--otlp-sink] [--out FILE]
// --baseline ROOT adds a fourth path, "split@baseline": the data plane built in ROOT
// (e.g. `git archive <commit> | tar -x -C ROOT`, node_modules linked, `npx tsc -b
// data-plane`), with its own etcd and control plane, the same policy on another
// port and backend user — an interleaved A/B of two builds (or of the same build with
// other flags: --dp-args / --baseline-dp-args add data-plane flags to split / split@baseline).
// --otlp-sink starts bench/otlp-sink.js (a stand-in collector in its own process) and
// points split's data plane at it (--otlp-endpoint): tracing at the policy's sampling
// (none in the bench policy: every statement) vs --baseline without it, e.g.
//   node bench/split.js --workloads point_select --baseline . --otlp-sink
// --gateway JSON sets the Gateway of split's policy (proto JSON), e.g. '{"tracing":{"samplingRatio":0.01}}'.
// Defaults take about 6 minutes (3 rounds × 3 workloads × 3 paths × 10 s, plus setup).
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
    threads: { type: "string", default: "16" },
    workloads: { type: "string", default: "point_select,read_only,read_only_skip_trx" },
    workers: { type: "string", default: "1" },
    "read-only": { type: "boolean", default: false },
    "no-multiplexing": { type: "boolean", default: false },
    "pool-max": { type: "string", default: "16" },
    "table-size": { type: "string", default: "10000" },
    "cpu-prof": { type: "string" },
    "node-flags": { type: "string" },
    baseline: { type: "string" },
    "dp-args": { type: "string", default: "" },
    "baseline-dp-args": { type: "string", default: "" },
    "otlp-sink": { type: "boolean", default: false },
    gateway: { type: "string" },
    "sample-ms": { type: "string", default: "250" },
    out: { type: "string" },
  },
});
const SECONDS = Number(opt.seconds);
const ROUNDS = Number(opt.rounds);
const THREADS = opt.threads.split(",").map(Number);
const POOL_MAX = Number(opt["pool-max"]);
/** Interval of the backend-connection sampling during split runs; 0: none. */
const SAMPLE_MS = Number(opt["sample-ms"]);
const TICK_US = 1e6 / Number(execFileSync("getconf", ["CLK_TCK"]).toString().trim());
const PASSWORD = "bench-password";
const GW_BACKEND_USER = "gwpool";
/** name → sysbench test and extra options */
const WORKLOADS = {
  point_select: ["oltp_point_select"],
  read_only: ["oltp_read_only"],
  read_only_skip_trx: ["oltp_read_only", "--skip-trx=on"],
};
const workloads = opt.workloads.split(",").map((w) => {
  if (!(w in WORKLOADS)) throw new Error(`unknown workload '${w}': use ${Object.keys(WORKLOADS).join(", ")}`);
  return w;
});

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

/** read and write system calls (syscr, syscw from /proc/<pid>/io) of pid and its descendants. */
function syscalls(pid) {
  const total = { reads: 0, writes: 0 };
  const stack = [pid];
  for (let guard = 0; stack.length > 0 && guard < 1000; guard++) {
    const p = stack.pop();
    try {
      const io = fs.readFileSync(`/proc/${p}/io`, "utf8");
      total.reads += Number(/syscr:\s+(\d+)/.exec(io)?.[1] ?? 0);
      total.writes += Number(/syscw:\s+(\d+)/.exec(io)?.[1] ?? 0);
      for (const t of fs.readdirSync(`/proc/${p}/task`)) {
        for (const c of fs.readFileSync(`/proc/${p}/task/${t}/children`, "utf8").trim().split(/\s+/)) if (c) stack.push(Number(c));
      }
    } catch {
      /* ended */
    }
  }
  return total;
}

function sysbench(workload, port, threads, command, seconds) {
  const [test, ...extra] = WORKLOADS[workload];
  const args = [
    test, "--db-driver=mysql", "--mysql-host=127.0.0.1", `--mysql-port=${port}`,
    "--mysql-user=sb", `--mysql-password=${PASSWORD}`, "--mysql-db=sbtest", "--mysql-ssl=off", "--tables=1",
    `--table-size=${opt["table-size"]}`, `--threads=${threads}`, `--time=${seconds}`, "--percentile=50",
    "--report-interval=0", "--db-ps-mode=disable", ...extra, command,
  ];
  return new Promise((resolve, reject) => {
    const child = spawn("sysbench", args, { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    child.stdout.on("data", (d) => (out += d));
    child.stderr.on("data", (d) => (out += d));
    const timer = setTimeout(() => child.kill("SIGKILL"), (seconds + 60) * 1000);
    child.on("exit", (code) => {
      clearTimeout(timer);
      if (code !== 0) return reject(new Error(`sysbench ${workload} ${command} on port ${port} exited ${code}:\n${out}`));
      resolve(out);
    });
  });
}

function parseRun(out) {
  const q = /queries:\s+(\d+)\s+\(([\d.]+) per sec\.\)/.exec(out);
  const tx = /transactions:\s+(\d+)\s+\(([\d.]+) per sec\.\)/.exec(out);
  const p50 = /50th percentile:\s+([\d.]+)/.exec(out);
  const errs = /ignored errors:\s+(\d+)/.exec(out);
  if (!q) throw new Error(`cannot parse sysbench output:\n${out}`);
  return {
    queries: Number(q[1]), qps: Number(q[2]), tps: tx ? Number(tx[2]) : NaN,
    p50ms: p50 ? Number(p50[1]) : NaN, errors: errs ? Number(errs[1]) : 0,
  };
}

const median = (xs) => {
  const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

/** The gateway's backend connections on each server (primary first): open, and running a command. */
async function backendConnections(servers) {
  return Promise.all(
    servers.map(async (s) => {
      const rows = await s.query("SHOW FULL PROCESSLIST");
      const mine = rows.filter((r) => r.User === GW_BACKEND_USER);
      return { open: mine.length, active: mine.filter((r) => r.Command !== "Sleep").length };
    }),
  );
}

/** The data plane's pools from its /metrics: connections lent to sessions (in_use) and requests waiting, summed. */
async function poolGauges(metricsUrl) {
  const text = await (await fetch(metricsUrl)).text();
  let inUse = null; // null: the data plane exports no pool gauges
  let waiting = 0;
  for (const line of text.split("\n")) {
    if (line.startsWith("mysqlgw_pool_connections{") && line.includes('state="in_use"')) inUse = (inUse ?? 0) + Number(line.slice(line.lastIndexOf(" ") + 1));
    else if (line.startsWith("mysqlgw_pool_waiting_requests{")) waiting += Number(line.slice(line.lastIndexOf(" ") + 1));
  }
  return { inUse, waiting };
}

/**
 * Samples, every intervalMs until stop(): the gateway's backend connections on the
 * servers (SHOW PROCESSLIST: open, and running a command) and its pools' gauges
 * (connections lent to sessions, requests waiting); returns peaks and medians.
 */
function sampleConnections(servers, metricsUrl, intervalMs = 250) {
  const open = [];
  const active = [];
  const inUse = [];
  const waiting = [];
  const peakPerServer = servers.map(() => 0);
  let running = true;
  const done = (async () => {
    await sb.sleep(500); // let the run ramp up
    for (let guard = 0; running && guard < 100_000; guard++) {
      const [now, g] = await Promise.all([backendConnections(servers), poolGauges(metricsUrl)]);
      open.push(now.reduce((a, b) => a + b.open, 0));
      active.push(now.reduce((a, b) => a + b.active, 0));
      if (g.inUse !== null) inUse.push(g.inUse);
      waiting.push(g.waiting);
      now.forEach((n, j) => (peakPerServer[j] = Math.max(peakPerServer[j], n.open)));
      await sb.sleep(intervalMs);
    }
  })();
  return async () => {
    running = false;
    await done;
    return {
      samples: open.length, peakOpen: Math.max(0, ...open), medianOpen: median(open),
      peakActive: Math.max(0, ...active), medianActive: median(active), peakOpenPerServer: peakPerServer,
      peakInUse: inUse.length > 0 ? Math.max(...inUse) : NaN, medianInUse: median(inUse), peakWaiting: Math.max(0, ...waiting),
    };
  };
}

async function main() {
  log("starting a primary + 2 replicas, etcd, control plane");
  const cluster = await sb.startReplicatedCluster({
    replicas: 2,
    accounts: [{ user: "sb", password: PASSWORD }, { user: GW_BACKEND_USER, password: PASSWORD }, { user: "gwbase", password: PASSWORD }],
    extraArgs: ["--innodb-buffer-pool-size=128M", "--max-connections=500"],
  });
  await cluster.primary.query("CREATE DATABASE IF NOT EXISTS sbtest");
  await sysbench("point_select", cluster.primary.port, 1, "prepare", 60);
  await cluster.waitForReplicas(60_000);
  const replica = cluster.replicas[0];
  const etcd = await sb.startEtcd();
  const cp = await sb.startControlPlane({ etcd });
  const gwPort = await sb.freePort();
  const roPort = await sb.freePort();
  const nomuxPort = await sb.freePort();
  const policyFor = (port, backendUser, gateway = null, readOnlyPort = null, splitNomuxPort = null) => ({
    clusters: [
      {
        name: "bench",
        backends: [
          { name: "primary", address: cluster.primary.address, expectedRole: "ROLE_PRIMARY" },
          { name: "replica1", address: cluster.replicas[0].address, expectedRole: "ROLE_REPLICA" },
          { name: "replica2", address: cluster.replicas[1].address, expectedRole: "ROLE_REPLICA" },
        ],
        pool: { maxConnections: POOL_MAX, acquireTimeout: "10s" },
      },
    ],
    listeners: [
      { name: "bench-split", bindAddress: "127.0.0.1", port, cluster: "bench", role: "LISTENER_ROLE_SPLIT" },
      ...(readOnlyPort !== null ? [{ name: "bench-ro", bindAddress: "127.0.0.1", port: readOnlyPort, cluster: "bench", role: "LISTENER_ROLE_READ_ONLY" }] : []),
      ...(splitNomuxPort !== null ? [{ name: "bench-split-nomux", bindAddress: "127.0.0.1", port: splitNomuxPort, cluster: "bench", role: "LISTENER_ROLE_SPLIT", multiplexing: false }] : []),
    ],
    users: [{ name: "sb", passwordHash: nativeHash(PASSWORD), backendCredentials: { user: backendUser, secretRef: "env:BENCH_BACKEND_PASSWORD" } }],
    ...(gateway ? { gateway } : {}),
  });
  const apply = async (controlPlane, policy) => {
    const res = await fetch(`${controlPlane.url}/v1/policy:apply`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ policy, appliedBy: "bench" }) });
    if (!res.ok) throw new Error(`apply failed: ${res.status} ${await res.text()}`);
  };
  await apply(cp, policyFor(gwPort, GW_BACKEND_USER, opt.gateway ? JSON.parse(opt.gateway) : null, opt["read-only"] ? roPort : null, opt["no-multiplexing"] ? nomuxPort : null));
  const env = { BENCH_BACKEND_PASSWORD: PASSWORD };
  const metricsPort = await sb.freePort();
  const metricsUrl = `http://127.0.0.1:${metricsPort}/metrics`;
  const dpArgs = ["--metrics-listen", `127.0.0.1:${metricsPort}`, ...opt["dp-args"].split(" ").filter(Boolean)];
  let sink = null;
  if (opt["otlp-sink"]) {
    const proc = spawn(process.execPath, [path.join(__dirname, "otlp-sink.js"), "0"], { stdio: ["ignore", "pipe", "inherit"], detached: true });
    killOnExit(proc);
    const port = await new Promise((resolve) => proc.stdout.once("data", (d) => resolve(Number(/listening (\d+)/.exec(String(d))[1]))));
    sink = { proc, url: `http://127.0.0.1:${port}` };
    dpArgs.push("--otlp-endpoint", sink.url);
  }
  const dp = opt["cpu-prof"] || opt["node-flags"]
    ? await spawnDataPlane(path.join(__dirname, "../data-plane/dist/main.js"), etcd, env, opt["cpu-prof"], dpArgs)
    : await sb.startDataPlane({ etcd, workers: Number(opt.workers), env, args: dpArgs, waitForConfig: true });
  let baseline = null;
  if (opt.baseline) {
    const etcd2 = await sb.startEtcd();
    const cp2 = await sb.startControlPlane({ etcd: etcd2 });
    const port = await sb.freePort();
    await apply(cp2, policyFor(port, "gwbase"));
    const proc = await spawnDataPlane(path.join(path.resolve(opt.baseline), "data-plane/dist/main.js"), etcd2, env, null, ["--metrics-listen", `127.0.0.1:${await sb.freePort()}`, ...opt["baseline-dp-args"].split(" ").filter(Boolean)]);
    baseline = { port, proc, cp: cp2 };
  }
  const pipePort = await sb.freePort();
  // Every proxy runs in its own session (detached: setsid), as the sandbox starts the data
  // plane: with the kernel's autogroup scheduling (sched_autogroup_enabled=1 here) a session
  // is a scheduling group, and a proxy sharing sysbench's group is scheduled differently
  // (measured: the same data-plane build 1.3-2x faster in sysbench's group than in its own).
  const pipe = spawn(process.execPath, [path.join(__dirname, "pipe.js"), String(pipePort), replica.address], { stdio: ["ignore", "pipe", "inherit"], detached: true });
  killOnExit(pipe);
  await new Promise((resolve) => pipe.stdout.once("data", resolve));
  // pipe2: the same bare pipe over both replicas (connections alternate), the backends the split listener reads from
  const pipe2Port = await sb.freePort();
  const pipe2 = spawn(process.execPath, [path.join(__dirname, "pipe.js"), String(pipe2Port), cluster.replicas.map((r) => r.address).join(",")], { stdio: ["ignore", "pipe", "inherit"], detached: true });
  killOnExit(pipe2);
  await new Promise((resolve) => pipe2.stdout.once("data", resolve));

  const targets = [
    { name: "direct", port: replica.port, pid: null },
    { name: "pipe", port: pipePort, pid: pipe.pid },
    { name: "pipe2", port: pipe2Port, pid: pipe2.pid },
    { name: "split", port: gwPort, pid: dp.pid },
    ...(opt["read-only"] ? [{ name: "ro", port: roPort, pid: dp.pid }] : []),
    ...(opt["no-multiplexing"] ? [{ name: "split-nomux", port: nomuxPort, pid: dp.pid }] : []),
    ...(baseline ? [{ name: "split@baseline", port: baseline.port, pid: baseline.proc.pid }] : []),
  ];
  const runs = [];
  let tracing = null;
  try {
    // Warm up every path and workload (JIT, buffer pools, pool connections).
    for (const w of workloads) for (const t of targets) await sysbench(w, t.port, 16, "run", 3);
    for (let round = 1; round <= ROUNDS; round++) {
      for (const w of workloads) {
        for (const threads of THREADS) {
          for (const t of targets) {
            const stopSampling = t.name === "split" && SAMPLE_MS > 0 ? sampleConnections(cluster.servers, metricsUrl, SAMPLE_MS) : null;
            const cpu0 = t.pid ? cpuMicros(t.pid) : 0;
            const io0 = t.pid ? syscalls(t.pid) : null;
            const r = parseRun(await sysbench(w, t.port, threads, "run", SECONDS));
            const cpu = t.pid ? cpuMicros(t.pid) - cpu0 : NaN;
            const io1 = t.pid ? syscalls(t.pid) : null;
            const sys = io0 && io1 ? { readsPerQuery: +((io1.reads - io0.reads) / r.queries).toFixed(2), writesPerQuery: +((io1.writes - io0.writes) / r.queries).toFixed(2) } : null;
            const backend = stopSampling ? await stopSampling() : null;
            const row = { round, workload: w, threads, target: t.name, ...r, cpuUsPerQuery: t.pid ? cpu / r.queries : null, syscalls: sys, backend };
            runs.push(row);
            log(
              `round ${round} ${w} threads ${threads} ${t.name}: ${r.qps.toFixed(0)} qps, p50 ${r.p50ms} ms` +
                (t.pid ? `, ${(cpu / r.queries).toFixed(1)} µs CPU/query, ${sys.readsPerQuery} reads + ${sys.writesPerQuery} writes/query` : "") +
                (backend
                  ? `, backend connections open peak ${backend.peakOpen} (per server ${backend.peakOpenPerServer.join("/")}), ` +
                    (Number.isFinite(backend.peakInUse) ? `lent to sessions median ${backend.medianInUse} peak ${backend.peakInUse}, waiting peak ${backend.peakWaiting}` : "no pool gauges in /metrics")
                  : "") +
                (r.errors ? `, ${r.errors} errors` : ""),
            );
          }
        }
      }
    }
    if (sink) {
      const text = await (await fetch(metricsUrl)).text();
      const metric = (re) => [...text.matchAll(re)].reduce((a, m) => a + Number(m[1]), 0);
      tracing = {
        spansExported: metric(/^mysqlgw_trace_spans_exported_total(?:\{[^}]*\})? (\S+)$/gm),
        spansDropped: metric(/^mysqlgw_trace_spans_dropped_total\{[^}]*\} (\S+)$/gm),
        sink: await (await fetch(`${sink.url}/stats`)).json(),
      };
      log(`tracing: ${tracing.spansExported} spans exported, ${tracing.spansDropped} dropped; the sink got ${tracing.sink.requests} requests, ${(tracing.sink.bytes / 1e6).toFixed(1)} MB`);
    }
  } finally {
    pipe.kill("SIGTERM");
    pipe2.kill("SIGTERM");
    sink?.proc.kill("SIGTERM");
    if (baseline) {
      await baseline.proc.stop();
      await baseline.cp.stop();
    }
    await dp.stop();
    await cp.stop();
    await sb.stopAll();
  }

  const summary = [];
  for (const w of workloads) {
    for (const threads of THREADS) {
      const sel = (name) => runs.filter((r) => r.workload === w && r.threads === threads && r.target === name);
      const pick = (name, key) => median(sel(name).map((r) => r[key]));
      const direct = pick("direct", "qps");
      const pipeQps = pick("pipe", "qps");
      const pipe2Qps = pick("pipe2", "qps");
      for (const t of targets) {
        const qps = pick(t.name, "qps");
        const row = {
          workload: w, threads, target: t.name, qps: Math.round(qps), p50ms: pick(t.name, "p50ms"),
          vsDirect: +(qps / direct).toFixed(3), vsPipe: +(qps / pipeQps).toFixed(3), vsPipe2: +(qps / pipe2Qps).toFixed(3),
          perRoundVsPipe: t.name.startsWith("split") ? sel(t.name).map((r) => +(r.qps / sel("pipe").find((p) => p.round === r.round).qps).toFixed(3)) : undefined,
          perRoundVsPipe2: t.name.startsWith("split") ? sel(t.name).map((r) => +(r.qps / sel("pipe2").find((p) => p.round === r.round).qps).toFixed(3)) : undefined,
          // split ÷ split@baseline in the same round (e.g. tracing on ÷ off)
          perRoundVsBaseline: t.name === "split" && baseline ? sel("split").map((r) => +(r.qps / sel("split@baseline").find((p) => p.round === r.round).qps).toFixed(3)) : undefined,
          cpuUsPerQuery: t.pid ? +pick(t.name, "cpuUsPerQuery").toFixed(1) : null,
          errors: sel(t.name).reduce((a, r) => a + r.errors, 0),
        };
        if (t.name === "split" && SAMPLE_MS > 0) {
          const b = sel("split").map((r) => r.backend);
          const peakOpen = Math.max(...b.map((x) => x.peakOpen));
          const peakInUse = Math.max(...b.map((x) => (Number.isFinite(x.peakInUse) ? x.peakInUse : -Infinity)));
          row.backend = {
            peakOpen, medianOpen: median(b.map((x) => x.medianOpen)), medianActive: median(b.map((x) => x.medianActive)),
            peakOpenPerServer: b[0].peakOpenPerServer.map((_, j) => Math.max(...b.map((x) => x.peakOpenPerServer[j]))),
            peakInUse, medianInUse: median(b.map((x) => x.medianInUse)), peakWaiting: Math.max(...b.map((x) => x.peakWaiting)),
          };
          row.multiplexingRatio = +(threads / peakOpen).toFixed(2);
          row.multiplexingRatioInUse = peakInUse > 0 ? +(threads / peakInUse).toFixed(2) : null;
          if (!(peakInUse > 0)) row.backend.peakInUse = row.backend.medianInUse = null; // no pool gauges in /metrics
        }
        summary.push(row);
      }
    }
  }
  const lines = [
    "| workload | threads | path | QPS (median) | p50 ms | × direct | × pipe | × pipe2 | proxy CPU µs/query | backend conns open, peak (P/R1/R2) | lent to sessions, median / peak | threads ÷ peak open | threads ÷ peak lent |",
    "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
  ];
  for (const s of summary) {
    lines.push(
      `| ${s.workload} | ${s.threads} | ${s.target} | ${s.qps} | ${s.p50ms} | ${s.vsDirect} | ${s.vsPipe} | ${s.vsPipe2} | ${s.cpuUsPerQuery ?? "—"} | ` +
        `${s.backend ? `${s.backend.peakOpen} (${s.backend.peakOpenPerServer.join("/")})` : "—"} | ` +
        `${s.backend?.peakInUse != null ? `${s.backend.medianInUse} / ${s.backend.peakInUse}` : "—"} | ${s.multiplexingRatio ?? "—"} | ${s.multiplexingRatioInUse ?? "—"} |`,
    );
  }
  const report = {
    date: new Date().toISOString(), host: { cpus: os.cpus().length, model: os.cpus()[0]?.model, node: process.version, loadavg: os.loadavg() },
    settings: { seconds: SECONDS, rounds: ROUNDS, threads: THREADS, workloads, workers: Number(opt.workers), poolMax: POOL_MAX, tableSize: Number(opt["table-size"]) },
    dpArgs: opt["dp-args"], baselineDpArgs: opt["baseline-dp-args"], gateway: opt.gateway ?? null, tracing,
    summary, runs,
  };
  for (const s of summary) {
    if (s.perRoundVsPipe) lines.push("", `${s.workload} ${s.threads} threads: ${s.target} ÷ pipe per round ${s.perRoundVsPipe.join(", ")}; ${s.target} ÷ pipe2 per round ${s.perRoundVsPipe2.join(", ")}`);
    if (s.perRoundVsBaseline) lines.push("", `${s.workload} ${s.threads} threads: split ÷ split@baseline per round ${s.perRoundVsBaseline.join(", ")} (median ${median(s.perRoundVsBaseline)})`);
  }
  console.log(lines.join("\n"));
  if (opt.out) {
    fs.writeFileSync(opt.out, JSON.stringify(report, null, 2) + "\n");
    log(`wrote ${opt.out}`);
  }
}

/**
 * A data plane from `main`, spawned here: under `node --cpu-prof` when `dir` is
 * given (not allowed in NODE_OPTIONS; node:cluster workers inherit the flag through
 * execArgv), each process writing a .cpuprofile into `dir` when it exits after
 * SIGTERM (open them in Chrome DevTools); --node-flags adds node options (e.g.
 * --perf-basic-prof, for `perf record -p` on the worker).
 */
async function spawnDataPlane(main, etcd, env, dir, args) {
  const nodeFlags = [...(opt["node-flags"] ? opt["node-flags"].split(" ").filter(Boolean) : [])];
  if (dir) {
    fs.mkdirSync(dir, { recursive: true });
    nodeFlags.push("--cpu-prof", `--cpu-prof-dir=${path.resolve(dir)}`);
  }
  const stateDir = fs.mkdtempSync(path.join(os.tmpdir(), "split-bench-state-"));
  const child = spawn(
    process.execPath,
    [...nodeFlags, main, "--etcd", etcd.endpoint, "--workers", opt.workers, "--state-dir", stateDir, ...args],
    { stdio: ["ignore", "pipe", "inherit"], env: { ...process.env, ...env }, detached: true },
  );
  killOnExit(child);
  await new Promise((resolve, reject) => {
    let buf = "";
    const timer = setTimeout(() => reject(new Error(`data plane ${main}: no 'serving config' within 20 s`)), 20_000);
    child.stdout.on("data", (d) => {
      buf += d;
      if (buf.includes('"serving config"')) {
        clearTimeout(timer);
        resolve();
      }
      if (buf.length > 1e6) buf = buf.slice(-1000);
    });
    child.on("exit", (code) => reject(new Error(`data plane ${main} exited ${code}`)));
  });
  child.stdout.resume();
  return {
    pid: child.pid,
    stop: () =>
      new Promise((resolve) => {
        const t = setTimeout(() => child.kill("SIGKILL"), 20_000);
        child.once("exit", () => {
          clearTimeout(t);
          fs.rmSync(stateDir, { recursive: true, force: true });
          if (dir) log(`cpu profiles in ${dir}: ${fs.readdirSync(dir).join(", ")}`);
          resolve();
        });
        child.kill("SIGTERM");
      }),
  };
}

/** Kills a detached child if this process exits first (a failed run). */
function killOnExit(child) {
  const kill = () => {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
  };
  process.once("exit", kill);
  child.once("exit", () => process.removeListener("exit", kill));
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
