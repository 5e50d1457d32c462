// Preloaded into the data plane's processes (NODE_OPTIONS="--require …/cpu-prof-preload.js"; node refuses
// --cpu-prof there): in each node:cluster worker, records a V8 CPU profile from PROF_START_S seconds after
// start for PROF_S seconds and writes it to PROF_DIR/worker-<pid>.cpuprofile (bench/engine-cpu.js CPUPROF=DIR).
"use strict";
const cluster = require("node:cluster");
if (cluster.isWorker && process.env.PROF_DIR) {
  const inspector = require("node:inspector");
  const fs = require("node:fs");
  const session = new inspector.Session();
  session.connect();
  const startS = Number(process.env.PROF_START_S || 10);
  const forS = Number(process.env.PROF_S || 8);
  setTimeout(() => {
    session.post("Profiler.enable", () =>
      session.post("Profiler.setSamplingInterval", { interval: 100 }, () =>
        session.post("Profiler.start", () =>
          setTimeout(() => {
            session.post("Profiler.stop", (err, res) => {
              if (!err) fs.writeFileSync(`${process.env.PROF_DIR}/worker-${process.pid}.cpuprofile`, JSON.stringify(res.profile));
            });
          }, forS * 1000).unref(),
        ),
      ),
    );
  }, startS * 1000).unref();
}
