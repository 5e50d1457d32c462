import { ResponseShape, ResponseTracker } from "../response-tracker";
import { buildTextResultSet } from "./result-set";

describe("buildTextResultSet", () => {
  test.each([false, true])("is one complete response with the given status (deprecateEof %s)", (dep) => {
    const bytes = buildTextResultSet(["a", "b"], [["1", null], ["xyz", "é"]], dep, 0x0003, 1, true);
    const t = new ResponseTracker(dep);
    t.begin(ResponseShape.ResultSets);
    expect(t.push(bytes)).toBe(bytes.length);
    expect({ status: t.statusFlags, error: t.error, busy: t.busy }).toEqual({ status: 3, error: false, busy: false });
    // sequence ids run from 1 without a gap
    const seqs: number[] = [];
    for (let p = 0; p < bytes.length; ) {
      seqs.push(bytes[p + 3]);
      p += 4 + (bytes[p] | (bytes[p + 1] << 8) | (bytes[p + 2] << 16));
    }
    expect(seqs).toEqual(Array.from({ length: seqs.length }, (_, i) => i + 1));
    expect(seqs.length).toBe(dep ? 6 : 7);
  });
});
