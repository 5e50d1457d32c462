import * as fs from "node:fs";
import * as path from "node:path";
import { parseAllDocuments, stringify as stringifyYaml } from "yaml";
import { startReplicatedCluster, type ReplicatedCluster } from "./cluster";
import { MgwError } from "./errors";
import { startEtcd, type EtcdServer } from "./etcd";
import { isPortFree } from "./ports";
import { startControlPlane, startDataPlane, repoRoot, type ControlPlane, type DataPlane } from "./planes";
import { runCommand } from "./proc";
import { claimSignals, isAlive, markOwned, register, tempDir } from "./registry";

export interface DemoOptions {
  /** Where everything goes (data dirs, logs, the substituted policy). Default: a temp dir removed at the end. */
  dir?: string;
  /**
   * Without it: listeners keep the example's ports (6033) and the API is on
   * 127.0.0.1:7070, the control plane's and CLI's default (a free port if 7070 is taken). With it: the API is on
   * portBase and the listeners on portBase+1, portBase+2, … in policy order.
   */
  portBase?: number;
  /** The policy to apply. Default <repo>/examples/policy. */
  policyDir?: string;
  /** Progress and instructions go here. Default: process.stdout. */
  out?: (text: string) => void;
  /** Stops a running `runDemo` (instead of Ctrl-C). */
  signal?: AbortSignal;
}

export interface DemoListener {
  name: string;
  port: number;
}

export interface Demo {
  readonly dir: string;
  readonly etcd: EtcdServer;
  readonly cluster: ReplicatedCluster;
  readonly controlPlane: ControlPlane;
  readonly dataPlane: DataPlane;
  readonly apiUrl: string;
  readonly listeners: DemoListener[];
  /** e.g. "mariadb -h127.0.0.1 -P6033 -uapp -papp-password" */
  readonly connectCommand: string;
  /** Password of the backend account `app` (what the data plane reads from MYSQLGW_DEMO_BACKEND_PASSWORD). */
  readonly backendPassword: string;
  stop(): Promise<void>;
}

/** The demo's client user and password (examples/policy: User `app`, password `app-password`). */
export const DEMO_USER = "app";
export const DEMO_PASSWORD = "app-password";
/** The env var the example policy's backendCredentials.secretRef names. */
export const DEMO_BACKEND_PASSWORD_ENV = "MYSQLGW_DEMO_BACKEND_PASSWORD";

/**
 * `mysqlgw demo`: starts everything, prints how to connect, waits for Ctrl-C
 * (SIGINT/SIGTERM) or `options.signal`, then stops everything.
 */
export async function runDemo(options: DemoOptions = {}): Promise<void> {
  const out = options.out ?? ((t: string) => void process.stdout.write(t));
  claimSignals();
  let stopRequested = false;
  let wake: () => void = () => undefined;
  const stopped = new Promise<void>((resolve) => {
    wake = () => {
      stopRequested = true;
      resolve();
    };
  });
  let signals = 0;
  const onSignal = (): void => {
    // The first Ctrl-C stops everything in order; a second one does not wait
    // (the registry's exit handler SIGKILLs what is still running).
    if (++signals > 1) process.exit(130);
    wake();
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  options.signal?.addEventListener("abort", onSignal, { once: true });
  let demo: Demo | null = null;
  try {
    demo = await startDemo({ ...options, out });
    if (!stopRequested) {
      out("\nPress Ctrl-C to stop the demo.\n");
      await stopped;
    }
  } finally {
    out("\nstopping… ");
    if (demo !== null) await demo.stop();
    out("stopped\n");
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
  }
}

/** Starts the demo and returns once the data plane serves the policy. */
export async function startDemo(options: DemoOptions = {}): Promise<Demo> {
  const out = options.out ?? ((t: string) => void process.stdout.write(t));
  const root = repoRoot();
  const policySrc = options.policyDir ?? path.join(root, "examples", "policy");
  const ownDir = options.dir === undefined;
  const dir = path.resolve(options.dir ?? tempDir("demo"));
  prepareDemoDir(dir, ownDir);

  const policyDocs = loadPolicy(policySrc);
  const listenerDocs = policyDocs.flatMap((f) => f.docs.filter((d) => d.kind === "Listener"));
  const listeners: DemoListener[] = listenerDocs.map((d, i) => ({
    name: String(d.name),
    port: options.portBase !== undefined ? options.portBase + 1 + i : Number(d.port),
  }));
  for (const l of listeners) {
    if (!(await isPortFree(l.port))) {
      throw new MgwError(
        "MGW_ERR_SANDBOX_START_FAILED",
        `port ${l.port} (listener ${l.name}) is in use on 127.0.0.1; stop what uses it or pass a port base (--port-base 17000)`,
      );
    }
  }
  let apiPort: number | undefined;
  if (options.portBase !== undefined) apiPort = options.portBase;
  else if (await isPortFree(7070)) apiPort = 7070;

  const started: Array<{ stop(): Promise<unknown> }> = [];
  let stopping: Promise<void> | null = null;
  const stopAllStarted = (): Promise<void> => {
    stopping ??= (async () => {
      unregister();
      for (const s of started.reverse()) {
        try {
          await s.stop();
        } catch {
          // keep stopping the rest
        }
      }
      if (ownDir) fs.rmSync(dir, { recursive: true, force: true });
    })();
    return stopping;
  };
  const unregister = register({ label: `demo ${dir}`, pids: () => [], destroy: stopAllStarted });

  const step = async <T>(what: string, fn: () => Promise<T>, ok: (v: T) => string): Promise<T> => {
    out(`${what}… `);
    const t0 = Date.now();
    try {
      const v = await fn();
      out(`ok (${ok(v)}, ${((Date.now() - t0) / 1000).toFixed(1)} s)\n`);
      return v;
    } catch (err) {
      out("FAILED\n");
      throw err;
    }
  };

  try {
    out(`mysqlgw demo — everything lives in ${dir}\n`);
    const etcd = await step("starting etcd", () => startEtcd({ dir: path.join(dir, "etcd") }), (e) => e.endpoint);
    started.push({ stop: () => etcd.destroy() });
    const cluster = await step(
      "starting MariaDB primary + replica with GTID replication",
      () => startReplicatedCluster({ dir: path.join(dir, "mariadb"), replicas: 1 }),
      (c) => `primary port ${c.primary.port}, replica port ${c.replicas[0].port}`,
    );
    started.push({ stop: () => cluster.stop() });
    // The data plane logs in to the backends, and the control plane's monitor probes them, with this.
    const backendEnv = { [DEMO_BACKEND_PASSWORD_ENV]: cluster.app.password };
    const controlPlane = await step(
      "starting control plane",
      () => startControlPlane({ etcd, port: apiPort, env: backendEnv }),
      (cp) => cp.url,
    );
    started.push({ stop: () => controlPlane.stop("SIGTERM") });
    const dataPlane = await step(
      "starting data plane (1 worker)",
      // --metrics-listen on a free port: the URL is logged ("serving metrics") and printed below
      () => startDataPlane({ etcd, workers: 1, stateDir: path.join(dir, "data-plane-state"), env: backendEnv, args: ["--metrics-listen", "127.0.0.1:0"] }),
      (dp) => `pid ${dp.pid}`,
    );
    started.push({ stop: () => dataPlane.stop("SIGTERM") });

    const policyDir = path.join(dir, "policy");
    writePolicy(policyDocs, policyDir, cluster, listeners);
    const cli = path.join(root, "cli", "dist", "main.js");
    const since = dataPlane.mark();
    await step(
      `applying ${path.relative(process.cwd(), policySrc) || policySrc} (backend addresses filled in: ${policyDir})`,
      async () => {
        const { stdout } = await runCommand(process.execPath, [cli, "--api", controlPlane.url, "apply", "-f", policyDir], { timeoutMs: 30_000 });
        return stdout;
      },
      () => "applied",
    );
    const serving = await step(
      "waiting for the data plane to serve it",
      () => dataPlane.waitForLog((r) => r.msg === "serving config", 20_000, since),
      (r) => `config version ${String(r.version)}`,
    );
    void serving;

    const first = listeners[0];
    const connectCommand = `mariadb -h127.0.0.1 -P${first?.port ?? 6033} -u${DEMO_USER} -p${DEMO_PASSWORD}`;
    const cliCmd = `node ${path.relative(process.cwd(), cli) || cli} --api ${controlPlane.url}`;
    out(
      [
        "",
        "mysqlgw is running. Connect through the gateway with:",
        "",
        `    ${connectCommand}`,
        "",
        ...listeners.slice(1).map((l) => `    (listener ${l.name}: mariadb -h127.0.0.1 -P${l.port} -u${DEMO_USER} -p${DEMO_PASSWORD})`),
        `API (REST + gRPC): ${controlPlane.url}    e.g. curl ${controlPlane.url}/v1/policy`,
        `Metrics (Prometheus): data plane ${String(dataPlane.logs.find((r) => r.msg === "serving metrics")?.metrics ?? "(not served)")}, control plane ${controlPlane.url}/metrics`,
        "",
        "Try the CLI:",
        `    ${cliCmd} status`,
        `    ${cliCmd} backends`,
        `    ${cliCmd} get clusters`,
        `    ${cliCmd} diff -f ${policyDir}`,
        `    ${cliCmd} apply --dry-run -f ${policyDir}`,
        "",
        `MariaDB directly (bypassing the gateway): primary ${cluster.primary.address}, replica ${cluster.replicas[0].address}`,
        `    mariadb -h127.0.0.1 -P${cluster.primary.port} -u${cluster.app.user} -p${cluster.app.password}`,
        `Logs: ${dir}`,
        "",
      ].join("\n"),
    );
    return {
      dir,
      etcd,
      cluster,
      controlPlane,
      dataPlane,
      apiUrl: controlPlane.url,
      listeners,
      connectCommand,
      backendPassword: cluster.app.password,
      stop: stopAllStarted,
    };
  } catch (err) {
    await stopAllStarted();
    throw err;
  }
}

interface PolicyFile {
  name: string;
  docs: Array<Record<string, unknown>>;
}

function prepareDemoDir(dir: string, ownDir: boolean): void {
  if (!ownDir && fs.existsSync(dir)) {
    const ownerFile = path.join(dir, ".mysqlgw-sandbox-owner");
    if (fs.existsSync(ownerFile)) {
      const owner = Number.parseInt(fs.readFileSync(ownerFile, "utf8"), 10);
      if (owner !== process.pid && isAlive(owner)) {
        throw new MgwError("MGW_ERR_SANDBOX_BAD_STATE", `another demo (pid ${owner}) is using ${dir}; stop it first or pick another dir`);
      }
    }
    // A demo starts from scratch: remove what a previous run left.
    for (const sub of ["etcd", "mariadb", "data-plane-state", "policy"]) fs.rmSync(path.join(dir, sub), { recursive: true, force: true });
  }
  markOwned(dir);
}

function loadPolicy(src: string): PolicyFile[] {
  if (!fs.existsSync(src)) {
    throw new MgwError("MGW_ERR_SANDBOX_START_FAILED", `the demo policy ${src} does not exist; run the demo from a mysqlgw checkout`);
  }
  const files = fs.statSync(src).isDirectory()
    ? fs
        .readdirSync(src)
        .filter((f) => /\.ya?ml$/.test(f))
        .sort()
    : [path.basename(src)];
  const base = fs.statSync(src).isDirectory() ? src : path.dirname(src);
  return files.map((name) => {
    const docs = parseAllDocuments(fs.readFileSync(path.join(base, name), "utf8"))
      .map((d) => d.toJS() as unknown)
      .filter((d): d is Record<string, unknown> => d !== null && typeof d === "object");
    return { name, docs };
  });
}

/** Copies the policy into `destDir` with the sandbox's backend addresses and the listener ports filled in. */
function writePolicy(files: PolicyFile[], destDir: string, cluster: ReplicatedCluster, listeners: DemoListener[]): void {
  fs.mkdirSync(destDir, { recursive: true });
  let li = 0;
  for (const f of files) {
    for (const doc of f.docs) {
      if (doc.kind === "Cluster" && Array.isArray(doc.backends)) {
        let nextReplica = 0;
        doc.backends = (doc.backends as Array<Record<string, unknown>>).map((b, i) => {
          const name = String(b.name ?? "");
          const isPrimary = name === "primary" || (i === 0 && !/replica/.test(name));
          const server = isPrimary ? cluster.primary : cluster.replicas[Math.min(nextReplica++, cluster.replicas.length - 1)];
          return { ...b, address: server.address };
        });
      } else if (doc.kind === "Listener") {
        doc.port = listeners[li++]?.port ?? doc.port;
      }
    }
    const text = f.docs.map((d) => stringifyYaml(d)).join("---\n");
    fs.writeFileSync(path.join(destDir, f.name), text);
  }
}
