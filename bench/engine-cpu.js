#!/usr/bin/env node
// CPU per statement of the data plane's engines, compared inside ONE data-plane worker: listeners
// of one policy on one cluster (primary + 2 replicas), sysbench oltp_point_select (16 threads,
// text protocol unless PS=1) run against each in turn, round after round. Per run: QPS, the worker's
// user and system CPU µs per query (/proc), the MariaDB servers' and sysbench's CPU µs per query.
//   npm run build && PATHS=mux,nomux,ro ROUNDS=3 SECS=6 node bench/engine-cpu.js
// PATHS: mux (SPLIT, multiplexing on), mux16 (the same, pools of at most 16 connections per backend),
// mux1r (the same over the primary and one replica), nomux (SPLIT, multiplexing off: a connection per role for the
// session's life), rwmux (READ_WRITE, multiplexing on), ro (READ_ONLY: pass-through, no statement is read).
// DPARGS="--digests-max 0" adds data-plane flags; PERF=1 records `perf record` of the worker per run
// (/tmp/perf-<path>-<round>.data; with --perf-basic-prof for JIT symbols); STRACE=1 counts system calls
// per run (/tmp/strace-<path>-<round>.txt). CPUPROF=DIR writes a V8 CPU profile of the worker into DIR
// (bench/cpu-prof-preload.js; PROF_START_S, PROF_S say when and how long): read it with bench/cpu-prof-top.js.
// NODEOPTS="…" sets the data plane's NODE_OPTIONS (e.g. "--max-semi-space-size=32").
const { startEtcd, startReplicatedCluster, startControlPlane, startDataPlane, freePort } = require("../sandbox/dist/index.js");
const { spawnSync } = require("child_process");
const crypto = require("crypto");
const fs = require("fs");
const hash = (pw) => "*" + crypto.createHash("sha1").update(crypto.createHash("sha1").update(pw).digest()).digest("hex").toUpperCase();
(async () => {
  const [etcd, cluster] = await Promise.all([startEtcd(), startReplicatedCluster({ replicas: 2 })]);
  await cluster.primary.query("CREATE DATABASE sbtest");
  const cp = await startControlPlane({ etcd });
  const names = (process.env.PATHS || "mux,nomux").split(",");
  const ports = {};
  const listeners = [];
  for (const n of names) {
    ports[n] = await freePort();
    const l = { name: n, bindAddress: "127.0.0.1", port: ports[n], cluster: "c" };
    if (n === "mux") Object.assign(l, { role: "LISTENER_ROLE_SPLIT", multiplexing: true });
    if (n === "mux16") Object.assign(l, { role: "LISTENER_ROLE_SPLIT", multiplexing: true, cluster: "c16" });
    if (n === "mux1r") Object.assign(l, { role: "LISTENER_ROLE_SPLIT", multiplexing: true, cluster: "c1r" });
    if (n === "nomux") Object.assign(l, { role: "LISTENER_ROLE_SPLIT", multiplexing: false });
    if (n === "rwmux") Object.assign(l, { role: "LISTENER_ROLE_READ_WRITE", multiplexing: true });
    if (n === "ro") Object.assign(l, { role: "LISTENER_ROLE_READ_ONLY" });
    listeners.push(l);
  }
  const backends = [{ name: "db1", address: cluster.primary.address, expectedRole: "ROLE_PRIMARY" }, { name: "db2", address: cluster.replicas[0].address, expectedRole: "ROLE_REPLICA" }, { name: "db3", address: cluster.replicas[1].address, expectedRole: "ROLE_REPLICA" }];
  // mux16: as mux, on a cluster whose pools hold at most 16 connections per backend (bench/split.js's default)
  const pol = { clusters: [{ name: "c", backends }, { name: "c16", backends, pool: { maxConnections: 16 } }, { name: "c1r", backends: backends.slice(0, 2) }],
    listeners, users: [{ name: "sb", passwordHash: hash("sbpw"), backendCredentials: { user: cluster.app.user, secretRef: "env:APP_PW" } }] };
  const res = await fetch(`${cp.url}/v1/policy:apply`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ policy: pol }) });
  const { version } = await res.json();
  const dp = await startDataPlane({ etcd, workers: 1, env: { APP_PW: cluster.app.password, ...(process.env.PERF ? { NODE_OPTIONS: '--perf-basic-prof' } : {}), ...(process.env.CPUPROF ? { NODE_OPTIONS: `--require ${__dirname}/cpu-prof-preload.js`, PROF_DIR: process.env.CPUPROF } : {}), ...(process.env.NODEOPTS ? { NODE_OPTIONS: process.env.NODEOPTS } : {}) }, args: (process.env.DPARGS || "").split(" ").filter(Boolean) });
  await dp.waitForConfig(version);
  const ps = process.env.PS ? [] : ["--db-ps-mode=disable"];
  const sb = (port, cmd, extra) => spawnSync("/usr/bin/time", ["-f", "TIME %U %S", "sysbench", "oltp_point_select", ...ps, "--db-driver=mysql", "--mysql-host=127.0.0.1", `--mysql-port=${port}`, "--mysql-user=sb", "--mysql-password=sbpw", "--mysql-db=sbtest", "--tables=1", "--table-size=10000", "--mysql-ssl=off", ...extra, cmd], { encoding: "utf8" });
  spawnSync("sysbench", ["oltp_point_select", "--db-driver=mysql", "--mysql-host=127.0.0.1", `--mysql-port=${cluster.primary.port}`, `--mysql-user=${cluster.app.user}`, `--mysql-password=${cluster.app.password}`, "--mysql-db=sbtest", "--tables=1", "--table-size=10000", "--mysql-ssl=off", "prepare"]);
  await cluster.waitForReplicas();
  const worker = dp.logs.find((r) => r.role === "worker" && typeof r.pid === "number").pid;
  const pcpu = (pid) => { const f = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' '); return (Number(f[11]) + Number(f[12])) * 10000; };
  const dbcpu = () => cluster.servers.reduce((a, s) => a + pcpu(s.pid), 0);
  const cpu = () => { const f = fs.readFileSync(`/proc/${worker}/stat`, "utf8").split(") ")[1].split(" "); return [Number(f[11]) * 10000, Number(f[12]) * 10000, Number(f[7])]; };
  for (const n of names) sb(ports[n], "run", ["--threads=16", "--time=2"]);
  // TOPPROC=1: the machine's processes by CPU per query during each run (to find cost outside the worker)
  const procs = () => { const m = new Map(); for (const d of fs.readdirSync("/proc")) { if (!/^\d+$/.test(d)) continue; try { const raw = fs.readFileSync(`/proc/${d}/stat`, "utf8"); const i = raw.lastIndexOf(") "); const f = raw.slice(i + 2).split(" "); m.set(d, { name: raw.slice(raw.indexOf("(") + 1, i), cpu: (Number(f[11]) + Number(f[12])) * 10000 }); } catch { /* gone */ } } return m; };
  // TCP segments sent on the machine (loopback: every side of every connection), from /proc/net/snmp
  const outSegs = () => { const l = fs.readFileSync("/proc/net/snmp", "utf8").split("\n").filter((x) => x.startsWith("Tcp:")); const k = l[0].split(" "), v = l[1].split(" "); return Number(v[k.indexOf("OutSegs")]); };
  const secs = Number(process.env.SECS || 6);
  const rows = {};
  for (let round = 0; round < Number(process.env.ROUNDS || 3); round++) {
    for (const n of names) {
      const c0 = cpu(); const d0 = dbcpu(); let st = null; if (process.env.PERF) { st = require('child_process').spawn('perf', ['record', '-F', '2000', '-p', String(worker), '-o', `/tmp/perf-${n}-${round}.data`], { stdio: 'ignore' }); } if (process.env.STRACE) { st = require('child_process').spawn('strace', ['-c', '-f', '-p', String(worker), '-o', `/tmp/strace-${n}-${round}.txt`], { stdio: 'ignore' }); } const p0 = process.env.TOPPROC ? procs() : null; const s0 = outSegs(); const t0 = fs.readFileSync('/proc/stat','utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
      const out = sb(ports[n], "run", ["--threads=16", `--time=${secs}`]);
      const c1 = cpu(); const d1 = dbcpu(); if (st) { st.kill('SIGINT'); await new Promise((r) => st.on('exit', r)); } const t1 = fs.readFileSync('/proc/stat','utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number); const busyJ = t1.reduce((a,b)=>a+b,0)-t0.reduce((a,b)=>a+b,0)-(t1[3]-t0[3])-(t1[4]-t0[4]); const idleJ=(t1[3]-t0[3]);
      const q = Number((out.stdout.match(/queries:\s+(\d+)/) || [0, 0])[1]);
      const segs = (outSegs() - s0) / q;
      const r = { qps: q / secs | 0, user: (c1[0] - c0[0]) / q, sys: (c1[1] - c0[1]) / q, machine: busyJ * 10000 / q, db: (d1 - d0) / q, sbcpu: ((m) => m ? (Number(m[1]) + Number(m[2])) * 1e6 / q : 0)(out.stderr.match(/TIME ([\d.]+) ([\d.]+)/)), idle: idleJ * 10000 / q };
      (rows[n] ||= []).push(r);
      if (p0 !== null) { const p1 = procs(); const d = []; for (const [pid, v] of p1) { const b = p0.get(pid); const used = v.cpu - (b ? b.cpu : 0); if (used > 0) d.push([used / q, `${pid} ${v.name}`]); } d.sort((a, b) => b[0] - a[0]); console.log(d.slice(0, 8).map(([u, l]) => `  ${u.toFixed(1).padStart(6)} µs/query  ${l}`).join("\n")); }
      console.log(`round ${round} ${n}: ${r.qps} qps, user ${r.user.toFixed(1)} sys ${r.sys.toFixed(1)} µs/query; mariadb ${r.db.toFixed(0)} sysbench ${r.sbcpu.toFixed(0)} machine busy ${r.machine.toFixed(0)} idle ${r.idle.toFixed(0)} µs/query; ${segs.toFixed(2)} TCP segments/query; ${((c1[2] - c0[2]) / q).toFixed(3)} minor faults/query; worker RSS ${(/VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${worker}/status`, "utf8")) || [0, 0])[1] >> 10} MiB`);
    }
  }
  const med = (a) => a.slice().sort((x, y) => x - y)[a.length >> 1];
  for (const n of names) console.log(`${n}: median ${med(rows[n].map((r) => r.qps))} qps, user ${med(rows[n].map((r) => r.user)).toFixed(1)} sys ${med(rows[n].map((r) => r.sys)).toFixed(1)} µs/query`);
  await dp.stop(); await cp.stop(); await cluster.stop(); await etcd.stop();
})().catch((e) => { console.error(e); process.exit(1); });
