import fc from "fast-check";
import { classify } from "./classify";
import { digest, digestHash } from "./digest";

function fnv1a64(bytes: Uint8Array): string {
  let h = 0xcbf29ce484222325n;
  for (const b of bytes) h = ((h ^ BigInt(b)) * 0x100000001b3n) & 0xffffffffffffffffn;
  return h.toString(16).padStart(16, "0");
}

const d = (sql: string) => digest(Buffer.from(sql, "utf8"));

describe("digest", () => {
  it.each([
    ["SELECT c FROM sbtest1 WHERE id=5023", "SELECT c FROM sbtest1 WHERE id = ?"],
    ["SELECT c FROM sbtest1 WHERE id BETWEEN 100 AND 199", "SELECT c FROM sbtest1 WHERE id BETWEEN ? AND ?"],
    ["SELECT SUM(k) FROM sbtest1 WHERE id BETWEEN 100 AND 199", "SELECT SUM (k) FROM sbtest1 WHERE id BETWEEN ? AND ?"],
    ["SELECT DISTINCT c FROM sbtest1 WHERE id BETWEEN 100 AND 199 ORDER BY c", "SELECT DISTINCT c FROM sbtest1 WHERE id BETWEEN ? AND ? ORDER BY c"],
    ["UPDATE sbtest1 SET k=k+1 WHERE id=42", "UPDATE sbtest1 SET k = k + ? WHERE id = ?"],
    ["UPDATE sbtest1 SET c='x-y' WHERE id=42", "UPDATE sbtest1 SET c = ? WHERE id = ?"],
    ["DELETE FROM sbtest1 WHERE id=7", "DELETE FROM sbtest1 WHERE id = ?"],
    ["INSERT INTO sbtest1 (id, k, c, pad) VALUES (7, 5, 'a', 'b')", "INSERT INTO sbtest1 (id, k, c, pad) VALUES (?, ?, ?, ?)"],
    ["insert into t values (1,'a'),(2,'b') , (3, 'c') on duplicate key update b=values(b)", "INSERT INTO t VALUES (?, ?) ON DUPLICATE KEY UPDATE b = VALUES (b)"],
    ["SELECT * FROM t WHERE a IN (1, -2, 'x', NULL) AND b NOT IN (?,?)", "SELECT * FROM t WHERE a IN (...) AND b NOT IN (...)"],
    ["SELECT * FROM t WHERE a IN (SELECT b FROM u WHERE c = 1)", "SELECT * FROM t WHERE a IN (SELECT b FROM u WHERE c = ?)"],
    ["SELECT a-1, a - -1, -1, f(-2) FROM t", "SELECT a - ?, a - ?, ?, f (?) FROM t"],
    ["SELECT NULL, TRUE, x IS NULL FROM t", "SELECT NULL, TRUE, x IS NULL FROM t"],
    ["SELECT X'4D', 0x4d, b'101', .5, 1e10, N'x' FROM `my t`", "SELECT ?, ?, ?, ?, ?, ? FROM `my t`"],
    ["/* mysqlgw:primary */ SELECT 1 /* traceparent='00-a-b-01' */ -- x\n# y\n", "SELECT ?"],
    ["SELECT 1 /*!50000 FOR UPDATE */", "SELECT ? FOR UPDATE"],
    ["SELECT a.b, t.`c` FROM db.t", "SELECT a.b, t.`c` FROM db.t"],
    ["SELECT @a := 1, @@session.sql_mode", "SELECT @a := ?, @@session.sql_mode"],
    ["SELECT 1;", "SELECT ?"],
    ["SELECT .5, t.a, `t`.`b` FROM t", "SELECT ?, t.a, `t`.`b` FROM t"],
    ["SELECT * FROM t WHERE MATCH (a) AGAINST ('x' IN BOOLEAN MODE)", "SELECT * FROM t WHERE MATCH (a) AGAINST (? IN BOOLEAN MODE)"],
    ["SELECT 1; SELECT 'x'", "SELECT ?; SELECT ?"],
    ["SELECT 'unterminated", "SELECT ?"],
    ["", ""],
  ])("%s", (sql, text) => {
    const r = d(sql);
    expect(r.text).toBe(text);
    expect(r.hash).toBe(fnv1a64(Buffer.from(text, "utf8")));
    expect(digestHash(Buffer.from(sql, "utf8"))).toBe(r.hash);
    expect(r.truncated).toBe(false);
  });

  it("ignores spacing, keyword case, comments and literal values", () => {
    const a = d("SELECT c FROM sbtest1 WHERE id=5023");
    for (const other of ["select c from sbtest1 where id = 1", "  SELECT\tc\nFROM sbtest1 /* x */ WHERE id=-7 ;", "SeLeCt c FROM sbtest1 WHERE id='abc'"]) {
      expect(d(other)).toEqual(a);
    }
    expect(d("SELECT c FROM sbtest2 WHERE id=1").hash).not.toBe(a.hash);
  });

  it("truncates long text but hashes all of it", () => {
    const cols = Array.from({ length: 2000 }, (_, i) => `c${i}`).join(", ");
    const full = digest(Buffer.from(`SELECT ${cols} FROM t`), 0, undefined, { maxTextBytes: 1 << 20 });
    const cut = digest(Buffer.from(`SELECT ${cols} FROM t`));
    expect(cut.truncated).toBe(true);
    expect(cut.text.length).toBe(4096);
    expect(full.text.startsWith(cut.text)).toBe(true);
    expect(cut.hash).toBe(full.hash);
  });

  it("digests a view inside a larger buffer", () => {
    const buf = Buffer.from("\x03SELECT 1xyz");
    expect(digest(buf, 1, 9).text).toBe("SELECT ?");
  });
});

describe("properties", () => {
  it("classify and digest never throw on arbitrary bytes and stay in bounds", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), fc.nat(), fc.nat(), (bytes, a, b) => {
        const start = bytes.length === 0 ? 0 : a % bytes.length;
        const end = start + (bytes.length - start === 0 ? 0 : b % (bytes.length - start + 1));
        const r = classify(bytes, start, end);
        if (r.traceparentStart >= 0) {
          expect(r.traceparentStart).toBeGreaterThanOrEqual(start);
          expect(r.traceparentEnd).toBeLessThanOrEqual(end);
        }
        const g = digest(bytes, start, end);
        expect(g.hash).toMatch(/^[0-9a-f]{16}$/);
        expect(digestHash(bytes, start, end)).toBe(g.hash);
      }),
      { numRuns: 3000 },
    );
  });

  it("never throws on SQL-ish text (keywords, quotes, comments mixed at random)", () => {
    const piece = fc.constantFrom(
      "SELECT ", "UPDATE ", "SET ", "@a", ":=", "@@x", "'", "\"", "`", "/*", "*/", "/*!", "/*M!", "--", " -- ", "#", "\n",
      "(", ")", ",", ";", "FOR ", "UPDATE ", "IN ", "VALUES ", "0x", "1e", ".5", "-", "?", "\\", "WITH ", "INTO ", "LAST_INSERT_ID(",
    );
    fc.assert(
      fc.property(fc.array(piece, { maxLength: 40 }), (pieces) => {
        const buf = Buffer.from(pieces.join(""));
        classify(buf);
        digest(buf);
      }),
      { numRuns: 3000 },
    );
  });

  it("literals with different values give the same digest", () => {
    const quote = (s: string) => "'" + s.replace(/\\/g, "\\\\").replace(/'/g, "''") + "'";
    const dquote = (s: string) => '"' + s.replace(/\\/g, "\\\\").replace(/"/g, '\\"') + '"';
    const literal = fc.oneof(
      fc.integer().map(String),
      fc.double({ noNaN: true, noDefaultInfinity: true }).map((x) => String(x)),
      fc.string().map(quote),
      fc.string().map(dquote),
      fc.nat().map((n) => "0x" + n.toString(16)),
      fc.nat().map((n) => "X'" + (n.toString(16).length % 2 ? "0" : "") + n.toString(16) + "'"),
    );
    const templates = [
      (a: string, _b: string) => `SELECT c FROM sbtest1 WHERE id=${a}`,
      (a: string, b: string) => `UPDATE sbtest1 SET c=${a} WHERE id=${b}`,
      (a: string, b: string) => `INSERT INTO sbtest1 (id, c) VALUES (${a}, ${b})`,
      (a: string, b: string) => `SELECT * FROM t WHERE a IN (${a}, ${b}) AND b BETWEEN ${b} AND ${a}`,
    ];
    fc.assert(
      fc.property(fc.nat(templates.length - 1), literal, literal, literal, literal, (i, a, b, c, e) => {
        const t = templates[i];
        expect(d(t(a, b)).hash).toBe(d(t(c, e)).hash);
      }),
      { numRuns: 2000 },
    );
  });
});
