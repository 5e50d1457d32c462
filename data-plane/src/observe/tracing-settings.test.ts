import { create } from "@bufbuild/protobuf";
import { TracingSchema } from "@mysqlgw/proto";
import { compileTracing, DEFAULT_TRACING } from "./tracing-settings";

describe("compileTracing", () => {
  it("absent Tracing or ratio: every statement; errors kept unless dropErrors; a zero threshold is no rule", () => {
    expect(compileTracing(undefined)).toEqual(DEFAULT_TRACING);
    expect(compileTracing(create(TracingSchema, {}))).toEqual({ samplingRatio: 1, slowThresholdMs: 0, keepErrors: true });
    expect(compileTracing(create(TracingSchema, { samplingRatio: 0, slowThreshold: { seconds: 0n, nanos: 500_000_000 } }))).toEqual({ samplingRatio: 0, slowThresholdMs: 500, keepErrors: true });
    expect(compileTracing(create(TracingSchema, { samplingRatio: 0.25, dropErrors: true }))).toEqual({ samplingRatio: 0.25, slowThresholdMs: 0, keepErrors: false });
    // out of range (refused by the control plane) is clamped, never thrown
    expect(compileTracing(create(TracingSchema, { samplingRatio: 7, slowThreshold: { seconds: -1n, nanos: 0 } }))).toEqual({ samplingRatio: 1, slowThresholdMs: 0, keepErrors: true });
  });
});
