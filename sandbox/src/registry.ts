import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";

/**
 * The process-wide set of everything the sandbox started. `stopAll()` stops it
 * (newest first: data planes before the etcd they watch) and removes the temp
 * dirs; an `exit` handler SIGKILLs whatever is still running, and outside jest
 * SIGINT/SIGTERM/SIGHUP run `stopAll()` and exit. A run that was SIGKILLed
 * leaves its dir behind: the next run reaps it (kills the processes it recorded,
 * if their command line still names the dir, and removes it).
 *
 * Under jest each test file has its own module registry, so this set is per test
 * file; the integration tests' jest environment (test/helpers/sandbox-environment.js)
 * calls `stopAll()` at teardown, after the file's own afterAll hooks.
 */
export interface SandboxResource {
  readonly label: string;
  /** Pids of live processes, for the synchronous exit handler. */
  pids(): number[];
  /** Stops the processes and removes temp data. Idempotent. */
  destroy(): Promise<void>;
}

const DIR_PREFIX = "mysqlgw-sandbox-";
const OWNER_FILE = ".mysqlgw-sandbox-owner";
const PIDS_FILE = ".mysqlgw-sandbox-pids";

const resources: SandboxResource[] = [];

/**
 * Published for test/helpers/sandbox-environment.js, the integration tests'
 * jest environment, whose teardown calls it after every afterAll hook.
 */
(globalThis as { __mysqlgwSandboxStopAll?: () => Promise<void> }).__mysqlgwSandboxStopAll = () => stopAll();
let root: string | null = null;
let handlersInstalled = false;
let signalsClaimed = false;

/** The per-process temp root, created on first use (reaping stale ones first). */
export function sandboxRoot(): string {
  if (root !== null && fs.existsSync(root)) return root;
  reapStaleDirs();
  root = fs.mkdtempSync(path.join(os.tmpdir(), `${DIR_PREFIX}${process.pid}-`));
  markOwned(root);
  installHandlers();
  return root;
}

/** A fresh directory under the sandbox root, e.g. `tempDir("etcd")` → /tmp/mysqlgw-sandbox-123-ab/etcd-xy. */
export function tempDir(name: string): string {
  return fs.mkdtempSync(path.join(sandboxRoot(), `${name}-`));
}

/** True if `dir` lies inside this process's temp root (and so may be removed). */
export function isTempDir(dir: string): boolean {
  return root !== null && path.resolve(dir).startsWith(root + path.sep);
}

/**
 * Marks `dir` as owned by this process so that a later run can reap what it
 * leaves behind if this process dies without cleaning up.
 */
export function markOwned(dir: string): void {
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, OWNER_FILE), `${process.pid}\n`);
  fs.writeFileSync(path.join(dir, PIDS_FILE), "");
}

/**
 * Records a child pid in the sandbox root's pid list, with a `marker` that its
 * command line contains (a data dir): a reaper kills the pid only if its
 * command line still contains the marker, so a reused pid is left alone.
 */
export function recordPid(pid: number, marker: string): void {
  try {
    fs.appendFileSync(path.join(sandboxRoot(), PIDS_FILE), `${pid} ${marker.replace(/\n/g, " ")}\n`);
  } catch {
    // best effort: only used to reap after a crash
  }
}

export function register(resource: SandboxResource): () => void {
  sandboxRoot();
  resources.push(resource);
  return () => {
    const i = resources.indexOf(resource);
    if (i >= 0) resources.splice(i, 1);
  };
}

/** Stops everything started in this process (newest first) and removes the temp root. */
export async function stopAll(): Promise<void> {
  while (resources.length > 0) {
    const r = resources.pop() as SandboxResource;
    try {
      await r.destroy();
    } catch {
      for (const pid of r.pids()) killQuietly(pid, "SIGKILL");
    }
  }
  if (root !== null) {
    fs.rmSync(root, { recursive: true, force: true });
    root = null;
  }
}

/**
 * Stops the registry's own SIGINT/SIGTERM handling: the caller (e.g. the demo)
 * handles those signals itself and calls `stopAll()`.
 */
export function claimSignals(): void {
  signalsClaimed = true;
}

/** Kills processes recorded in `dir` whose owner is gone; true if the dir was stale. */
export function reapDir(dir: string): boolean {
  const owner = readPid(path.join(dir, OWNER_FILE));
  if (owner === null || owner === process.pid || isAlive(owner)) return false;
  let lines: string[] = [];
  try {
    lines = fs.readFileSync(path.join(dir, PIDS_FILE), "utf8").split("\n");
  } catch {
    // no pid list
  }
  const killed: number[] = [];
  for (const line of lines) {
    const sp = line.indexOf(" ");
    const pid = Number.parseInt(line, 10);
    const marker = sp > 0 ? line.slice(sp + 1) : "";
    if (!Number.isInteger(pid) || pid <= 0 || marker === "") continue;
    let cmdline = "";
    try {
      cmdline = fs.readFileSync(`/proc/${pid}/cmdline`, "utf8").replace(/\0/g, " ");
    } catch {
      continue;
    }
    if (cmdline.includes(marker)) {
      killQuietly(pid, "SIGKILL");
      killed.push(pid);
    }
  }
  // Let them die before the caller removes their files (bounded).
  const deadline = Date.now() + 3000;
  while (killed.some(isAlive) && Date.now() < deadline) sleepSync(20);
  return true;
}

function reapStaleDirs(): void {
  const tmp = os.tmpdir();
  let entries: string[] = [];
  try {
    entries = fs.readdirSync(tmp).filter((e) => e.startsWith(DIR_PREFIX));
  } catch {
    return;
  }
  for (const e of entries) {
    const dir = path.join(tmp, e);
    try {
      if (reapDir(dir)) fs.rmSync(dir, { recursive: true, force: true, maxRetries: 3 });
    } catch {
      // someone else's, or already gone
    }
  }
}

function installHandlers(): void {
  if (handlersInstalled) return;
  handlersInstalled = true;
  process.on("exit", () => {
    for (const r of resources) {
      for (const pid of r.pids()) {
        killQuietly(-pid, "SIGKILL");
        killQuietly(pid, "SIGKILL");
      }
    }
    if (root !== null) {
      try {
        fs.rmSync(root, { recursive: true, force: true });
      } catch {
        // exiting anyway
      }
    }
  });
  if (process.env.JEST_WORKER_ID !== undefined) return; // jest: afterAll(stopAll) does it
  for (const [sig, n] of [["SIGINT", 2], ["SIGTERM", 15], ["SIGHUP", 1]] as const) {
    process.once(sig, () => {
      if (signalsClaimed) return;
      const hard = setTimeout(() => process.exit(128 + n), 20_000);
      hard.unref();
      void stopAll().finally(() => process.exit(128 + n));
    });
  }
}

function readPid(file: string): number | null {
  try {
    const n = Number.parseInt(fs.readFileSync(file, "utf8"), 10);
    return Number.isInteger(n) && n > 0 ? n : null;
  } catch {
    return null;
  }
}

/** True if `pid` runs (a zombie, which a container's init may never reap, counts as dead). */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "EPERM") return false;
  }
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
  } catch {
    return true; // no /proc: trust kill(0)
  }
}

function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

export function killQuietly(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch {
    // already gone
  }
}
