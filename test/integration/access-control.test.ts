// Issue 6, points 2 and 3: IP allow/deny lists (listener at accept, user at
// auth), connection limits (listener, user, backend) and the listener's idle
// timeout, through the real data-plane binary to a real MariaDB, with mysql2
// and the mariadb CLI. One worker, so the configured figures apply as such.
import * as fs from "node:fs";
import * as net from "node:net";
import * as os from "node:os";
import * as path from "node:path";
import type * as mysql from "mysql2/promise";
import {
  applyPolicy,
  connect,
  freePort,
  nativePasswordHash,
  runCli,
  runMariadbCli,
  startControlPlane,
  startDataPlane,
  startEtcd,
  startMariaDB,
  type ControlPlane,
  type MariaDBServer,
} from "../helpers";

const APP_PW = "access-app-pw-1";
const PW = "gw-user-pw-1";
const IDLE_MS = 1500;

let db: MariaDBServer;
let cp: ControlPlane;
/** proxyProtocol from 127.0.0.1 required: the user "lbonly" may come from 127.0.0.99 only. */
let lbPort: number;
/** On "::", allowCidrs [::1/128]: 127.0.0.1 is refused at accept. */
let v6Port: number;
/** maxConnections 3. */
let cappedPort: number;
/** idleTimeout 1.5s. */
let idlePort: number;
/** Cluster "tiny": one backend with maxConnections 1. */
let tinyPort: number;

beforeAll(async () => {
  const [etcd, server] = await Promise.all([startEtcd(), startMariaDB({ accounts: [{ user: "app", password: APP_PW }] })]);
  db = server;
  cp = await startControlPlane({ etcd });
  [v6Port, cappedPort, idlePort, tinyPort, lbPort] = [await freePort(), await freePort(), await freePort(), await freePort(), await freePort()];
  const user = (name: string, extra: Record<string, unknown> = {}) => ({
    name,
    passwordHash: nativePasswordHash(PW),
    backendCredentials: { user: "app", secretRef: "env:APP_PW" },
    ...extra,
  });
  const { version } = await applyPolicy(cp, {
    clusters: [
      { name: "main", backends: [{ name: "db", address: db.address }] },
      { name: "tiny", backends: [{ name: "db", address: db.address, maxConnections: 1 }] },
    ],
    listeners: [
      { name: "v6", bindAddress: "::", port: v6Port, cluster: "main", allowCidrs: ["::1/128"] },
      { name: "capped", bindAddress: "127.0.0.1", port: cappedPort, cluster: "main", maxConnections: 3 },
      { name: "idle", bindAddress: "127.0.0.1", port: idlePort, cluster: "main", idleTimeout: `${IDLE_MS / 1000}s`, handshakeTimeout: "3s" },
      { name: "tiny", bindAddress: "127.0.0.1", port: tinyPort, cluster: "tiny" },
      { name: "lb", bindAddress: "127.0.0.1", port: lbPort, cluster: "main", proxyProtocol: { trustedCidrs: ["127.0.0.1/32"], required: true } },
    ],
    users: [
      user("app"),
      user("denied", { denyCidrs: ["127.0.0.0/8", "::1/128"] }),
      user("onlyv6", { allowCidrs: ["::1/128"] }),
      user("two", { maxConnections: 2 }),
      user("lbonly", { allowCidrs: ["127.0.0.99/32"] }),
    ],
    // gateway-wide: 127.0.0.2 may not connect to any listener
    gateway: { denyCidrs: ["127.0.0.2/32"], maxConnections: 1000 },
  });
  await startDataPlane({ etcd, workers: 1, env: { APP_PW }, waitForConfig: version });
}, 120_000);

interface SqlErr {
  errno?: number;
  sqlState?: string;
  message: string;
}

function gw(port: number, user = "app", host = "127.0.0.1", localAddress?: string): Promise<mysql.Connection> {
  // mysql2 does not pass its localAddress option on: give it the socket
  const stream = localAddress === undefined ? undefined : net.connect({ port, host, localAddress });
  return connect({ host, port, user, password: PW, extra: stream === undefined ? undefined : { stream } });
}

async function refusal(p: Promise<mysql.Connection>): Promise<SqlErr> {
  const r = await p.then(
    async (c) => {
      await c.end();
      return null;
    },
    (e: unknown) => e as SqlErr,
  );
  if (r === null) throw new Error("connection unexpectedly accepted");
  return r;
}

async function one(c: mysql.Connection, sql: string): Promise<unknown> {
  const [[row]] = (await c.query(sql)) as unknown as [[Record<string, unknown>]];
  return Object.values(row)[0];
}

describe("IP lists", () => {
  test("listener allowCidrs [::1/128]: 127.0.0.1 gets 1130 before any handshake, ::1 is served", async () => {
    // the 10.11 CLI tries TLS by default and then words an ERR before the greeting so (as against MariaDB itself)
    const cli = await runMariadbCli({ port: v6Port, user: "app", password: PW, sql: "SELECT 1" });
    expect(cli.code).not.toBe(0);
    expect(cli.stderr).toContain("1130 - Host '127.0.0.1' is not allowed to connect to this MariaDB server");
    const plain = await runMariadbCli({ port: v6Port, user: "app", password: PW, sql: "SELECT 1", args: ["--skip-ssl"] });
    expect(plain.stderr).toContain("ERROR 1130 (HY000): Host '127.0.0.1' is not allowed to connect to this MariaDB server");
    const e = await refusal(gw(v6Port));
    expect(e).toMatchObject({ errno: 1130, sqlState: "HY000", message: "Host '127.0.0.1' is not allowed to connect to this MariaDB server" });
    const c = await gw(v6Port, "app", "::1");
    try {
      expect(Number(await one(c, "SELECT 41 + 1"))).toBe(42);
    } finally {
      await c.end();
    }
  });

  test("gateway denyCidrs [127.0.0.2/32] refuses that address on every listener with 1130; 127.0.0.3 is served", async () => {
    for (const port of [cappedPort, idlePort, tinyPort]) {
      expect(await refusal(gw(port, "app", "127.0.0.1", "127.0.0.2"))).toMatchObject({
        errno: 1130,
        message: "Host '127.0.0.2' is not allowed to connect to this MariaDB server",
      });
    }
    const c = await gw(cappedPort, "app", "127.0.0.1", "127.0.0.3");
    try {
      expect(Number(await one(c, "SELECT 3"))).toBe(3);
    } finally {
      await c.end();
    }
  });

  test("user denyCidrs → 1045 with the wrong-password text; user allowCidrs [::1/128] from 127.0.0.1 → 1045, from ::1 served", async () => {
    const e = await refusal(gw(cappedPort, "denied"));
    expect(e).toMatchObject({ errno: 1045, sqlState: "28000", message: "Access denied for user 'denied'@'127.0.0.1' (using password: YES)" });
    const cli = await runMariadbCli({ port: cappedPort, user: "denied", password: PW, sql: "SELECT 1" });
    expect(cli.stderr).toContain("ERROR 1045 (28000): Access denied for user 'denied'@'127.0.0.1' (using password: YES)");
    expect(await refusal(gw(v6Port, "denied", "::1"))).toMatchObject({ errno: 1045, message: "Access denied for user 'denied'@'::1' (using password: YES)" });
    expect(await refusal(gw(cappedPort, "onlyv6"))).toMatchObject({ errno: 1045, sqlState: "28000" });
    const c = await gw(v6Port, "onlyv6", "::1");
    await c.end();
  });
});

describe("behind a load balancer (PROXY header)", () => {
  const viaLb = (claimed: string): Promise<mysql.Connection> => {
    const stream = net.connect({ port: lbPort, host: "127.0.0.1" });
    stream.write(`PROXY TCP4 ${claimed} 127.0.0.1 40000 ${lbPort}\r\n`);
    return connect({ port: lbPort, user: "lbonly", password: PW, extra: { stream } });
  };

  test("the user's lists see the header's address: 127.0.0.99 is served, 127.0.0.98 gets 1045 naming it", async () => {
    const c = await viaLb("127.0.0.99");
    await c.end();
    expect(await refusal(viaLb("127.0.0.98"))).toMatchObject({ errno: 1045, message: "Access denied for user 'lbonly'@'127.0.0.98' (using password: YES)" });
  });
});

describe("connection limits", () => {
  test("listener maxConnections 3: the 4th gets 1040 (also in the mariadb CLI), the first three keep working; a closed one frees its slot", async () => {
    const open = [await gw(cappedPort), await gw(cappedPort), await gw(cappedPort)];
    try {
      expect(await refusal(gw(cappedPort))).toMatchObject({ errno: 1040, sqlState: "08004", message: "Too many connections" });
      const cli = await runMariadbCli({ port: cappedPort, user: "app", password: PW, sql: "SELECT 1", args: ["--skip-ssl"] });
      expect(cli.stderr).toContain("ERROR 1040 (08004): Too many connections");
      for (const c of open) expect(Number(await one(c, "SELECT 7"))).toBe(7);
      await open.pop()!.end();
      // the slot is given back when the session ends (asynchronously, after COM_QUIT)
      let again: mysql.Connection | null = null;
      for (let i = 0; i < 50 && again === null; i++) {
        again = await gw(cappedPort).catch(() => null);
        if (again === null) await new Promise((r) => setTimeout(r, 100));
      }
      expect(again).not.toBeNull();
      open.push(again!);
      expect(Number(await one(again!, "SELECT 8"))).toBe(8);
    } finally {
      await Promise.all(open.map((c) => c.end()));
    }
  });

  test("user maxConnections 2: the 3rd gets 1203 (42000); ending one lets the next in", async () => {
    // two listeners: the user's count spans them
    const a = await gw(v6Port, "two", "::1");
    const b = await gw(idlePort, "two");
    try {
      expect(await refusal(gw(idlePort, "two"))).toMatchObject({
        errno: 1203,
        sqlState: "42000",
        message: "User two already has more than 'max_user_connections' active connections",
      });
    } finally {
      await b.end();
    }
    let c: mysql.Connection | null = null;
    for (let i = 0; i < 50 && c === null; i++) {
      c = await gw(idlePort, "two").catch(() => null);
      if (c === null) await new Promise((r) => setTimeout(r, 100));
    }
    expect(c).not.toBeNull();
    await Promise.all([a.end(), c!.end()]);
  });

  test("backend maxConnections 1, the cluster's only one: the 2nd session gets 1040 naming the cluster", async () => {
    const a = await gw(tinyPort);
    try {
      const e = await refusal(gw(tinyPort));
      expect(e).toMatchObject({ errno: 1040, sqlState: "08004" });
      expect(e.message).toContain("cluster 'tiny'");
    } finally {
      await a.end();
    }
  });
});

describe("idle timeout", () => {
  test("an idle session is closed after idleTimeout; one running SELECT SLEEP longer than it is not", async () => {
    const busy = await gw(idlePort);
    const idle = await gw(idlePort);
    try {
      const closed = new Promise<number>((resolve) => {
        const t0 = Date.now();
        setTimeout(() => resolve(-1), IDLE_MS * 4).unref();
        idle.on("error", () => resolve(Date.now() - t0));
        (idle as unknown as { connection: { stream: { on(e: string, f: () => void): void } } }).connection.stream.on("close", () => resolve(Date.now() - t0));
      });
      const slept = await one(busy, `SELECT SLEEP(${(IDLE_MS * 2.5) / 1000})`);
      expect(Number(slept)).toBe(0);
      const afterMs = await closed;
      expect(afterMs).toBeGreaterThanOrEqual(IDLE_MS - 100);
      expect(afterMs).toBeLessThan(IDLE_MS * 2);
      // the busy one still works, and is itself idle-closed later
      expect(Number(await one(busy, "SELECT 5"))).toBe(5);
      await expect(idle.query("SELECT 1")).rejects.toThrow();
    } finally {
      busy.destroy();
      idle.destroy();
    }
  }, 20_000);
});

describe("the Gateway through the CLI", () => {
  test("get policy round-trips it; diff names Gateway gateway; apply; get gateway; a second Gateway document is refused", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "mgw-access-"));
    try {
      const got = await runCli(cp.url, ["get", "policy"]);
      expect(got.code).toBe(0);
      expect(got.stdout).toContain("kind: Gateway");
      expect(got.stdout).toContain("idleTimeout: 1.500s");
      const file = path.join(dir, "policy.yaml");
      fs.writeFileSync(file, got.stdout.replace("maxConnections: 1000", "maxConnections: 999"));
      const diff = await runCli(cp.url, ["diff", "-f", file]);
      expect(diff.stdout + diff.stderr).toMatch(/Gateway gateway/);
      expect(diff.stdout).toContain("maxConnections");
      const applied = await runCli(cp.url, ["apply", "-f", file]);
      expect(applied.code).toBe(0);
      const gwOut = await runCli(cp.url, ["get", "gateway"]);
      expect(gwOut.stdout).toContain("kind: Gateway");
      expect(gwOut.stdout).toContain("maxConnections: 999");
      fs.writeFileSync(path.join(dir, "second.yaml"), "kind: Gateway\nmaxConnections: 5\n");
      const twice = await runCli(cp.url, ["diff", "-f", dir]);
      expect(twice.code).toBe(1);
      expect(twice.stderr).toContain("second.yaml document 1 (Gateway): a second Gateway document; the first is");
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
