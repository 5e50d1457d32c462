import { Buffer } from "node:buffer";
import { ResponseShape, ResponseTracker } from "./response-tracker";

function packet(seq: number, payload: Buffer): Buffer {
  const h = Buffer.alloc(4);
  h.writeUIntLE(payload.length, 0, 3);
  h[3] = seq & 0xff;
  return Buffer.concat([h, payload]);
}

function ok(status: number, header = 0x00, affected = 0, warnings = 0): Buffer {
  const p = Buffer.alloc(7);
  p[0] = header;
  p[1] = affected;
  p[2] = 0; // last insert id
  p.writeUInt16LE(status, 3);
  p.writeUInt16LE(warnings, 5);
  return p;
}

function eof(status: number, warnings = 0): Buffer {
  const p = Buffer.alloc(5);
  p[0] = 0xfe;
  p.writeUInt16LE(warnings, 1);
  p.writeUInt16LE(status, 3);
  return p;
}

function err(errno: number): Buffer {
  const msg = Buffer.from("#42000boom");
  const p = Buffer.alloc(3);
  p[0] = 0xff;
  p.writeUInt16LE(errno, 1);
  return Buffer.concat([p, msg]);
}

const coldef = (name: string): Buffer => Buffer.concat([Buffer.from([3]), Buffer.from("def"), Buffer.from([name.length]), Buffer.from(name), Buffer.alloc(12, 1)]);
const row = (...vals: string[]): Buffer => Buffer.concat(vals.flatMap((v) => [Buffer.from([v.length]), Buffer.from(v)]));

/** Packets with sequence ids 1, 2, … */
function stream(...payloads: Buffer[]): Buffer {
  return Buffer.concat(payloads.map((p, i) => packet(i + 1, p)));
}

function resultSet(deprecateEof: boolean, status: number, rows: Buffer[], more = 0): Buffer[] {
  const out = [Buffer.from([2]), coldef("a"), coldef("b")];
  if (!deprecateEof) out.push(eof(0));
  out.push(...rows);
  out.push(deprecateEof ? ok(status | more, 0xfe) : eof(status | more));
  return out;
}

/** Feeds `bytes` in chunks of the given sizes (cycled); returns where the tracker said the response ends. */
function feed(t: ResponseTracker, bytes: Buffer, sizes: number[]): number {
  let pos = 0;
  let k = 0;
  for (let guard = 0; guard < bytes.length + 10 && pos < bytes.length; guard++) {
    const n = Math.max(1, sizes[k++ % sizes.length]);
    const chunk = bytes.subarray(pos, Math.min(bytes.length, pos + n));
    const r = t.push(chunk);
    if (r >= 0) return pos + r;
    pos += chunk.length;
  }
  return -1;
}

const SPLITS: number[][] = [[1 << 30], [1], [2], [3], [5], [7, 1, 13], [4], [9, 2]];

function expectEnd(shape: ResponseShape, deprecateEof: boolean, bytes: Buffer, check?: (t: ResponseTracker) => void): void {
  for (const sizes of SPLITS) {
    const t = new ResponseTracker(deprecateEof);
    expect(t.begin(shape)).toBe(true);
    // trailing bytes after the response must not be consumed
    const withTail = Buffer.concat([bytes, Buffer.from([9, 9, 9])]);
    expect({ sizes, end: feed(t, withTail, sizes) }).toEqual({ sizes, end: bytes.length });
    expect(t.busy).toBe(false);
    check?.(t);
  }
}

describe("ResponseTracker", () => {
  test("an OK ends the response, with its status flags and warnings", () => {
    expectEnd(ResponseShape.ResultSets, false, stream(ok(0x0003, 0, 1, 2)), (t) => {
      expect(t.statusFlags).toBe(0x0003);
      expect(t.warnings).toBe(2);
      expect(t.error).toBe(false);
    });
  });

  test("an ERR ends the response", () => {
    expectEnd(ResponseShape.ResultSets, true, stream(err(1146)), (t) => {
      expect(t.error).toBe(true);
      expect(t.errno).toBe(1146);
    });
  });

  test.each([false, true])("a result set ends at its final EOF/OK (deprecateEof %s)", (dep) => {
    expectEnd(ResponseShape.ResultSets, dep, stream(...resultSet(dep, 0x0001, [row("1", "x"), row("2", "y"), row("", "")])), (t) => {
      expect(t.statusFlags).toBe(0x0001);
      expect(t.results).toBe(1);
      expect(t.rows).toBe(3);
    });
  });

  test.each([false, true])("multiple results: OK and result sets chained by SERVER_MORE_RESULTS_EXISTS (deprecateEof %s)", (dep) => {
    const more = 0x0008;
    const payloads = [ok(0x0002 | more), ...resultSet(dep, 0x0002, [row("1", "2")], more), ...resultSet(dep, 0x0002, []), ];
    // the last result set ends the response only without MORE_RESULTS: add a final OK after a MORE one
    payloads.splice(payloads.length - 1, 1, dep ? ok(0x0002 | more, 0xfe) : eof(0x0002 | more), ok(0x0022));
    expectEnd(ResponseShape.ResultSets, dep, stream(...payloads), (t) => {
      expect(t.statusFlags).toBe(0x0022);
      expect(t.results).toBe(4);
    });
  });

  test("an ERR after rows ends the response", () => {
    expectEnd(ResponseShape.ResultSets, false, stream(Buffer.from([2]), coldef("a"), coldef("b"), eof(0), row("1", "2"), err(1317)), (t) => {
      expect(t.errno).toBe(1317);
    });
  });

  test("rows starting with 0xFE are not taken for EOF (long rows, and 16 MiB packets with continuations)", () => {
    // without DEPRECATE_EOF: a row of ≥ 9 bytes starting 0xFE (an 8-byte lenenc length) is a row
    const longRow = Buffer.concat([Buffer.from([0xfe]), Buffer.alloc(8, 0), Buffer.from([1, 0x41])]);
    expectEnd(ResponseShape.ResultSets, false, stream(Buffer.from([1]), coldef("a"), eof(0), longRow, eof(0x0002)), (t) => expect(t.statusFlags).toBe(2));
    // with DEPRECATE_EOF: a 16 MiB row whose first byte is 0xFE, continued by a short packet that also starts 0xFE
    const big = Buffer.alloc(0xffffff, 0x41);
    big[0] = 0xfe;
    const cont = Buffer.from([0xfe, 1, 2]);
    const bytes = Buffer.concat([packet(1, Buffer.from([1])), packet(2, coldef("a")), packet(3, big), packet(4, cont), packet(5, ok(0x0002, 0xfe))]);
    const t = new ResponseTracker(true);
    t.begin(ResponseShape.ResultSets);
    expect(feed(t, bytes, [65536, 1000, 3])).toBe(bytes.length);
    expect(t.statusFlags).toBe(2);
  });

  test.each([false, true])("COM_STMT_PREPARE: OK_prepare, parameter and column definitions (deprecateEof %s)", (dep) => {
    const prep = Buffer.alloc(12);
    prep[0] = 0;
    prep.writeUInt32LE(7, 1);
    prep.writeUInt16LE(2, 5); // columns
    prep.writeUInt16LE(1, 7); // params
    const payloads = [prep, coldef("?"), ...(dep ? [] : [eof(0)]), coldef("a"), coldef("b"), ...(dep ? [] : [eof(0)])];
    expectEnd(ResponseShape.Prepare, dep, stream(...payloads), (t) => {
      expect({ id: t.stmtId, cols: t.numColumns, params: t.numParams }).toEqual({ id: 7, cols: 2, params: 1 });
    });
    const none = Buffer.alloc(12);
    none.writeUInt32LE(8, 1);
    expectEnd(ResponseShape.Prepare, dep, stream(none), (t) => expect(t.stmtId).toBe(8));
    expectEnd(ResponseShape.Prepare, dep, stream(err(1064)), (t) => expect(t.errno).toBe(1064));
  });

  test.each([false, true])("a cursor ends after the metadata with SERVER_STATUS_CURSOR_EXISTS (deprecateEof %s)", (dep) => {
    const payloads = [Buffer.from([1]), coldef("a"), dep ? ok(0x0042, 0xfe) : eof(0x0042)];
    expectEnd(ResponseShape.ResultSets, dep, stream(...payloads), (t) => expect(t.statusFlags & 0x40).toBe(0x40));
    // COM_STMT_FETCH: rows then EOF
    expectEnd(ResponseShape.Rows, dep, stream(Buffer.from([0, 0, 1]), Buffer.from([0, 0, 2]), dep ? ok(0x00c2, 0xfe) : eof(0x00c2)), (t) => expect(t.statusFlags).toBe(0xc2));
  });

  test("LOCAL INFILE: the request pauses the response; the OK after the upload ends it", () => {
    const t = new ResponseTracker(false);
    t.begin(ResponseShape.ResultSets);
    const req = stream(Buffer.concat([Buffer.from([0xfb]), Buffer.from("/tmp/x")]));
    expect(t.push(req)).toBe(req.length);
    expect(t.localInfile).toBe(true);
    t.infileSent();
    const done = packet(3, ok(0x0002, 0, 5));
    expect(t.push(done)).toBe(done.length);
    expect(t.busy).toBe(false);
    expect(t.localInfile).toBe(false);
  });

  test("COM_FIELD_LIST, single-packet responses and commands without a response", () => {
    expectEnd(ResponseShape.FieldList, false, stream(coldef("a"), coldef("b"), eof(0x0002)), (t) => expect(t.statusFlags).toBe(2));
    expectEnd(ResponseShape.FieldList, true, stream(coldef("a"), ok(0x0002, 0xfe)), (t) => expect(t.statusFlags).toBe(2));
    expectEnd(ResponseShape.Single, false, stream(Buffer.from("Uptime: 5  Threads: 1")));
    expectEnd(ResponseShape.Single, false, stream(ok(0x0003)), (t) => expect(t.statusFlags).toBe(3));
    const t = new ResponseTracker(false);
    expect(t.begin(ResponseShape.None)).toBe(false);
    expect(t.busy).toBe(false);
  });

  test("random garbage never throws and the loop is bounded", () => {
    let seed = 42;
    const rnd = (): number => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff;
    for (let i = 0; i < 300; i++) {
      const t = new ResponseTracker(rnd() < 0.5);
      t.begin(1 + Math.floor(rnd() * 5));
      const b = Buffer.alloc(1 + Math.floor(rnd() * 200));
      for (let j = 0; j < b.length; j++) b[j] = Math.floor(rnd() * 256);
      const r = t.push(b);
      expect(r === -1 || (r >= 0 && r <= b.length)).toBe(true);
    }
  });
});
