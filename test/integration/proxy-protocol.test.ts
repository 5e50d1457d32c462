// Issue 3, point 6: the real client IP. A "load balancer" (this test, on a raw
// socket) sends a PROXY v1/v2 header claiming a loopback address such as
// 127.0.0.99; the data plane trusts it (trustedCidrs) and sends a v2 header to
// MariaDB (--proxy-protocol-networks), which then sees the claimed address:
// USER(), the processlist host and host-restricted grants.
import * as net from "node:net";
import * as mysql from "mysql2/promise";
import {
  applyPolicy,
  connect,
  freePort,
  nativePasswordHash,
  startControlPlane,
  startDataPlane,
  startEtcd,
  startMariaDB,
  type MariaDBServer,
} from "../helpers";

const APP_PW = "proxy-app-pw-1";
const HOST_PW = "proxy-host-pw-1";
const HANDSHAKE_TIMEOUT_MS = 1500;

let db: MariaDBServer;
/** proxyProtocol: trustedCidrs [127.0.0.1/32], required. */
let lbPort: number;
/** proxyProtocol: trustedCidrs [127.0.0.1/32], not required. */
let optPort: number;
/** No proxyProtocol: nobody is trusted. */
let plainPort: number;

beforeAll(async () => {
  const [etcd, server] = await Promise.all([
    startEtcd(),
    startMariaDB({ accounts: [{ user: "app", password: APP_PW }], extraArgs: ["--proxy-protocol-networks=127.0.0.0/8"] }),
  ]);
  db = server;
  await db.query("CREATE DATABASE shop");
  await db.query(`CREATE USER 'hostuser'@'127.0.0.99' IDENTIFIED BY '${HOST_PW}'`);
  await db.query("GRANT SELECT ON shop.* TO 'hostuser'@'127.0.0.99'");
  const cp = await startControlPlane({ etcd });
  [lbPort, optPort, plainPort] = [await freePort(), await freePort(), await freePort()];
  const { version } = await applyPolicy(cp, {
    clusters: [{ name: "main", backends: [{ name: "db", address: db.address }], sendProxyProtocol: true }],
    listeners: [
      { name: "lb", bindAddress: "127.0.0.1", port: lbPort, cluster: "main", proxyProtocol: { trustedCidrs: ["127.0.0.1/32", "::1/128"], required: true } },
      { name: "opt", bindAddress: "127.0.0.1", port: optPort, cluster: "main", proxyProtocol: { trustedCidrs: ["127.0.0.0/30"] } },
      { name: "plain", bindAddress: "127.0.0.1", port: plainPort, cluster: "main" },
    ],
    users: [
      { name: "app", passwordHash: nativePasswordHash(APP_PW), backendCredentials: { user: "app", secretRef: "env:APP_PW" } },
      { name: "hostuser", passwordHash: nativePasswordHash(HOST_PW), backendCredentials: { user: "hostuser", secretRef: "env:HOST_PW" } },
    ],
  });
  await startDataPlane({ etcd, workers: 1, handshakeTimeoutMs: HANDSHAKE_TIMEOUT_MS, env: { APP_PW, HOST_PW }, waitForConfig: version });
}, 120_000);

/** A socket to `port` on which `header` is written first, as a load balancer does. */
function lbSocket(port: number, header: Buffer | null, localAddress?: string): net.Socket {
  const s = net.connect({ port, host: "127.0.0.1", localAddress });
  if (header !== null) s.write(header);
  return s;
}

/** mysql2 over a socket that carries a PROXY header first. */
function viaLb(user: string, password: string, header: Buffer | null, port = lbPort): Promise<mysql.Connection> {
  return connect({ port, user, password, database: "shop", extra: { stream: lbSocket(port, header) } });
}

/**
 * PROXY headers claiming a TCP4 connection from `address`:`port` to the listener,
 * written by hand from the spec (haproxy proxy-protocol.txt §2.1, §2.2).
 */
function claim(address: string, port: number): { v1: Buffer; v2: Buffer } {
  const v1 = Buffer.from(`PROXY TCP4 ${address} 127.0.0.1 ${port} ${lbPort}\r\n`, "latin1");
  const v2 = Buffer.alloc(28);
  Buffer.from("0d0a0d0a000d0a515549540a", "hex").copy(v2, 0); // signature
  v2[12] = 0x21; // version 2, PROXY
  v2[13] = 0x11; // AF_INET, STREAM
  v2.writeUInt16BE(12, 14);
  Buffer.from(address.split(".").map(Number)).copy(v2, 16);
  Buffer.from([127, 0, 0, 1]).copy(v2, 20);
  v2.writeUInt16BE(port, 24);
  v2.writeUInt16BE(lbPort, 26);
  return { v1, v2 };
}

async function one<T>(c: mysql.Connection, sql: string): Promise<T> {
  const [[row]] = (await c.query(sql)) as unknown as [[T]];
  return row;
}

/** Raw client: resolves with what it received and how long until the server closed. */
function rawExchange(port: number, first: Buffer | null, opts: { afterGreeting?: Buffer; localAddress?: string } = {}): Promise<{ received: Buffer; closedAfterMs: number }> {
  return new Promise((resolve, reject) => {
    const s = lbSocket(port, first, opts.localAddress);
    const parts: Buffer[] = [];
    const start = Date.now();
    let greeted = false;
    const guard = setTimeout(() => {
      s.destroy();
      reject(new Error("still open after 8 s"));
    }, 8000);
    s.on("data", (d) => {
      parts.push(d);
      if (!greeted && opts.afterGreeting !== undefined) {
        greeted = true;
        s.write(opts.afterGreeting);
      }
    });
    s.on("error", () => undefined);
    s.on("close", () => {
      clearTimeout(guard);
      resolve({ received: Buffer.concat(parts), closedAfterMs: Date.now() - start });
    });
  });
}

describe("a trusted load balancer's PROXY header reaches MariaDB", () => {
  test.each(["v1", "v2"] as const)("%s: USER() and the processlist show the claimed address", async (v) => {
    const c = await viaLb("app", APP_PW, claim("127.0.0.99", 40000)[v]);
    try {
      expect((await one<{ u: string }>(c, "SELECT USER() AS u")).u).toBe("app@127.0.0.99");
      const me = await one<{ h: string; id: number }>(c, "SELECT HOST AS h, ID AS id FROM information_schema.PROCESSLIST WHERE ID = CONNECTION_ID()");
      expect(me.h).toBe("127.0.0.99:40000");
      // as the DBA sees it
      const seen = await db.query<{ HOST: string }>("SELECT HOST FROM information_schema.PROCESSLIST WHERE ID = ?", [me.id]);
      expect(seen.map((r) => r.HOST)).toEqual(["127.0.0.99:40000"]);
    } finally {
      await c.end();
    }
  });

  test("a grant restricted to 'hostuser'@'127.0.0.99' is honoured; the same user claiming 127.0.0.98 is refused by the backend", async () => {
    const ok = await viaLb("hostuser", HOST_PW, claim("127.0.0.99", 40001).v2);
    try {
      expect((await one<{ u: string }>(ok, "SELECT CURRENT_USER() AS u")).u).toBe("hostuser@127.0.0.99");
      expect((await one<{ n: number }>(ok, "SELECT COUNT(*) AS n FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = 'shop'")).n).toBe("1");
    } finally {
      await ok.end();
    }
    const err = await viaLb("hostuser", HOST_PW, claim("127.0.0.98", 40002).v1).then(
      () => null,
      (e: unknown) => e as { errno?: number; sqlState?: string; message: string },
    );
    expect(err).not.toBeNull();
    // MariaDB's 1045 for 'hostuser'@'127.0.0.98', as the gateway maps a backend's login refusal
    // (today 1105 naming the backend and quoting its error; 1045/28000 itself if passed through as is).
    if (err!.errno === 1045) {
      expect(err).toMatchObject({ sqlState: "28000" });
      expect(err!.message).toContain("Access denied for user 'hostuser'@'127.0.0.98'");
    } else {
      expect(err).toMatchObject({ errno: 1105, sqlState: "HY000" });
      expect(err!.message).toContain("refused: 1045 (28000) Access denied for user 'hostuser'@'127.0.0.98' (using password: YES)");
    }
  });

  test("without a header, the same listener's trusted peer is closed (required); the optional listener takes it as is", async () => {
    // mysql2 waits for a greeting that never comes: closed at the handshake timeout
    const started = Date.now();
    await expect(connect({ port: lbPort, user: "app", password: APP_PW, connectTimeout: 5000 })).rejects.toThrow();
    expect(Date.now() - started).toBeGreaterThanOrEqual(HANDSHAKE_TIMEOUT_MS - 100);
    expect(Date.now() - started).toBeLessThan(HANDSHAKE_TIMEOUT_MS + 2000);
    // bytes that are no PROXY header: closed at once, no greeting
    const junk = await rawExchange(lbPort, Buffer.from("hello\r\n"));
    expect(junk.received.length).toBe(0);
    expect(junk.closedAfterMs).toBeLessThan(HANDSHAKE_TIMEOUT_MS);

    const direct = await connect({ port: optPort, user: "app", password: APP_PW });
    try {
      expect((await one<{ u: string }>(direct, "SELECT USER() AS u")).u).toBe("app@127.0.0.1");
    } finally {
      await direct.end();
    }
    const proxied = await viaLb("app", APP_PW, claim("127.0.0.77", 40003).v2, optPort);
    try {
      expect((await one<{ u: string }>(proxied, "SELECT USER() AS u")).u).toBe("app@127.0.0.77");
    } finally {
      await proxied.end();
    }
  });
});

describe("an untrusted peer's PROXY header closes the connection", () => {
  test.each(["v1", "v2"] as const)("%s to a listener without proxyProtocol: greeting, then closed without a reply", async (v) => {
    const r = await rawExchange(plainPort, null, { afterGreeting: claim("127.0.0.99", 40004)[v] });
    const greetingLength = 4 + r.received.readUIntLE(0, 3);
    expect(r.received[4]).toBe(10); // protocol version 10
    expect(r.received.length).toBe(greetingLength); // nothing after the greeting: no ERR, just the close
    expect(r.closedAfterMs).toBeLessThan(HANDSHAKE_TIMEOUT_MS);
  });

  test("from a peer outside trustedCidrs (127.0.0.2 on a listener trusting 127.0.0.1/32)", async () => {
    const r = await rawExchange(lbPort, null, { localAddress: "127.0.0.2", afterGreeting: claim("127.0.0.99", 40005).v2 });
    expect(r.received[4]).toBe(10);
    expect(r.received.length).toBe(4 + r.received.readUIntLE(0, 3));
    expect(r.closedAfterMs).toBeLessThan(HANDSHAKE_TIMEOUT_MS);
    // while a plain client from there works, with its own address
    const c = await connect({ port: lbPort, user: "app", password: APP_PW, extra: { stream: lbSocket(lbPort, null, "127.0.0.2") } });
    try {
      expect((await one<{ u: string }>(c, "SELECT USER() AS u")).u).toBe("app@127.0.0.2");
    } finally {
      await c.end();
    }
  });
});
