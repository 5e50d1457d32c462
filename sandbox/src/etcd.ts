import * as crypto from "node:crypto";
import * as fs from "node:fs";
import * as http from "node:http";
import * as https from "node:https";
import * as path from "node:path";
import { MgwError } from "./errors";
import { freePort, isPortFree } from "./ports";
import { findBinary, spawnChild, tailFile, type ChildHandle } from "./proc";
import { isTempDir, register, tempDir } from "./registry";
import { sleep } from "./wait-for";

export type ServerState = "running" | "stopped" | "killed";

export interface StartEtcdOptions {
  /** Where the data dir and log go. Default: a temp dir removed by `destroy()`/`stopAll()`. */
  dir?: string;
  /** Member name; default unique. */
  name?: string;
  /** Bound on the wait for /health. Default 20 s. */
  startTimeoutMs?: number;
  /** Bound on SIGTERM before SIGKILL in `stop()`. Default 10 s. */
  stopTimeoutMs?: number;
  extraArgs?: string[];
  /**
   * Serve the client port over TLS (PEM files): the endpoint is https://; with
   * `clientCertAuth`, etcd's --client-cert-auth (the health check then uses
   * `clientCert`/`clientKey`).
   */
  tls?: { cert: string; key: string; ca: string; clientCertAuth?: boolean; clientCert?: string; clientKey?: string };
}

export interface EtcdServer {
  /** `http://127.0.0.1:<clientPort>` (`https://` with `tls`), what `--etcd` and etcd3's `hosts` take. */
  readonly endpoint: string;
  readonly clientPort: number;
  readonly peerPort: number;
  readonly name: string;
  readonly dir: string;
  readonly dataDir: string;
  readonly logFile: string;
  readonly state: ServerState;
  readonly pid: number | null;
  /** SIGTERM, then SIGKILL after the bound. Keeps the data dir for `restart()`. */
  stop(): Promise<void>;
  /** SIGKILL (a crash). Keeps the data dir. */
  kill(): Promise<void>;
  /** Starts again on the same ports and data dir (stopping first if running). */
  restart(): Promise<void>;
  /** Stops and removes the dir if it is a temp dir. Idempotent. */
  destroy(): Promise<void>;
  logTail(lines?: number): string;
}

/**
 * Starts a single-member etcd (Debian /usr/bin/etcd) on two free loopback ports
 * and waits (bounded) until /health says true. Retries with new ports when one
 * was taken in between.
 */
export async function startEtcd(options: StartEtcdOptions = {}): Promise<EtcdServer> {
  const bin = findBinary("etcd", "MYSQLGW_ETCD_BIN");
  const dir = options.dir ?? tempDir("etcd");
  fs.mkdirSync(dir, { recursive: true });
  const name = options.name ?? `sandbox-${crypto.randomBytes(4).toString("hex")}`;
  const dataDir = path.join(dir, "data");
  const logFile = path.join(dir, "etcd.log");
  const startTimeoutMs = options.startTimeoutMs ?? 20_000;
  const stopTimeoutMs = options.stopTimeoutMs ?? 10_000;
  const token = `mysqlgw-${crypto.randomBytes(6).toString("hex")}`;
  let clientPort = 0;
  let peerPort = 0;
  let child: ChildHandle | null = null;
  let state: ServerState = "stopped";
  let destroyed = false;

  const args = (): string[] => {
    const client = `${options.tls === undefined ? "http" : "https"}://127.0.0.1:${clientPort}`;
    const peer = `http://127.0.0.1:${peerPort}`;
    return [
      "--name", name,
      "--data-dir", dataDir,
      "--listen-client-urls", client,
      "--advertise-client-urls", client,
      "--listen-peer-urls", peer,
      "--initial-advertise-peer-urls", peer,
      "--initial-cluster", `${name}=${peer}`,
      "--initial-cluster-state", "new",
      "--initial-cluster-token", token,
      "--heartbeat-interval", "50",
      "--election-timeout", "300",
      ...(options.tls === undefined ? [] : [
        "--cert-file", options.tls.cert, "--key-file", options.tls.key, "--trusted-ca-file", options.tls.ca,
        ...(options.tls.clientCertAuth === true ? ["--client-cert-auth"] : []),
      ]),
      ...(options.extraArgs ?? []),
    ];
  };

  const launch = async (): Promise<void> => {
    fs.appendFileSync(logFile, `--- mysqlgw sandbox: starting etcd ${new Date().toISOString()} ---\n`);
    const c = spawnChild(bin, args(), { logFile, marker: dataDir });
    child = c;
    const deadline = Date.now() + startTimeoutMs;
    for (;;) {
      const exit = c.exit();
      if (exit !== null) {
        const tail = tailFile(logFile, 20);
        const inUse = /address already in use/i.test(tail);
        throw new MgwError(
          inUse ? "MGW_ERR_SANDBOX_START_FAILED" : "MGW_ERR_SANDBOX_EXITED",
          `etcd exited during start (${exit.error?.message ?? exit.signal ?? `exit ${exit.code}`})${inUse ? " [address in use]" : ""}; log ${logFile}:\n${tail}`,
        );
      }
      if (await healthy(clientPort, options.tls)) return;
      if (Date.now() >= deadline) {
        await c.terminate("SIGKILL", 1000);
        throw new MgwError("MGW_ERR_SANDBOX_TIMEOUT", `etcd did not become healthy within ${startTimeoutMs} ms; log ${logFile}:\n${tailFile(logFile, 20)}`);
      }
      await sleep(50);
    }
  };

  for (let attempt = 1; ; attempt++) {
    clientPort = await freePort();
    peerPort = await freePort();
    try {
      await launch();
      break;
    } catch (err) {
      if (attempt < 4 && err instanceof MgwError && err.message.includes("[address in use]")) {
        fs.rmSync(dataDir, { recursive: true, force: true });
        continue;
      }
      throw err;
    }
  }
  state = "running";

  const halt = async (sig: NodeJS.Signals, next: ServerState): Promise<void> => {
    const c = child;
    if (c !== null && c.running()) await c.terminate(sig, stopTimeoutMs);
    child = null;
    if (state === "running") state = next;
  };

  const server: EtcdServer = {
    endpoint: `${options.tls === undefined ? "http" : "https"}://127.0.0.1:${clientPort}`,
    clientPort,
    peerPort,
    name,
    dir,
    dataDir,
    logFile,
    get state() {
      return state;
    },
    get pid() {
      return child !== null && child.running() ? child.pid : null;
    },
    stop: () => halt("SIGTERM", "stopped"),
    kill: () => halt("SIGKILL", "killed"),
    async restart() {
      if (destroyed) throw new MgwError("MGW_ERR_SANDBOX_BAD_STATE", "etcd was destroyed; start a new one");
      await halt("SIGTERM", "stopped");
      for (const p of [clientPort, peerPort]) {
        if (!(await isPortFree(p))) {
          throw new MgwError("MGW_ERR_SANDBOX_START_FAILED", `cannot restart etcd: 127.0.0.1:${p} was taken by another process meanwhile`);
        }
      }
      await launch();
      state = "running";
    },
    async destroy() {
      if (destroyed) return;
      destroyed = true;
      unregister();
      await halt("SIGKILL", "stopped");
      if (isTempDir(dir)) fs.rmSync(dir, { recursive: true, force: true });
    },
    logTail: (lines = 30) => tailFile(logFile, lines),
  };
  const unregister = register({
    label: `etcd ${server.endpoint}`,
    pids: () => (child !== null && child.running() ? [child.pid] : []),
    destroy: () => server.destroy(),
  });
  return server;
}

/** GET /health on a fresh connection (no keep-alive socket left behind for jest to wait on). */
function healthy(port: number, tls?: StartEtcdOptions["tls"]): Promise<boolean> {
  return new Promise((resolve) => {
    const o = { host: "127.0.0.1", port, path: "/health", agent: false, timeout: 1000 };
    const onResponse = (res: http.IncomingMessage): void => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (d: string) => (body += d));
      res.on("end", () => {
        try {
          const h = (JSON.parse(body) as { health?: unknown }).health;
          resolve(h === "true" || h === true);
        } catch {
          resolve(false);
        }
      });
      res.on("error", () => resolve(false));
    };
    const req = tls === undefined
      ? http.get(o, onResponse)
      : https.get({
        ...o,
        ca: fs.readFileSync(tls.ca),
        ...(tls.clientCert === undefined ? {} : { cert: fs.readFileSync(tls.clientCert), key: fs.readFileSync(tls.clientKey ?? "") }),
      }, onResponse);
    req.on("timeout", () => req.destroy());
    req.on("error", () => resolve(false));
  });
}
