// COM_FIELD_LIST through the gateway. No installed client sends it outside the
// interactive mariadb CLI's table-name completion, so this test speaks the
// protocol itself (test/helpers/raw-mysql.ts, a minimal mysql_native_password
// client written for the tests, not the gateway's code) and compares the
// packets direct vs through mysqlgw. field-list-split.test.ts runs it again
// through a SPLIT listener.
import { isEof, isErr, packet, rawLogin } from "../helpers/raw-mysql";
import { startGatewayFixture, type Endpoint, type GatewayFixture } from "../helpers/gateway-fixture";
import "../helpers";

let fx: GatewayFixture;

beforeAll(async () => {
  fx = await startGatewayFixture({ databases: ["fl"] });
  await fx.db.query("CREATE TABLE fl.t (id INT PRIMARY KEY AUTO_INCREMENT, name VARCHAR(40) NOT NULL DEFAULT 'x', price DECIMAL(10,2), at DATETIME(6))");
}, 90_000);

/** Sends COM_FIELD_LIST and returns every packet of the answer up to its EOF or ERR, as hex. */
async function fieldList(ep: Endpoint, table: string): Promise<string[]> {
  const { s, r } = await rawLogin({ port: ep.port, user: ep.user, password: ep.password, database: "fl" });
  try {
    s.write(packet(0, Buffer.concat([Buffer.from([0x04]), Buffer.from(table + "\0")])));
    const out: string[] = [];
    for (let i = 0; i < 100; i++) {
      const p = await r.next();
      out.push(`${p.seq}:${p.payload.toString("hex")}`);
      if (isErr(p.payload) || isEof(p.payload)) return out;
    }
    throw new Error("more than 100 packets in a COM_FIELD_LIST answer");
  } finally {
    s.destroy();
  }
}

test("COM_FIELD_LIST returns the same column definitions and EOF through the gateway as direct", async () => {
  const direct = await fieldList(fx.direct, "t");
  const through = await fieldList(fx.gateway, "t");
  expect(direct).toHaveLength(5); // four column definitions, then EOF
  expect(through).toEqual(direct);
  expect(Buffer.from(direct[1].split(":")[1], "hex").includes(Buffer.from("name"))).toBe(true);
});

test("COM_FIELD_LIST on an unknown table gets the server's 1146 through the gateway as direct", async () => {
  const direct = await fieldList(fx.direct, "nope");
  const through = await fieldList(fx.gateway, "nope");
  expect(direct).toHaveLength(1);
  const err = Buffer.from(direct[0].split(":")[1], "hex");
  expect(err.readUInt16LE(1)).toBe(1146);
  expect(through).toEqual(direct);
});
