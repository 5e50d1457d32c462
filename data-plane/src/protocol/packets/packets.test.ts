import { Buffer } from "node:buffer";
import { MalformedPacketError, UnsupportedProtocolError } from "../../errors";
import { Capability } from "../constants";
import { buildHandshakeV10, parseHandshakeV10 } from "./handshake-v10";
import { buildHandshakeResponse41, parseHandshakeResponse41 } from "./handshake-response41";
import { buildAuthSwitchRequest, parseAuthSwitchRequest } from "./auth-switch-request";
import { buildErr, parseErr } from "./err";
import { buildOk, parseOk } from "./ok";

// Captured from real clients answering a greeting with nonce "0123456789abcdefghij",
// capabilities 0x01bfa7cf, user "shop", password "secret", database "t".
const MYSQL2_3_24_RESPONSE =
  "84000001cff3ba0800000000e0000000000000000000000000000000000000000000000073686f700014f5cac3f3b3df2133feb57db682c71e6ed433a98874006d7973716c5f6e61746976655f70617373776f726400310c5f636c69656e745f6e616d650c4e6f64652d4d7953514c2d320f5f636c69656e745f76657273696f6e06332e32342e36";
const LIBMARIADB_3_3_RESPONSE =
  "d20000018da2bf000000100021000000000000000000000000000000000000000000000073686f700014f5cac3f3b3df2133feb57db682c71e6ed433a98874006d7973716c5f6e61746976655f70617373776f7264007f035f6f73054c696e75780c5f636c69656e745f6e616d650a6c69626d617269616462045f7069640531383630330f5f636c69656e745f76657273696f6e06332e332e3230095f706c6174666f726d067838365f36340c70726f6772616d5f6e616d65056d7973716c0c5f7365727665725f686f7374093132372e302e302e31";
// Greeting of MariaDB 10.11.19 (Debian 12).
const MARIADB_10_11_GREETING =
  "640000000a352e352e352d31302e31312e31392d4d6172696144422d302b646562313275310092000000672622754a50375e00fef7080200ff81150000000000001d0000005469366f4d737c36364b554c006d7973716c5f6e61746976655f70617373776f726400";
const TOKEN = "f5cac3f3b3df2133feb57db682c71e6ed433a988";
const SERVER_CAPS = 0x01bfa7cf;

function payloadOf(hex: string): Buffer {
  const b = Buffer.from(hex, "hex");
  expect(b.readUIntLE(0, 3)).toBe(b.length - 4);
  return b.subarray(4);
}

describe("HandshakeResponse41", () => {
  it("parses mysql2 3.x bytes", () => {
    const r = parseHandshakeResponse41(payloadOf(MYSQL2_3_24_RESPONSE), SERVER_CAPS);
    expect(r.username).toBe("shop");
    expect(r.authResponse.toString("hex")).toBe(TOKEN);
    expect(r.database).toBe("t");
    expect(r.authPluginName).toBe("mysql_native_password");
    expect(r.characterSet).toBe(224);
    expect(r.connectAttributes.get("_client_name")).toBe("Node-MySQL-2");
    expect(r.capabilities & Capability.DeprecateEof).toBe(0);
  });

  it("parses libmariadb 3.3 (mariadb CLI) bytes with the lenenc auth response", () => {
    const r = parseHandshakeResponse41(payloadOf(LIBMARIADB_3_3_RESPONSE), SERVER_CAPS);
    expect(r.capabilities & Capability.PluginAuthLenencClientData).toBeTruthy();
    expect(r.username).toBe("shop");
    expect(r.authResponse.toString("hex")).toBe(TOKEN);
    expect(r.database).toBe("t");
    expect(r.authPluginName).toBe("mysql_native_password");
    expect(r.maxPacketSize).toBe(1 << 20);
    expect(r.characterSet).toBe(33);
    expect(r.connectAttributes.get("program_name")).toBe("mysql");
    expect(r.connectAttributes.get("_client_version")).toBe("3.3.20");
  });

  it("skips the schema when the server did not announce CONNECT_WITH_DB (libmariadb leaves it out)", () => {
    const p = Buffer.from(payloadOf(LIBMARIADB_3_3_RESPONSE));
    // remove "t\0" as libmariadb does when the greeting lacks CONNECT_WITH_DB
    const at = p.indexOf(Buffer.from("t\0mysql_native", "latin1"));
    const without = Buffer.concat([p.subarray(0, at), p.subarray(at + 2)]);
    const r = parseHandshakeResponse41(without, SERVER_CAPS & ~Capability.ConnectWithDb);
    expect(r.database).toBeNull();
    expect(r.authPluginName).toBe("mysql_native_password");
    expect(r.connectAttributes.get("program_name")).toBe("mysql");
  });

  it("rejects every truncation of a real response with MalformedPacketError", () => {
    const p = payloadOf(MYSQL2_3_24_RESPONSE);
    // cut inside fixed header, username, token: always malformed
    const nameEnd = p.indexOf(0, 32);
    for (let n = 0; n < nameEnd + 21; n++) {
      expect(() => parseHandshakeResponse41(p.subarray(0, n), SERVER_CAPS)).toThrow(MalformedPacketError);
    }
    // cut inside the connect attributes
    expect(() => parseHandshakeResponse41(p.subarray(0, p.length - 3), SERVER_CAPS)).toThrow(MalformedPacketError);
  });

  it("rejects an SSLRequest and pre-4.1 clients", () => {
    const ssl = Buffer.alloc(32);
    ssl.writeUInt32LE(Capability.Protocol41 | Capability.Ssl, 0);
    expect(() => parseHandshakeResponse41(ssl)).toThrow(UnsupportedProtocolError);
    expect(() => parseHandshakeResponse41(Buffer.from("8da00000", "hex"))).toThrow(UnsupportedProtocolError);
  });

  it("builds what it parses (client side)", () => {
    for (const caps of [
      Capability.Protocol41 | Capability.SecureConnection | Capability.PluginAuth | Capability.ConnectAttrs | Capability.ConnectWithDb,
      Capability.Protocol41 | Capability.SecureConnection | Capability.PluginAuth | Capability.PluginAuthLenencClientData,
    ]) {
      const msg = {
        capabilities: caps >>> 0,
        mariadbCapabilities: 0,
        maxPacketSize: 1 << 24,
        characterSet: 45,
        username: "app",
        authResponse: Buffer.alloc(20, 9),
        database: caps & Capability.ConnectWithDb ? "orders" : null,
        authPluginName: "mysql_native_password",
        connectAttributes: new Map(caps & Capability.ConnectAttrs ? [["_mysqlgw_client_addr", "192.0.2.1:5000"], ["k", "v".repeat(300)]] : []),
      };
      const wire = buildHandshakeResponse41(msg, 1);
      expect(wire[3]).toBe(1);
      expect(parseHandshakeResponse41(wire.subarray(4))).toEqual(msg);
    }
  });
});

describe("HandshakeV10", () => {
  it("parses a real MariaDB greeting", () => {
    const g = parseHandshakeV10(payloadOf(MARIADB_10_11_GREETING));
    expect(g.serverVersion).toBe("5.5.5-10.11.19-MariaDB-0+deb12u1");
    expect(g.authPluginData.length).toBe(20);
    expect(g.authPluginName).toBe("mysql_native_password");
    expect(g.capabilities & Capability.LongPassword).toBe(0); // MariaDB: CLIENT_MYSQL clear
    expect(g.capabilities & Capability.DeprecateEof).toBeTruthy();
    expect(g.mariadbCapabilities).toBe(0x1d);
  });

  it("roundtrips our greeting", () => {
    const h = {
      protocolVersion: 10,
      serverVersion: "5.5.5-10.11.6-MariaDB-mysqlgw",
      connectionId: 0x01000002,
      authPluginData: Buffer.from("0123456789abcdefghij"),
      capabilities: SERVER_CAPS,
      mariadbCapabilities: 0,
      characterSet: 45,
      statusFlags: 2,
      authPluginName: "mysql_native_password",
    };
    const wire = buildHandshakeV10(h);
    expect(wire[3]).toBe(0);
    expect(parseHandshakeV10(wire.subarray(4))).toEqual(h);
  });
});

describe("AuthSwitchRequest, OK, ERR", () => {
  it("roundtrip", () => {
    const nonce = Buffer.from("0123456789abcdefghij");
    const sw = buildAuthSwitchRequest("mysql_native_password", nonce, 2);
    expect(sw[3]).toBe(2);
    expect(parseAuthSwitchRequest(sw.subarray(4))).toEqual({ pluginName: "mysql_native_password", pluginData: nonce });

    const ok = buildOk({ affectedRows: 300, lastInsertId: 2 ** 32 + 1, statusFlags: 3, warnings: 1, info: "hi" }, Capability.SessionTrack, 4);
    expect(parseOk(ok.subarray(4), Capability.SessionTrack)).toEqual({ affectedRows: 300, lastInsertId: 2 ** 32 + 1, statusFlags: 3, warnings: 1, info: "hi" });
    expect(buildOk({}, 0, 2).toString("hex")).toBe("0700000200000002000000");

    const err = buildErr({ errno: 1045, sqlState: "28000", message: "Access denied for user 'u'@'h' (using password: YES)" }, 2);
    expect(err.subarray(4, 13).toString("latin1")).toBe("\xff\x15\x04#28000");
    expect(parseErr(err.subarray(4))).toEqual({ errno: 1045, sqlState: "28000", message: "Access denied for user 'u'@'h' (using password: YES)" });
    expect(parseErr(Buffer.from("ff1504", "hex"))).toEqual({ errno: 1045, sqlState: "HY000", message: "" });
  });
});
