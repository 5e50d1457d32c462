import { fromJsonString } from "@bufbuild/protobuf";
import { DataPlaneSchema } from "@mysqlgw/proto";
import { createRegistryEntry, readBuildVersion } from "./registry-entry";

describe("registry entry", () => {
  it("is the proto3 JSON of DataPlane and tracks what is served", () => {
    let t = Date.parse("2025-01-02T03:04:05.000Z");
    const e = createRegistryEntry({ id: "h-1", hostname: "h", pid: 1, workers: 2, buildVersion: "9.9.9", now: () => new Date(t) });
    expect(JSON.parse(e.toJson())).toEqual({
      id: "h-1",
      hostname: "h",
      pid: 1,
      workers: 2,
      startedAt: "2025-01-02T03:04:05Z",
      updatedAt: "2025-01-02T03:04:05Z",
      buildVersion: "9.9.9",
    });
    t += 1500;
    e.setServing(18446744073709551615n, ["a", "b"], "disk");
    const back = fromJsonString(DataPlaneSchema, e.toJson());
    expect(back.configVersion).toBe(18446744073709551615n);
    expect(back.listeners).toEqual(["a", "b"]);
    expect(back.configSource).toBe("disk");
    expect(JSON.parse(e.toJson()).updatedAt).toBe("2025-01-02T03:04:06.500Z");
  });

  it("reads the data-plane package version", () => {
    expect(readBuildVersion()).toMatch(/^\d+\.\d+\.\d+/);
  });
});
