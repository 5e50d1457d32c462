// Issue 3, points 1 and 2: authentication of mysqlgw's own users
// (mysql_native_password, caching_sha2_password fast path, full path over TLS
// and full path with the RSA key exchange, auth switch) and TLS toward clients
// and toward backends, with real clients (mysql2, PyMySQL, the mariadb CLI)
// through a real data plane in front of a real MariaDB started with TLS.
import * as fs from "node:fs";
import * as path from "node:path";
import * as mariadb from "mariadb";
import type { ConnectionOptions } from "mysql2";
import {
  applyPolicy,
  connect,
  freePort,
  nativePasswordHash,
  runMariadbCli,
  runProcess,
  startControlPlane,
  startDataPlane,
  startEtcd,
  startMariaDB,
  tempDir,
  type ControlPlane,
  type EtcdServer,
  type MariaDBServer,
} from "../helpers";
// eslint-disable-next-line @typescript-eslint/no-require-imports
const sha2PluginFactory = require(path.join(path.dirname(require.resolve("mysql2")), "lib/auth_plugins/caching_sha2_password.js")) as (
  o?: { onServerPublicKey?: (key: Buffer) => void },
) => (ctx: unknown) => (data: Buffer) => Buffer | null;
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { cachingSha2PasswordHash } = require("../../data-plane/dist/protocol/auth/sha256-crypt.js") as {
  cachingSha2PasswordHash: (pw: string) => string;
};

const BACKEND_PW = "backend-pw-1";
const PW = "Gateway-pw-1";

let dir: string;
let db: MariaDBServer;
let etcd: EtcdServer;
let cp: ControlPlane;
/** Listener ports: plain backend, VERIFY_CA backend, backend checked against the wrong CA. */
let plainPort: number;
let tlsPort: number;
let badCaPort: number;

function openssl(args: string[]): Promise<void> {
  return runProcess("openssl", args, { timeoutMs: 30_000 }).then((r) => {
    if (r.code !== 0) throw new Error(`openssl ${args.join(" ")}: ${r.stderr}`);
  });
}

/** A CA, a server certificate for 127.0.0.1/localhost and a client certificate it signed; and a second, unrelated CA. */
async function makeCertificates(d: string): Promise<void> {
  const p = (f: string) => path.join(d, f);
  for (const ca of ["ca", "other-ca"]) {
    await openssl(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", p(`${ca}-key.pem`), "-out", p(`${ca}.pem`), "-days", "2", "-subj", `/CN=mysqlgw test ${ca}`]);
  }
  fs.writeFileSync(p("server.ext"), "subjectAltName=IP:127.0.0.1,DNS:localhost\n");
  for (const leaf of ["server", "client"]) {
    await openssl(["req", "-newkey", "rsa:2048", "-nodes", "-keyout", p(`${leaf}-key.pem`), "-out", p(`${leaf}.csr`), "-subj", `/CN=${leaf === "server" ? "localhost" : "mysqlgw-test-client"}`]);
    await openssl([
      "x509", "-req", "-in", p(`${leaf}.csr`), "-CA", p("ca.pem"), "-CAkey", p("ca-key.pem"), "-CAcreateserial",
      "-out", p(`${leaf}.pem`), "-days", "2", ...(leaf === "server" ? ["-extfile", p("server.ext")] : []),
    ]);
  }
}

const sha2Hash = (): string => cachingSha2PasswordHash(PW);

beforeAll(async () => {
  dir = tempDir("auth-tls");
  await makeCertificates(dir);
  [etcd, db] = await Promise.all([
    startEtcd(),
    startMariaDB({
      accounts: [{ user: "app", password: BACKEND_PW }],
      extraArgs: [`--ssl-cert=${dir}/server.pem`, `--ssl-key=${dir}/server-key.pem`, `--ssl-ca=${dir}/ca.pem`],
    }),
  ]);
  cp = await startControlPlane({ etcd });
  [plainPort, tlsPort, badCaPort] = [await freePort(), await freePort(), await freePort()];
  const backendCredentials = { user: "app", secretRef: "env:AUTH_TLS_BACKEND_PW" };
  const backends = [{ name: "db", address: db.address }];
  const policy = {
    clusters: [
      { name: "plain", backends },
      { name: "verified", backends, tls: { mode: "MODE_VERIFY_CA", caFile: `${dir}/ca.pem` } },
      { name: "wrong-ca", backends, tls: { mode: "MODE_VERIFY_CA", caFile: `${dir}/other-ca.pem` } },
    ],
    listeners: [
      { name: "plain", bindAddress: "127.0.0.1", port: plainPort, cluster: "plain" },
      { name: "verified", bindAddress: "127.0.0.1", port: tlsPort, cluster: "verified" },
      { name: "wrong-ca", bindAddress: "127.0.0.1", port: badCaPort, cluster: "wrong-ca" },
    ],
    users: [
      { name: "native", passwordHash: nativePasswordHash(PW), backendCredentials },
      { name: "sha2", cachingSha2PasswordHash: sha2Hash(), backendCredentials },
      { name: "sha2py", cachingSha2PasswordHash: sha2Hash(), backendCredentials },
      { name: "sha2cli", cachingSha2PasswordHash: sha2Hash(), backendCredentials },
      // each used by one test only, so that its first login finds the fast-path cache empty
      { name: "sha2tls", cachingSha2PasswordHash: sha2Hash(), backendCredentials },
      { name: "sha2pyrsa", cachingSha2PasswordHash: sha2Hash(), backendCredentials },
      { name: "sha2clirsa", cachingSha2PasswordHash: sha2Hash(), backendCredentials },
      { name: "sha2chg", cachingSha2PasswordHash: sha2Hash(), backendCredentials },
      { name: "sha2mdbtls", cachingSha2PasswordHash: sha2Hash(), backendCredentials },
      { name: "sha2mdbrsa", cachingSha2PasswordHash: sha2Hash(), backendCredentials },
      { name: "sha2phptls", cachingSha2PasswordHash: sha2Hash(), backendCredentials },
      { name: "sha2phprsa", cachingSha2PasswordHash: sha2Hash(), backendCredentials },
      { name: "both", passwordHash: nativePasswordHash(PW), cachingSha2PasswordHash: sha2Hash(), backendCredentials },
      { name: "secure", passwordHash: nativePasswordHash(PW), cachingSha2PasswordHash: sha2Hash(), requireTls: true, backendCredentials },
    ],
  };
  const { version } = await applyPolicy(cp, policy, "auth-tls test");
    await startDataPlane({
    etcd,
    workers: 1,
    env: { AUTH_TLS_BACKEND_PW: BACKEND_PW },
    args: ["--tls-cert", `${dir}/server.pem`, "--tls-key", `${dir}/server-key.pem`, "--tls-ca", `${dir}/ca.pem`],
    waitForConfig: version,
  });
}, 180_000);

/** mysql2's own caching_sha2_password plugin, recording the AuthMoreData statuses it gets (3 fast, 4 full) and 2 when it receives our RSA key. */
function recordingSha2(seen: number[]): ConnectionOptions["authPlugins"] {
  return {
    caching_sha2_password: (ctx: unknown) => {
      const inner = sha2PluginFactory({ onServerPublicKey: (key) => seen.push(key.toString().includes("BEGIN PUBLIC KEY") ? 2 : -1) })(ctx);
      return (data: Buffer) => {
        if (data.length === 1) seen.push(data[0]!);
        return inner(data);
      };
    },
  } as unknown as ConnectionOptions["authPlugins"];
}

async function selectUser(opts: { user: string; password?: string; port?: number; ssl?: boolean; seen?: number[] }): Promise<string> {
  const c = await connect({
    port: opts.port ?? plainPort,
    user: opts.user,
    password: opts.password ?? PW,
    extra: {
      ssl: opts.ssl ? { ca: fs.readFileSync(`${dir}/ca.pem`) } : undefined,
      authPlugins: opts.seen ? recordingSha2(opts.seen) : undefined,
    },
  });
  try {
    const [rows] = await c.query("SELECT CURRENT_USER() AS u");
    return (rows as { u: string }[])[0]!.u;
  } finally {
    await c.end();
  }
}

async function expectDenied(p: Promise<unknown>, user: string): Promise<void> {
  await expect(p).rejects.toMatchObject({ errno: 1045, sqlState: "28000", message: expect.stringContaining(`Access denied for user '${user}'@'127.0.0.1'`) });
}

describe("caching_sha2_password with mysql2", () => {
  it("full path without TLS through the RSA key exchange, then the fast path from the cache", async () => {
    const first: number[] = [];
    expect(await selectUser({ user: "sha2", seen: first })).toMatch(/^app@/);
    expect(first).toEqual([4, 2]); // perform full authentication, then our public key
    const second: number[] = [];
    expect(await selectUser({ user: "sha2", seen: second })).toMatch(/^app@/);
    expect(second).toEqual([3]); // fast_auth_success
  });

  it("full path over TLS sends the clear password (no RSA), then the fast path", async () => {
    // a caching_sha2-only user never seen by this worker: switched from mysql_native_password, full path
    const first: number[] = [];
    expect(await selectUser({ user: "sha2tls", ssl: true, seen: first })).toMatch(/^app@/);
    expect(first).toEqual([4]); // perform full authentication, and no public key: the password went in clear over TLS
    const second: number[] = [];
    expect(await selectUser({ user: "sha2tls", ssl: true, seen: second })).toMatch(/^app@/);
    expect(second).toEqual([3]);
  });

  it("a user with both verifiers keeps mysql2's mysql_native_password (no switch, no caching_sha2 round)", async () => {
    const seen: number[] = [];
    expect(await selectUser({ user: "both", ssl: true, seen, password: PW })).toMatch(/^app@/);
    expect(seen).toEqual([]);
  });

  it("refuses a wrong password on every path with 1045/28000", async () => {
    // RSA path (not cached for this password)
    await expectDenied(selectUser({ user: "sha2", password: "wrong" }), "sha2");
    // TLS path
    await expectDenied(selectUser({ user: "sha2", password: "wrong", ssl: true }), "sha2");
    // native
    await expectDenied(selectUser({ user: "native", password: "wrong" }), "native");
    await expectDenied(selectUser({ user: "native", password: "" }), "native");
    // unknown users take the caching_sha2 road like known ones and fail the same way
    await expectDenied(selectUser({ user: "nobody", password: "wrong" }), "nobody");
    // the right password still works afterwards (the cache was not poisoned)
    const seen: number[] = [];
    expect(await selectUser({ user: "sha2", seen })).toMatch(/^app@/);
    expect(seen).toEqual([3]);
  });

  it("COM_CHANGE_USER to a caching_sha2-only user: auth switch, RSA full path, then the fast path; refusals are 1045/28000", async () => {
    const c = await connect({ port: plainPort, user: "native", password: PW });
    try {
      const seen: number[] = [];
      // mysql2 answers the switch with its caching_sha2 plugin, configured at connect time
      (c as unknown as { connection: { config: { authPlugins: unknown } } }).connection.config.authPlugins = recordingSha2(seen);
      await expect(c.changeUser({ user: "sha2chg", password: "wrong" })).rejects.toMatchObject({ errno: 1045, sqlState: "28000" });
      seen.length = 0;
      await c.changeUser({ user: "sha2chg", password: PW });
      expect(seen).toEqual([4, 2]);
      seen.length = 0;
      await c.changeUser({ user: "sha2chg", password: PW });
      expect(seen).toEqual([3]);
      const [rows] = await c.query("SELECT CURRENT_USER() AS u");
      expect((rows as { u: string }[])[0]!.u).toMatch(/^app@/);
      // a require_tls user cannot be taken on over a plain connection
      await expect(c.changeUser({ user: "secure", password: PW })).rejects.toMatchObject({ errno: 1045, sqlState: "28000" });
    } finally {
      c.destroy();
    }
  });

  it("require_tls refuses a plain connection with Access denied, accepts TLS", async () => {
    await expectDenied(selectUser({ user: "secure" }), "secure");
    expect(await selectUser({ user: "secure", ssl: true })).toMatch(/^app@/);
  });
});

describe("PyMySQL 1.0 (python3-pymysql, with cryptography)", () => {
  const script = `
import json, sys, pymysql
port, user, pw, ca = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
try:
    c = pymysql.connect(host="127.0.0.1", port=port, user=user, password=pw, ssl={"ca": ca} if ca else None, connect_timeout=5)
    cur = c.cursor()
    cur.execute("SELECT CURRENT_USER()")
    print(json.dumps({"ok": cur.fetchone()[0], "tls": c._secure, "rsaKey": bool(c.server_public_key)}))
    c.close()
except pymysql.err.MySQLError as e:
    print(json.dumps({"errno": e.args[0], "msg": str(e.args[1])}))
`;
  async function py(user: string, pw: string, tls: boolean): Promise<{ ok?: string; tls?: boolean; rsaKey?: boolean; errno?: number; msg?: string }> {
    const r = await runProcess("/usr/bin/python3", ["-c", script, String(plainPort), user, pw, tls ? `${dir}/ca.pem` : ""], { timeoutMs: 20_000 });
    expect(r.stderr).toBe("");
    return JSON.parse(r.stdout) as { ok?: string; errno?: number };
  }

  it("authenticates with caching_sha2_password over TLS and with the RSA key, and is refused with a wrong password", async () => {
    // first login over TLS: full path, clear password, no key asked for
    expect(await py("sha2py", PW, true)).toEqual({ ok: expect.stringMatching(/^app@/), tls: true, rsaKey: false });
    // without TLS: the RSA full path although the user is cached — PyMySQL 1.0 computes its fast-path scramble
    // after an auth switch over the nonce with its trailing NUL, which never matches (MySQL 8 then does the same)
    expect(await py("sha2py", PW, false)).toEqual({ ok: expect.stringMatching(/^app@/), tls: false, rsaKey: true });
    expect(await py("sha2py", "wrong", false)).toMatchObject({ errno: 1045, msg: expect.stringContaining("Access denied for user 'sha2py'") });
    expect(await py("sha2py", "wrong", true)).toMatchObject({ errno: 1045 });
  });

  it("full path without TLS: PyMySQL asks for the public key and sends the RSA-encrypted password", async () => {
    // sha2pyrsa is not in the cache: PyMySQL gets "perform full authentication", requests our key (0x02), encrypts
    expect(await py("sha2pyrsa", PW, false)).toEqual({ ok: expect.stringMatching(/^app@/), tls: false, rsaKey: true });
    expect(await py("sha2pyrsa", "wrong", false)).toMatchObject({ errno: 1045, msg: expect.stringContaining("Access denied for user 'sha2pyrsa'") });
  });
});

describe("the mariadb npm connector", () => {
  async function mdb(user: string, password: string, opts: { tls?: boolean; retrieveKey?: boolean }): Promise<{ u?: string; errno?: number; sqlState?: string }> {
    try {
      const c = await mariadb.createConnection({
        host: "127.0.0.1", port: plainPort, user, password, connectTimeout: 5000,
        ssl: opts.tls ? { ca: fs.readFileSync(`${dir}/ca.pem`, "utf8") } : undefined,
        allowPublicKeyRetrieval: opts.retrieveKey === true,
      });
      try {
        const [row] = (await c.query("SELECT CURRENT_USER() AS u")) as { u: string }[];
        return { u: row!.u };
      } finally {
        await c.end();
      }
    } catch (e) {
      const x = e as { errno?: number; sqlState?: string };
      return { errno: x.errno, sqlState: x.sqlState };
    }
  }

  it("caching_sha2_password: full path over TLS, then the fast path without TLS", async () => {
    expect(await mdb("sha2mdbtls", PW, { tls: true })).toMatchObject({ u: expect.stringMatching(/^app@/) });
    // cached now: no key needed (allowPublicKeyRetrieval off would make the full path fail)
    expect(await mdb("sha2mdbtls", PW, {})).toMatchObject({ u: expect.stringMatching(/^app@/) });
  });

  it("caching_sha2_password: full path without TLS through the RSA key (allowPublicKeyRetrieval), refused without it", async () => {
    // the connector's own refusal: it will not send the password without TLS unless allowed to fetch the key
    expect(await mdb("sha2mdbrsa", PW, {})).toMatchObject({ errno: expect.any(Number) });
    expect(await mdb("sha2mdbrsa", "wrong", { retrieveKey: true })).toEqual({ errno: 1045, sqlState: "28000" });
    expect(await mdb("sha2mdbrsa", PW, { retrieveKey: true })).toMatchObject({ u: expect.stringMatching(/^app@/) });
  });

  it("a require_tls user: 1045/28000 without TLS, accepted with it", async () => {
    expect(await mdb("secure", PW, {})).toEqual({ errno: 1045, sqlState: "28000" });
    expect(await mdb("secure", PW, { tls: true })).toMatchObject({ u: expect.stringMatching(/^app@/) });
  });
});

describe("PHP (mysqlnd): mysqli and PDO", () => {
  async function php(code: string): Promise<Record<string, unknown>> {
    const file = path.join(dir, `t${Math.random().toString(36).slice(2)}.php`);
    fs.writeFileSync(file, `<?php\nmysqli_report(MYSQLI_REPORT_OFF);\n$out = [];\n${code}\necho json_encode($out);\n`);
    const r = await runProcess("php", [file], { timeoutMs: 20_000 });
    expect(r.stderr).toBe("");
    return JSON.parse(r.stdout) as Record<string, unknown>;
  }
  const mysqli = (key: string, user: string, pw: string, tls: boolean) => `
    $m = mysqli_init();
    ${tls ? `$m->ssl_set(null, null, "${dir}/ca.pem", null, null);` : ""}
    if (@$m->real_connect("127.0.0.1", "${user}", "${pw}", "", ${plainPort}, null, ${tls ? "MYSQLI_CLIENT_SSL" : "0"})) {
      $out["${key}"] = $m->query("SELECT CURRENT_USER()")->fetch_row()[0];
      $m->close();
    } else { $out["${key}"] = mysqli_connect_errno(); }`;

  it("mysqli: caching_sha2 full path over TLS, then without TLS; a fresh user without TLS (RSA key); wrong password 1045", async () => {
    const out = await php([
      mysqli("tls", "sha2phptls", PW, true),
      mysqli("plainAfter", "sha2phptls", PW, false),
      mysqli("rsa", "sha2phprsa", PW, false),
      mysqli("wrong", "sha2phprsa", "wrong", false),
      mysqli("secure", "secure", PW, false),
      mysqli("secureTls", "secure", PW, true),
    ].join("\n"));
    expect(out).toEqual({ tls: "app@%", plainAfter: "app@%", rsa: "app@%", wrong: 1045, secure: 1045, secureTls: "app@%" });
  });

  it("PDO (ATTR_EMULATE_PREPARES=false) over TLS with a caching_sha2-only user", async () => {
    const out = await php(`
      $p = new PDO("mysql:host=127.0.0.1;port=${plainPort}", "sha2phptls", "${PW}", [PDO::MYSQL_ATTR_SSL_CA => "${dir}/ca.pem", PDO::ATTR_EMULATE_PREPARES => false, PDO::ATTR_ERRMODE => PDO::ERRMODE_EXCEPTION]);
      $s = $p->prepare("SELECT CURRENT_USER() AS u, ? + 1 AS n"); $s->execute([41]);
      $out["row"] = $s->fetch(PDO::FETCH_ASSOC);
      try { new PDO("mysql:host=127.0.0.1;port=${plainPort}", "sha2phptls", "wrong", [PDO::MYSQL_ATTR_SSL_CA => "${dir}/ca.pem"]); } catch (PDOException $e) { $out["wrong"] = $e->errorInfo[1] ?? $e->getCode(); }
    `);
    expect(out).toEqual({ row: { u: "app@%", n: 42 }, wrong: 1045 });
  });
});

describe("the mariadb CLI", () => {
  const cli = (user: string, args: string[], sql = "SELECT CURRENT_USER()", port = plainPort) =>
    runMariadbCli({ port, user, password: PW, sql, args: ["--skip-column-names", ...args] });

  it("verifies the gateway's certificate and authenticates over TLS (caching_sha2 via auth switch)", async () => {
    const r = await cli("sha2cli", ["--ssl", `--ssl-ca=${dir}/ca.pem`, "--ssl-verify-server-cert"], "SHOW SESSION STATUS LIKE 'Ssl_version'; SELECT CURRENT_USER()");
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/app@/);
  });

  it("presents a client certificate when asked (--tls-ca) and reports the cipher in \\s", async () => {
    const r = await cli("secure", ["--ssl", `--ssl-ca=${dir}/ca.pem`, `--ssl-cert=${dir}/client.pem`, `--ssl-key=${dir}/client-key.pem`], "status");
    expect(r.stderr).toBe("");
    expect(r.stdout).toMatch(/SSL:\s+Cipher in use is \S+/);
  });

  it("gets the server's public key without TLS (libmariadb's caching_sha2_password asks for it)", async () => {
    // sha2clirsa's first login on this worker: the cache is empty, so only the RSA full path can succeed
    const wrong = await runMariadbCli({ port: plainPort, user: "sha2clirsa", password: "wrong", sql: "SELECT 1", args: ["--skip-ssl"] });
    expect(wrong.stderr).toMatch(/ERROR 1045 \(28000\): Access denied for user 'sha2clirsa'/);
    for (const args of [["--skip-ssl"], ["--skip-ssl", "--default-auth=caching_sha2_password"]]) {
      const r = await cli("sha2clirsa", args);
      expect(r.stderr).toBe("");
      expect(r.stdout).toMatch(/app@/);
    }
  });

  it("switches a client that starts with caching_sha2_password to mysql_native_password for a native-only user", async () => {
    const r = await cli("native", ["--skip-ssl", "--default-auth=caching_sha2_password"]);
    expect(r.stderr).toBe("");
    expect(r.stdout).toMatch(/app@/);
  });

  it("is refused with 1045 (28000) for a plain connection of a require_tls user, and for a wrong password", async () => {
    const r = await cli("secure", ["--skip-ssl"]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/ERROR 1045 \(28000\): Access denied for user 'secure'@'127.0.0.1'/);
    const w = await runMariadbCli({ port: plainPort, user: "sha2cli", password: "wrong", sql: "SELECT 1", args: ["--ssl", `--ssl-ca=${dir}/ca.pem`] });
    expect(w.stderr).toMatch(/ERROR 1045 \(28000\)/);
  });
});

describe("TLS toward backends", () => {
  it("VERIFY_CA: the backend connection is TLS (Ssl_cipher non-empty), and plain without tls", async () => {
    const status = async (port: number): Promise<string> => {
      const c = await connect({ port, user: "native", password: PW });
      try {
        const [rows] = await c.query("SHOW SESSION STATUS LIKE 'Ssl_cipher'");
        return (rows as { Value: string }[])[0]!.Value;
      } finally {
        await c.end();
      }
    };
    expect(await status(tlsPort)).not.toBe("");
    expect(await status(plainPort)).toBe("");
  });

  it("a certificate that does not chain to caFile fails with a clear 1105", async () => {
    await expect(connect({ port: badCaPort, user: "native", password: PW })).rejects.toMatchObject({
      errno: 1105,
      sqlState: "HY000",
      message: expect.stringMatching(/TLS handshake failed: .*(certificate|self.signed).*check the cluster's tls/i),
    });
  });
});
