/**
 * Phase hooks: a plugin module on the data plane host (never from etcd) that
 * sees, and may steer, a session at the phases MySQL Proxy named:
 *
 * - connectServer   a client connected (before the greeting): reject it;
 * - readHandshake   the greeting is about to go out: change the server version shown;
 * - readAuth        the client's login arrived (before it is verified): reject it;
 * - readAuthResult  the login was accepted or refused (observe);
 * - readQuery       a COM_QUERY on a routed listener: rewrite it, route it,
 *                   answer it locally with rows, or refuse it;
 * - readQueryResult its response went out (observe: duration, error, backend).
 *
 * Each hook may return a value or a Promise. A hook gets the budget of time
 * given by --plugin-budget; past it (or when it throws) the session goes on
 * as if the hook had returned nothing, and the miss is counted and logged.
 * readAuthResult and readQueryResult are not waited for.
 *
 * readQuery/readQueryResult run on routed listeners (SPLIT, multiplexing),
 * whose engine reads each command; pass-through listeners forward commands
 * byte for byte and call only the connection-level hooks.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import type { Logger } from "pino";

export type HookResult<T> = T | undefined | void | Promise<T | undefined | void>;

/** An error packet a hook asks for; defaults: errno 1105 (connect/auth: 1130), SQLSTATE HY000. */
export interface HookError {
  errno?: number;
  sqlState?: string;
  message: string;
}

export interface ConnectContext {
  connectionId: number;
  listener: string;
  clientAddress: string;
  clientPort: number;
}

export interface HandshakeContext {
  connectionId: number;
  listener: string;
  serverVersion: string;
}

export interface AuthContext {
  connectionId: number;
  listener: string;
  user: string;
  database: string | null;
  clientAddress: string;
  attributes: Readonly<Record<string, string>>;
}

export interface AuthResultContext {
  connectionId: number;
  listener: string;
  user: string;
  ok: boolean;
  /** 0 when ok. */
  errno: number;
}

export interface QueryContext {
  connectionId: number;
  listener: string;
  user: string;
  schema: string | null;
  sql: string;
  /** Statement kind as `mysqlgw explain` names it (SELECT, INSERT, …). */
  kind: string;
}

export interface QueryResultContext extends QueryContext {
  durationMs: number;
  ok: boolean;
  errno: number;
  /** "primary" | "replica", or "local" when a hook answered. */
  target: string;
}

/** What readQuery may decide (at most one of these). */
export interface QueryDecision {
  /** Send this text instead (it is classified again for routing). */
  rewrite?: string;
  /** Send it there (ignored inside a transaction or while the session is pinned). */
  route?: "primary" | "replica";
  /** Answer locally with a result set of text columns. */
  reply?: { columns: string[]; rows: (string | null)[][] };
  /** Answer locally with this error. */
  error?: HookError;
}

/** The shape of a plugin module's export (default export or module.exports). */
export interface PhasePlugin {
  name?: string;
  connectServer?(ctx: ConnectContext): HookResult<{ reject?: HookError }>;
  readHandshake?(ctx: HandshakeContext): HookResult<{ serverVersion?: string }>;
  readAuth?(ctx: AuthContext): HookResult<{ reject?: HookError }>;
  readAuthResult?(ctx: AuthResultContext): HookResult<void>;
  readQuery?(ctx: QueryContext): HookResult<QueryDecision>;
  readQueryResult?(ctx: QueryResultContext): HookResult<void>;
}

export type HookName = "connectServer" | "readHandshake" | "readAuth" | "readAuthResult" | "readQuery" | "readQueryResult";

const HOOK_NAMES: readonly HookName[] = ["connectServer", "readHandshake", "readAuth", "readAuthResult", "readQuery", "readQueryResult"];

export interface HookStats {
  calls: number;
  timeouts: number;
  errors: number;
}

export const DEFAULT_PLUGIN_BUDGET_MS = 5;

/** Calls a plugin's hooks within the time budget; one per worker. */
export class PhaseHooks {
  readonly name: string;
  private readonly plugin: PhasePlugin;
  private readonly budgetMs: number;
  private readonly logger: Logger;
  private readonly stats = new Map<HookName, HookStats>();
  private lastWarn = 0;

  constructor(plugin: PhasePlugin, budgetMs: number, logger: Logger, name = plugin.name ?? "plugin") {
    this.plugin = plugin;
    this.budgetMs = budgetMs;
    this.logger = logger;
    this.name = name;
    for (const h of HOOK_NAMES) this.stats.set(h, { calls: 0, timeouts: 0, errors: 0 });
  }

  has(hook: HookName): boolean {
    return typeof this.plugin[hook] === "function";
  }

  /** Counts per hook (a copy). */
  statistics(): Record<HookName, HookStats> {
    const out = {} as Record<HookName, HookStats>;
    for (const [k, v] of this.stats) out[k] = { ...v };
    return out;
  }

  /**
   * Calls `hook` with `ctx`: its result, or undefined when the plugin has no
   * such hook, throws, or does not answer within the budget. Never rejects.
   */
  async call<R>(hook: HookName, ctx: unknown): Promise<R | undefined> {
    const fn = this.plugin[hook] as ((c: unknown) => unknown) | undefined;
    if (fn === undefined) return undefined;
    const st = this.stats.get(hook) as HookStats;
    st.calls++;
    let out: unknown;
    try {
      out = fn.call(this.plugin, ctx);
    } catch (err) {
      st.errors++;
      this.warn(hook, `threw: ${String(err)}`);
      return undefined;
    }
    if (!(out instanceof Promise)) return (out ?? undefined) as R | undefined;
    let timer: NodeJS.Timeout | null = null;
    const timeout = new Promise<typeof TIMED_OUT>((resolve) => {
      timer = setTimeout(resolve, this.budgetMs, TIMED_OUT);
    });
    try {
      const r = await Promise.race([out, timeout]);
      if (r === TIMED_OUT) {
        st.timeouts++;
        this.warn(hook, `did not answer within its budget of ${this.budgetMs} ms (--plugin-budget); the session went on without it`);
        out.catch(() => undefined);
        return undefined;
      }
      return (r ?? undefined) as R | undefined;
    } catch (err) {
      st.errors++;
      this.warn(hook, `failed: ${String(err)}`);
      return undefined;
    } finally {
      if (timer !== null) clearTimeout(timer);
    }
  }

  /** Calls an observing hook without waiting for it. */
  notify(hook: HookName, ctx: unknown): void {
    if (this.has(hook)) void this.call(hook, ctx);
  }

  private warn(hook: HookName, what: string): void {
    const now = Date.now();
    if (now - this.lastWarn < 1000) return;
    this.lastWarn = now;
    this.logger.warn({ plugin: this.name, hook }, `plugin hook ${hook} ${what}`);
  }
}

const TIMED_OUT = Symbol("timed out");

/**
 * Loads the plugin module at `file` (a .js/.cjs CommonJS module, or a .ts file
 * when the `typescript` package can be found, compiled on load). Throws with
 * what to do when it cannot be used.
 */
export function loadPhasePlugin(file: string): PhasePlugin {
  const abs = path.resolve(file);
  if (!fs.existsSync(abs)) throw new Error(`--plugin ${abs}: no such file; give the path of a .js (CommonJS) or .ts plugin module on this host`);
  let mod: unknown;
  if (abs.endsWith(".ts")) {
    let ts: { transpileModule(src: string, o: object): { outputText: string } };
    try {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      ts = require("typescript") as typeof ts;
    } catch {
      throw new Error(`--plugin ${abs}: a TypeScript plugin needs the 'typescript' package on this host; compile it to JavaScript (tsc) and give the .js file instead`);
    }
    const js = ts.transpileModule(fs.readFileSync(abs, "utf8"), { compilerOptions: { module: 1 /* CommonJS */, target: 9 /* ES2022 */ }, fileName: abs }).outputText;
    const m = { exports: {} as unknown };
    // eslint-disable-next-line @typescript-eslint/no-implied-eval
    new Function("module", "exports", "require", "__filename", "__dirname", js)(m, m.exports, require, abs, path.dirname(abs));
    mod = m.exports;
  } else {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    mod = require(abs);
  }
  const plugin = ((mod as { default?: unknown }).default ?? mod) as PhasePlugin;
  if (plugin === null || typeof plugin !== "object") throw new Error(`--plugin ${abs}: the module must export an object with hook functions (connectServer, readHandshake, readAuth, readAuthResult, readQuery, readQueryResult)`);
  const hooks = HOOK_NAMES.filter((h) => typeof plugin[h] === "function");
  if (hooks.length === 0) throw new Error(`--plugin ${abs}: the module exports none of the hooks ${HOOK_NAMES.join(", ")}`);
  return plugin;
}
