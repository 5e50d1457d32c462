import { Buffer } from "node:buffer";
import { MalformedPacketError } from "../../errors";
import { Capability } from "../constants";
import { buildChangeUser, parseChangeUser, type ChangeUser } from "./change-user";

const CAPS = (Capability.Protocol41 | Capability.SecureConnection | Capability.PluginAuth | Capability.ConnectAttrs) >>> 0;

const sample: ChangeUser = {
  username: "shop2",
  authResponse: Buffer.from("0123456789abcdefghij"),
  database: "shop",
  characterSet: 224,
  authPluginName: "mysql_native_password",
  connectAttributes: new Map([["_client_name", "test"]]),
};

describe("COM_CHANGE_USER", () => {
  it("round-trips with every optional field", () => {
    const wire = buildChangeUser(sample, CAPS);
    expect(wire[3]).toBe(0);
    expect(parseChangeUser(wire.subarray(4), CAPS)).toEqual(sample);
  });

  it("reads the short form of old clients (no collation, plugin or attributes)", () => {
    const p = Buffer.concat([Buffer.from([0x11]), Buffer.from("u\0"), Buffer.from([0]), Buffer.from("db\0")]);
    expect(parseChangeUser(p, CAPS)).toMatchObject({ username: "u", authResponse: Buffer.alloc(0), database: "db", characterSet: null, authPluginName: null });
  });

  it("writes only what the server's capabilities allow", () => {
    const wire = buildChangeUser(sample, Capability.Protocol41 | Capability.SecureConnection);
    expect(parseChangeUser(wire.subarray(4), Capability.Protocol41 | Capability.SecureConnection)).toMatchObject({
      authPluginName: null,
      connectAttributes: new Map(),
      characterSet: 224,
    });
  });

  it("rejects every truncation inside the mandatory fields with MalformedPacketError", () => {
    const p = buildChangeUser(sample, CAPS).subarray(4);
    for (let n = 0; n < 1 + 6 + 1 + 20; n++) {
      expect(() => parseChangeUser(p.subarray(0, n), CAPS)).toThrow(MalformedPacketError);
    }
  });
});
