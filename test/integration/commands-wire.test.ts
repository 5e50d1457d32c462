// Issue 3, point 3: the commands no connector sends on demand, on the wire.
// A minimal client written for the test (test/helpers/raw-mysql.ts) sends
// COM_STATISTICS, COM_SET_OPTION, COM_STMT_SEND_LONG_DATA / RESET / EXECUTE /
// FETCH (a read-only cursor) / CLOSE, MariaDB's COM_STMT_BULK_EXECUTE and
// COM_QUIT, straight to MariaDB and through mysqlgw, and the packets that come
// back are compared byte for byte (statement ids and database names masked).
// commands-wire-split.test.ts runs it again through a SPLIT listener.
import {
  isEof,
  isErr,
  MARIADB_STMT_BULK_OPERATIONS,
  packet,
  RawCapability,
  rawLogin,
  type RawSession,
} from "../helpers/raw-mysql";
import { waitFor } from "../helpers";
import { startGatewayFixture, type GatewayFixture } from "../helpers/gateway-fixture";

/** Run through a routed listener (commands-wire-split.test.ts sets MYSQLGW_FIXTURE_LISTENER). */
const ROUTED = (process.env.MYSQLGW_FIXTURE_LISTENER ?? "").includes("SPLIT");

/** Same length, so that column definitions naming them compare equal once masked. */
const DB = { direct: "wire_d", gateway: "wire_g" } as const;
type Side = keyof typeof DB;

let fx: GatewayFixture;

beforeAll(async () => {
  fx = await startGatewayFixture({ databases: [DB.direct, DB.gateway] });
}, 120_000);

const enum Status {
  MoreResults = 0x0008,
  CursorExists = 0x0040,
  LastRowSent = 0x0080,
}

/** Reads a length-encoded integer at `at`; returns it and the next offset. */
function lenenc(b: Buffer, at: number): [number, number] {
  const f = b[at];
  if (f < 0xfb) return [f, at + 1];
  if (f === 0xfc) return [b.readUInt16LE(at + 1), at + 3];
  if (f === 0xfd) return [b.readUIntLE(at + 1, 3), at + 4];
  return [Number(b.readBigUInt64LE(at + 1)), at + 9];
}

function lenencString(s: string | Buffer): Buffer {
  const b = Buffer.isBuffer(s) ? s : Buffer.from(s);
  if (b.length >= 0xfb) throw new Error("short strings only");
  return Buffer.concat([Buffer.from([b.length]), b]);
}

/** Server status flags of an OK or EOF packet. */
function statusOf(p: Buffer): number {
  if (isEof(p)) return p.readUInt16LE(3);
  let at = lenenc(p, 1)[1];
  at = lenenc(p, at)[1];
  return p.readUInt16LE(at);
}

class Wire {
  /** What the server sent, one line per command, for comparison. */
  readonly seen: string[] = [];
  constructor(
    readonly sess: RawSession,
    private readonly side: Side,
  ) {}

  send(payload: Buffer): void {
    this.sess.s.write(packet(0, payload));
  }

  private async next(): Promise<Buffer> {
    return (await this.sess.r.next()).payload;
  }

  /** Packets as hex with the side's database name masked. */
  record(label: string, packets: Buffer[]): Buffer[] {
    const name = Buffer.from(DB[this.side]).toString("hex");
    this.seen.push(`${label}: ${packets.map((p) => p.toString("hex").split(name).join("<db>")).join(" ")}`);
    return packets;
  }

  /** One OK / ERR / EOF packet. */
  async single(label: string): Promise<Buffer> {
    return this.record(label, [await this.next()])[0];
  }

  /** Result sets up to the last one (text or binary rows; a cursor's result ends after its column definitions). */
  async results(label: string): Promise<Buffer[]> {
    const out: Buffer[] = [];
    for (let set = 0; set < 20; set++) {
      const first = await this.next();
      out.push(first);
      if (isErr(first)) break;
      if (first[0] === 0x00) {
        if ((statusOf(first) & Status.MoreResults) !== 0) continue;
        break;
      }
      const [columns] = lenenc(first, 0);
      for (let i = 0; i < columns; i++) out.push(await this.next());
      const eof = await this.next();
      out.push(eof);
      if ((statusOf(eof) & Status.CursorExists) !== 0) break;
      let end: Buffer | null = null;
      for (let i = 0; i < 10_000 && end === null; i++) {
        const p = await this.next();
        out.push(p);
        if (isEof(p) || isErr(p)) end = p;
      }
      if (end === null || isErr(end) || (statusOf(end) & Status.MoreResults) === 0) break;
    }
    return this.record(label, out);
  }

  /** Rows of a COM_STMT_FETCH up to its EOF. */
  async fetched(label: string): Promise<Buffer[]> {
    const out: Buffer[] = [];
    for (let i = 0; i < 10_000; i++) {
      const p = await this.next();
      out.push(p);
      if (isEof(p) || isErr(p)) break;
    }
    return this.record(label, out);
  }

  /** COM_STMT_PREPARE: returns the statement id (masked in what is recorded). */
  async prepare(label: string, sql: string): Promise<number> {
    this.send(Buffer.concat([Buffer.from([0x16]), Buffer.from(sql)]));
    const ok = await this.next();
    if (ok[0] !== 0x00) throw new Error(`prepare failed: ${ok.subarray(9).toString()}`);
    const id = ok.readUInt32LE(1);
    const columns = ok.readUInt16LE(5);
    const params = ok.readUInt16LE(7);
    const out: Buffer[] = [Buffer.concat([ok.subarray(0, 1), Buffer.alloc(4), ok.subarray(5)])];
    for (const n of [params, columns]) {
      if (n === 0) continue;
      for (let i = 0; i <= n; i++) out.push(await this.next()); // n definitions and their EOF
    }
    this.record(label, out);
    return id;
  }

  async query(label: string, sql: string): Promise<Buffer[]> {
    this.send(Buffer.concat([Buffer.from([0x03]), Buffer.from(sql)]));
    return this.results(label);
  }
}

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n, 0);
  return b;
}

function u16(n: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16LE(n, 0);
  return b;
}

/** The ERR packet's code and message with the statement id masked. */
function errText(p: Buffer, id: number): string {
  return `${p.readUInt16LE(1)} ${p.subarray(4, 9).toString()} ${p.subarray(9).toString().split(`(${id})`).join("(<id>)")}`;
}

interface Observed {
  seen: string[];
  statistics: string;
  bulkOffered: boolean;
  afterQuit: { closed: boolean; pending: number };
  backendThread: number;
  /** Packets of each COM_STMT_FETCH. */
  fetches: Buffer[][];
}

async function run(side: Side): Promise<Observed> {
  const ep = side === "direct" ? fx.direct : fx.gateway;
  const sess = await rawLogin({
    port: ep.port,
    user: ep.user,
    password: ep.password,
    database: DB[side],
    capabilities: RawCapability.MultiResults | RawCapability.PsMultiResults,
    mariadbCapabilities: MARIADB_STMT_BULK_OPERATIONS,
  });
  const w = new Wire(sess, side);
  try {
    // COM_STATISTICS: one string packet, no OK (its numbers differ between connections)
    w.send(Buffer.from([0x09]));
    const stats = await w.sess.r.next();
    const statistics = `seq ${stats.seq}: ${/^Uptime: \d+ {2}Threads: \d+ {2}Questions: \d+ {2}Slow queries: \d+ {2}Opens: \d+ {2}Open tables: \d+ {2}Queries per second avg: [\d.]+$/.test(stats.payload.toString())}`;

    await w.query("create", "CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(64))");

    // COM_SET_OPTION: multi-statements are off at login (no CLIENT_MULTI_STATEMENTS), on, then off again
    await w.query("multi before", "SELECT 1 AS a; SELECT 2 AS b");
    w.send(Buffer.from([0x1b, 0x00, 0x00]));
    await w.single("set option on");
    await w.query("multi on", "SELECT 1 AS a; SELECT 2 AS b");
    w.send(Buffer.from([0x1b, 0x01, 0x00]));
    await w.single("set option off");
    await w.query("multi off", "SELECT 1 AS a; SELECT 2 AS b");

    // COM_STMT_SEND_LONG_DATA, COM_STMT_RESET (drops the data sent so far), COM_STMT_EXECUTE
    const ins = await w.prepare("prepare insert", "INSERT INTO t VALUES (?, ?)");
    w.send(Buffer.concat([Buffer.from([0x18]), u32(ins), u16(1), Buffer.from("discarded-")]));
    w.send(Buffer.concat([Buffer.from([0x1a]), u32(ins)]));
    await w.single("stmt reset");
    w.send(Buffer.concat([Buffer.from([0x18]), u32(ins), u16(1), Buffer.from("long ")]));
    w.send(Buffer.concat([Buffer.from([0x18]), u32(ins), u16(1), Buffer.from("data")]));
    // id = 1 (LONG), v from the long data (VAR_STRING, its value omitted)
    w.send(Buffer.concat([Buffer.from([0x17]), u32(ins), Buffer.from([0x00]), u32(1), Buffer.from([0x00, 0x01, 0x03, 0x00, 0xfd, 0x00]), u32(1)]));
    await w.single("execute with long data");
    await w.query("long data stored", "SELECT id, v FROM t");
    await w.query("more rows", "INSERT INTO t VALUES (2, 'b'), (3, 'c'), (4, 'd'), (5, 'e')");

    // a read-only cursor: COM_STMT_EXECUTE with CURSOR_TYPE_READ_ONLY, then COM_STMT_FETCH by 2
    const sel = await w.prepare("prepare select", "SELECT id, v FROM t ORDER BY id");
    w.send(Buffer.concat([Buffer.from([0x17]), u32(sel), Buffer.from([0x01]), u32(1)]));
    await w.results("execute with a cursor");
    const fetches: Buffer[][] = [];
    for (let i = 0; i < 4; i++) {
      w.send(Buffer.concat([Buffer.from([0x1c]), u32(sel), u32(2)]));
      const rows = await w.fetched(`fetch ${i}`);
      fetches.push(rows);
      if ((statusOf(rows[rows.length - 1]) & Status.LastRowSent) !== 0) break;
    }

    // COM_STMT_CLOSE: no answer; the statement is gone
    w.send(Buffer.concat([Buffer.from([0x19]), u32(sel)]));
    w.send(Buffer.concat([Buffer.from([0x17]), u32(sel), Buffer.from([0x00]), u32(1)]));
    const closed = await w.sess.r.next();
    w.seen.push(`execute after close: ${errText(closed.payload, sel)}`);

    // MariaDB's COM_STMT_BULK_EXECUTE: three rows in one command, types sent (flag 128)
    const bulk = await w.prepare("prepare bulk", "INSERT INTO t VALUES (?, ?)");
    const rows: Buffer[] = [];
    for (const [id, v] of [[10, "bulk-a"], [11, null], [12, "bulk-c"]] as const) {
      rows.push(Buffer.from([0x00]), u32(id), v === null ? Buffer.from([0x01]) : Buffer.concat([Buffer.from([0x00]), lenencString(v)]));
    }
    w.send(Buffer.concat([Buffer.from([0xfa]), u32(bulk), u16(128), Buffer.from([0x03, 0x00, 0xfd, 0x00]), ...rows]));
    await w.single("bulk execute");
    await w.query("bulk rows", "SELECT id, v FROM t WHERE id >= 10 ORDER BY id");

    const [idRow] = (await w.query("connection id", "SELECT CONNECTION_ID()")).slice(3, 4);
    w.seen.pop(); // differs between connections
    const backendThread = Number(idRow.subarray(1).toString());

    // COM_QUIT: no answer, the connection is closed by the server side
    w.send(Buffer.from([0x01]));
    const afterQuit = await w.sess.r.waitClosed(5000);
    return { seen: w.seen, statistics, bulkOffered: (sess.serverMariadbCapabilities & MARIADB_STMT_BULK_OPERATIONS) !== 0, afterQuit, backendThread, fetches };
  } finally {
    sess.s.destroy();
  }
}

let direct: Observed;
let gateway: Observed;

describe("commands on the wire, direct vs through mysqlgw", () => {
  beforeAll(async () => {
    direct = await run("direct");
    gateway = await run("gateway");
  }, 60_000);

  test("the direct run does what it says (spot checks)", () => {
    const line = (label: string) => direct.seen.find((l) => l.startsWith(`${label}: `)) ?? "";
    expect(direct.statistics).toBe("seq 1: true");
    expect(line("multi before")).toMatch(/^multi before: ff2804/); // 1064 (0x0428)
    expect(line("set option on")).toMatch(/^set option on: fe/); // EOF
    expect(line("multi on").split(" ").length).toBeGreaterThan(8); // two result sets
    expect(line("multi off")).toMatch(/^multi off: ff2804/);
    expect(line("stmt reset")).toMatch(/^stmt reset: 00/);
    expect(line("long data stored")).toContain(Buffer.from("long data").toString("hex"));
    expect(line("long data stored")).not.toContain(Buffer.from("discarded").toString("hex"));
    expect(direct.fetches.map((f) => f.length)).toEqual([3, 3, 2]); // 2 rows + EOF, 2 rows + EOF, 1 row + EOF
    expect(direct.seen.find((l) => l.startsWith("execute after close"))).toBe("execute after close: 1243 HY000 Unknown prepared statement handler (<id>) given to mysqld_stmt_execute");
    expect(line("bulk execute")).toMatch(/^bulk execute: 0003/); // OK, 3 affected rows
    expect(line("bulk rows")).toContain(Buffer.from("bulk-c").toString("hex"));
    expect(direct.bulkOffered).toBe(true);
    expect(direct.afterQuit).toEqual({ closed: true, pending: 0 });
  });

  test("COM_STATISTICS answers with the server's statistics string", () => {
    expect(gateway.statistics).toBe(direct.statistics);
  });

  test("every packet of every command is the same through mysqlgw", () => {
    expect(gateway.seen).toEqual(direct.seen);
  });

  test("MARIADB_CLIENT_STMT_BULK_OPERATIONS is offered through mysqlgw as direct", () => {
    expect(gateway.bulkOffered).toBe(true);
  });

  test("COM_QUIT closes the client connection without an answer", () => {
    expect(gateway.afterQuit).toEqual({ closed: true, pending: 0 });
  });

  test("COM_QUIT ends the backend session too (pass-through) or leaves it in the pool (routed)", async () => {
    if (ROUTED) {
      const rows = await fx.db.query<{ ID: number }>("SELECT ID FROM information_schema.PROCESSLIST WHERE ID = ?", [gateway.backendThread]);
      expect(rows).toHaveLength(1); // a pooled connection: kept for the next client
      return;
    }
    await waitFor(
      async () => {
        const rows = await fx.db.query<{ ID: number }>("SELECT ID FROM information_schema.PROCESSLIST WHERE ID = ?", [gateway.backendThread]);
        return rows.length === 0 ? true : null;
      },
      { timeoutMs: 5000, what: `backend thread ${gateway.backendThread} gone after COM_QUIT` },
    );
  });
});
