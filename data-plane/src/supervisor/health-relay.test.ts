import pino from "pino";
import { create, toJsonString } from "@bufbuild/protobuf";
import { BackendHealth_Role, BackendHealth_State, BackendHealthSchema } from "@mysqlgw/proto";
import { decodeHealth, readHealthMessage } from "./health-relay";

describe("health relay messages", () => {
  it("reads mgw:health with a value or null, and nothing else", () => {
    expect(readHealthMessage({ t: "mgw:health", cluster: "c", backend: "b", health: "{}" })).toEqual({ t: "mgw:health", cluster: "c", backend: "b", health: "{}" });
    expect(readHealthMessage({ t: "mgw:health", cluster: "c", backend: "b", health: null })).toEqual({ t: "mgw:health", cluster: "c", backend: "b", health: null });
    expect(readHealthMessage({ t: "mgw:health", cluster: "c", backend: "b" })).toBeNull();
    expect(readHealthMessage({ t: "mgw:health", cluster: 1, backend: "b", health: null })).toBeNull();
    expect(readHealthMessage({ t: "mgw:apply", seq: 1, config: "" })).toBeNull();
    expect(readHealthMessage(null)).toBeNull();
    expect(readHealthMessage("mgw:health")).toBeNull();
  });

  it("decodes the monitor's proto3 JSON; junk is ignored with a warning", () => {
    const json = toJsonString(BackendHealthSchema, create(BackendHealthSchema, { cluster: "c", backend: "b", state: BackendHealth_State.UP, role: BackendHealth_Role.PRIMARY, gtidCurrentPos: "0-1-5" }));
    const lines: string[] = [];
    const log = pino({ level: "warn" }, { write: (l: string) => lines.push(l) });
    expect(decodeHealth(json, log, "c/b")).toMatchObject({ state: BackendHealth_State.UP, role: BackendHealth_Role.PRIMARY, gtidCurrentPos: "0-1-5" });
    expect(decodeHealth(`{"state":"STATE_UP","fieldOfTomorrow":1}`, log, "c/b")).toMatchObject({ state: BackendHealth_State.UP });
    expect(lines).toHaveLength(0);
    expect(decodeHealth("{not json", log, "c/b")).toBeUndefined();
    expect(decodeHealth(`{"state":42.5}`, log, "c/b")).toBeUndefined();
    expect(lines).toHaveLength(2);
  });
});
