import fc from "fast-check";
import { classify } from "./classify";
import { digest } from "./digest";
import { clearDigestCache, digestBySkeleton } from "./digest-cache";

const viaCache = (sql: string) => {
  const b = Buffer.from(sql);
  return digestBySkeleton(classify(b).skeleton, b, 0, b.length);
};
const direct = (sql: string) => {
  const d = digest(Buffer.from(sql));
  return { text: d.text, hash: d.hash };
};

beforeEach(() => clearDigestCache());

describe("digestBySkeleton", () => {
  it("statements differing only in literal values share a skeleton, and the cached digest is theirs", () => {
    const a = classify(Buffer.from("SELECT c FROM sbtest1 WHERE id=42")).skeleton;
    const b = classify(Buffer.from("SELECT c FROM sbtest1 WHERE id=7")).skeleton;
    expect(a).toBeGreaterThanOrEqual(0);
    expect(a).toBe(b);
    expect(classify(Buffer.from("SELECT c FROM sbtest1 WHERE id='x'")).skeleton).not.toBe(a); // a string is another kind of literal
    expect(classify(Buffer.from("SELECT c FROM sbtest2 WHERE id=7")).skeleton).not.toBe(a);
    expect(classify(Buffer.from("SELECT c FROM sbtest1 WHERE  id = 7 /* c */")).skeleton).toBe(a); // spacing and comments are not tokens
    expect(viaCache("SELECT c FROM sbtest1 WHERE id=42")).toEqual(direct("SELECT c FROM sbtest1 WHERE id=42"));
    expect(viaCache("SELECT c FROM sbtest1 WHERE id=7")).toEqual(direct("SELECT c FROM sbtest1 WHERE id=99"));
  });

  it("a text not read to its end has no skeleton and is digested directly", () => {
    const b = Buffer.from("SELECT c FROM sbtest1 WHERE id=42");
    expect(digestBySkeleton(-1, b, 0, b.length)).toMatchObject(direct("SELECT c FROM sbtest1 WHERE id=42"));
  });

  it("always gives the digest digest() gives, whatever was cached before (SQL-ish text, literals varied)", () => {
    const piece = fc.oneof(
      fc.constantFrom(
        "SELECT ", "select ", "UPDATE ", "SET ", "@a", ":=", "@@x", "`t`", "/*", "*/", "/*!", "/*M!", "--", " -- ", "#", "\n",
        "(", ")", ",", ";", "FOR ", "IN ", "VALUES ", "NULL", "-", "+", "?", "WITH ", "INTO ", "a.b", " t1 ", " WHERE ", " = ",
      ),
      fc.integer().map(String),
      fc.double({ noNaN: true, noDefaultInfinity: true }).map((x) => String(x)),
      fc.string({ maxLength: 6 }).map((s) => "'" + s.replace(/\\/g, "\\\\").replace(/'/g, "''") + "'"),
      fc.nat().map((n) => "0x" + n.toString(16)),
    );
    fc.assert(
      fc.property(fc.array(piece, { maxLength: 30 }), (pieces) => {
        const sql = pieces.join("");
        expect(viaCache(sql)).toEqual(direct(sql));
      }),
      { numRuns: 5000 },
    );
  });
});
