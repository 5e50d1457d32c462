import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import pino from "pino";
import { create } from "@bufbuild/protobuf";
import { ConfigVersionSchema } from "@mysqlgw/proto";
import { createDiskConfigCache, ensureDir } from "./disk-cache";
import { decodeConfig, encodeConfig } from "./config-codec";

function captureLogger() {
  const lines: Array<Record<string, unknown>> = [];
  const logger = pino({ level: "debug" }, { write: (s: string) => lines.push(JSON.parse(s)) });
  return { logger, lines };
}

function doc(version: bigint, port = 6033) {
  return encodeConfig(
    create(ConfigVersionSchema, {
      version,
      digest: `d${version}`,
      policy: {
        clusters: [{ name: "orders", backends: [{ name: "db1", address: "127.0.0.1:3306" }] }],
        listeners: [{ name: "orders-rw", port, cluster: "orders" }],
      },
    }),
  );
}

describe("disk config cache", () => {
  let dir: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "mgw-cache-"));
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it("returns null when there is no file, without logging", () => {
    const { logger, lines } = captureLogger();
    const cache = createDiskConfigCache({ dir: path.join(dir, "missing"), logger });
    expect(cache.load()).toBeNull();
    expect(lines).toHaveLength(0);
  });

  it("round-trips the etcd value byte for byte and creates the directory", async () => {
    const { logger } = captureLogger();
    const cache = createDiskConfigCache({ dir: path.join(dir, "a", "b"), logger });
    const d = doc(7n);
    await cache.save(d);
    expect(fs.readFileSync(cache.file, "utf8")).toBe(d.json);
    const loaded = cache.load();
    expect(loaded?.version).toBe(7n);
    expect(loaded?.config.policy?.listeners[0]?.port).toBe(6033);
    expect((fs.statSync(cache.file).mode & 0o777).toString(8)).toBe("600");
  });

  it("replaces atomically and leaves no temporary file behind", async () => {
    const { logger } = captureLogger();
    const cache = createDiskConfigCache({ dir, logger });
    await cache.save(doc(1n));
    await cache.save(doc(2n, 7000));
    expect(cache.load()?.version).toBe(2n);
    expect(fs.readdirSync(dir)).toEqual(["config.json"]);
  });

  it("keeps the previous file when the write fails", async () => {
    const { logger } = captureLogger();
    const cache = createDiskConfigCache({ dir, logger });
    await cache.save(doc(1n));
    // The second save's temporary name is taken by a directory: open() fails with EISDIR.
    const squatter = `${cache.file}.tmp-${process.pid}-2`;
    fs.mkdirSync(squatter);
    await expect(cache.save(doc(2n))).rejects.toThrow(/EISDIR/);
    expect(cache.load()?.version).toBe(1n);
    fs.rmdirSync(squatter);
    expect(fs.readdirSync(dir)).toEqual(["config.json"]);
  });

  it.each([
    ["truncated JSON", (j: string) => j.slice(0, j.length / 2)],
    ["not JSON", () => "\u0000\u0001garbage"],
    ["a JSON value of the wrong shape", () => JSON.stringify({ version: "x", policy: 3 })],
    ["version 0", () => JSON.stringify({ version: "0" })],
    ["an empty file", () => ""],
  ])("ignores a corrupt file (%s) with one warning", async (_name, corrupt) => {
    const { logger, lines } = captureLogger();
    const cache = createDiskConfigCache({ dir, logger });
    await cache.save(doc(3n));
    fs.writeFileSync(cache.file, corrupt(doc(3n).json));
    expect(cache.load()).toBeNull();
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ level: 40, file: cache.file });
    expect(String(lines[0]!.msg)).toMatch(/corrupt; ignoring it/);
    // The next save replaces it.
    await cache.save(doc(4n));
    expect(cache.load()?.version).toBe(4n);
  });
});

describe("decodeConfig", () => {
  it("accepts unknown fields from a newer control plane", () => {
    const res = decodeConfig(JSON.stringify({ version: "5", futureField: true }));
    expect(res.ok && res.doc.version).toBe(5n);
  });
  it("rejects a missing version", () => {
    expect(decodeConfig("{}")).toMatchObject({ ok: false, reason: "version is 0 or missing" });
  });
});

describe("ensureDir", () => {
  it("creates nested directories, accepts existing ones, and fails fast where mkdir cannot work", () => {
    const base = fs.mkdtempSync(path.join(os.tmpdir(), "mgw-dir-"));
    try {
      const nested = path.join(base, "a", "b", "c");
      ensureDir(nested);
      ensureDir(nested);
      expect(fs.statSync(nested).isDirectory()).toBe(true);
      fs.writeFileSync(path.join(base, "file"), "");
      expect(() => ensureDir(path.join(base, "file", "x"))).toThrow(/ENOTDIR/);
      // Node's recursive mkdir spins forever here.
      expect(() => ensureDir("/proc/mysqlgw-nope/x")).toThrow(/ENOENT/);
    } finally {
      fs.rmSync(base, { recursive: true, force: true });
    }
  });
});
