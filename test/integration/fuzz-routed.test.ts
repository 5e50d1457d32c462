// Hostile input (issue 3, point 8) on the routed engine: a SPLIT listener in a
// real data plane in front of a real MariaDB parses every command itself
// (statement ids, EXECUTE parameters, bulk rows, COM_CHANGE_USER, cursors…), so
// logged-in raw clients send it random and mutated command packets
// (property-based, fast-check). Each client gets an answer or a close and
// nobody else notices: after each case a COM_PING on the same connection is
// answered or the connection is closed within 5 s; after each batch a mysql2
// client works; the worker never dies and never logs an unexpected exception.
// Bounded in CI; MYSQLGW_FUZZ_RUNS=N for longer runs.
import fc from "fast-check";
import { connect } from "../helpers";
import { startGatewayFixture, type GatewayFixture } from "../helpers/gateway-fixture";
import { packet, rawLogin } from "../helpers/raw-mysql";

const RUNS = Math.max(20, Math.ceil(Number(process.env.MYSQLGW_FUZZ_RUNS ?? 300) / 3));

let fx: GatewayFixture;

beforeAll(async () => {
  fx = await startGatewayFixture({ databases: ["fz"], listener: { role: "LISTENER_ROLE_SPLIT" } });
  await fx.db.query("CREATE TABLE fz.t (id INT PRIMARY KEY, v VARCHAR(20))");
  await fx.db.query("INSERT INTO fz.t VALUES (1, 'a'), (2, 'b'), (3, 'c')");
}, 120_000);

/**
 * Commands the routed engine parses. COM_QUERY gets SQL-looking text only (no
 * random statement reaches the server as SQL); COM_SHUTDOWN and the replication
 * commands are left out (refused, see commands.test.ts).
 */
const COMMANDS = [0x01, 0x02, 0x04, 0x09, 0x0c, 0x0e, 0x11, 0x16, 0x17, 0x18, 0x19, 0x1a, 0x1b, 0x1c, 0x1f, 0xfa] as const;

const u32 = (n: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n >>> 0, 0);
  return b;
};

/** A command packet: a known command with random bytes, or one built around a real statement id with a random tail. */
const commandPayload: fc.Arbitrary<{ prepare: boolean; payload: Buffer }> = fc.oneof(
  fc.record({
    prepare: fc.constant(false),
    payload: fc.tuple(fc.constantFrom(...COMMANDS), fc.uint8Array({ maxLength: 80 })).map(([c, rest]) => Buffer.concat([Buffer.from([c]), Buffer.from(rest)])),
  }),
  // statement id 1 is prepared first (SELECT … WHERE id > ?), so the random part reaches the parameter parsing
  fc.record({
    prepare: fc.constant(true),
    payload: fc
      .tuple(fc.constantFrom(0x17, 0x18, 0x1a, 0x1c, 0xfa), fc.constantFrom(1, 0xffffffff, 2), fc.uint8Array({ maxLength: 64 }))
      .map(([c, id, rest]) => Buffer.concat([Buffer.from([c]), u32(id), Buffer.from(rest)])),
  }),
  fc.record({
    prepare: fc.constant(false),
    payload: fc
      .tuple(fc.constantFrom("SELECT ", "SET ", "KILL ", "KILL QUERY ", "USE ", "BEGIN; ", "SELECT * FROM fz.t WHERE id = "), fc.string({ maxLength: 30 }))
      .map(([head, tail]) => Buffer.concat([Buffer.from([0x03]), Buffer.from(head + tail)])),
  }),
);

/** Logs in, prepares if asked, sends the payload, then a COM_PING: resolves with how the connection answered. */
async function oneCase(c: { prepare: boolean; payload: Buffer }): Promise<"answered" | "closed" | "hung"> {
  const ep = fx.gateway;
  const sess = await rawLogin({ port: ep.port, user: ep.user, password: ep.password, database: "fz" });
  try {
    if (c.prepare) {
      sess.s.write(packet(0, Buffer.concat([Buffer.from([0x16]), Buffer.from("SELECT id, v FROM t WHERE id > ?")])));
      for (let i = 0; i < 6; i++) await sess.r.next(); // PREPARE_OK, 1 param + EOF, 2 columns + EOF
    }
    sess.s.write(packet(0, c.payload));
    sess.s.write(packet(0, Buffer.from([0x0e])));
    try {
      await sess.r.next(5000);
      return "answered";
    } catch {
      return sess.r.closed ? "closed" : "hung";
    }
  } finally {
    sess.s.destroy();
  }
}

test("random and mutated commands on a routed session: an answer or a close for that client alone", async () => {
  const since = fx.dp.mark();
  const outcomes = { answered: 0, closed: 0, hung: 0 };
  let batch = 0;
  await fc.assert(
    fc.asyncProperty(commandPayload, async (c) => {
      const outcome = await oneCase(c);
      outcomes[outcome]++;
      if (outcome === "hung") throw new Error(`no answer and no close within 5 s after ${c.payload.toString("hex")}`);
      if (++batch % 10 === 0) {
        const conn = await connect({ port: fx.gateway.port, user: fx.gateway.user, password: fx.gateway.password });
        try {
          const [[row]] = (await conn.query("SELECT COUNT(*) AS n FROM fz.t")) as unknown as [[{ n: string }]];
          if (Number(row.n) !== 3) throw new Error(`fz.t has ${row.n} rows`);
        } finally {
          await conn.end();
        }
      }
    }),
    { numRuns: RUNS, endOnFailure: true },
  );
  process.stdout.write(`routed fuzz: ${RUNS} cases, ${outcomes.answered} answered, ${outcomes.closed} closed\n`);
  // error-level records: "routed command failed" with an unexpected exception, a worker that died, …
  const bad = fx.dp.logs.slice(since).filter((r) => Number(r.level) >= 50 || /exited unexpectedly/.test(String(r.msg)));
  expect(bad.map((r) => `${String(r.msg)} ${JSON.stringify(r.err ?? "")}`)).toEqual([]);
}, 300_000);
