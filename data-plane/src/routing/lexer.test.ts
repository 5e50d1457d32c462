import { Lexer, Token } from "./lexer";

function tokens(sql: string): Array<[Token, string]> {
  const buf = Buffer.from(sql, "utf8");
  const lx = new Lexer();
  lx.reset(buf, 0, buf.length, null);
  const out: Array<[Token, string]> = [];
  for (let i = 0; i < buf.length + 2; i++) {
    const t = lx.next();
    if (t === Token.End) break;
    out.push([t, buf.toString("utf8", lx.start, lx.stop)]);
  }
  return out;
}

describe("Lexer", () => {
  it.each<[string, Array<[Token, string]>]>([
    ["'it''s' \"a\\\"b\" `x``y`", [[Token.String, "'it''s'"], [Token.String, '"a\\"b"'], [Token.QuotedIdent, "`x``y`"]]],
    ["'a\\\\' 1", [[Token.String, "'a\\\\'"], [Token.Number, "1"]]],
    ["X'4D' x'' B'01' 0x1F 0b10 0xZZ N'n'", [[Token.HexBit, "X'4D'"], [Token.HexBit, "x''"], [Token.HexBit, "B'01'"], [Token.HexBit, "0x1F"], [Token.HexBit, "0b10"], [Token.Word, "0xZZ"], [Token.String, "N'n'"]]],
    ["1 1.5 .5 1e10 1.5E-3 1. 1abc 2e", [[Token.Number, "1"], [Token.Number, "1.5"], [Token.Number, ".5"], [Token.Number, "1e10"], [Token.Number, "1.5E-3"], [Token.Number, "1."], [Token.Word, "1abc"], [Token.Word, "2e"]]],
    ["a<=>b<=c>=d<>e!=f:=g||h&&i->j->>k", [[Token.Word, "a"], [Token.Op, "<=>"], [Token.Word, "b"], [Token.Op, "<="], [Token.Word, "c"], [Token.Op, ">="], [Token.Word, "d"], [Token.Op, "<>"], [Token.Word, "e"], [Token.Op, "!="], [Token.Word, "f"], [Token.Op, ":="], [Token.Word, "g"], [Token.Op, "||"], [Token.Word, "h"], [Token.Op, "&&"], [Token.Word, "i"], [Token.Op, "->"], [Token.Word, "j"], [Token.Op, "->>"], [Token.Word, "k"]]],
    ["@a @'b c' @@session.x ? 'u'@'h'", [[Token.UserVar, "@a"], [Token.UserVar, "@'b c'"], [Token.SysVar, "@@session.x"], [Token.Placeholder, "?"], [Token.String, "'u'"], [Token.Punct, "@"], [Token.String, "'h'"]]],
    ["a -- c\nb #x\nc /* d */ e --x", [[Token.Word, "a"], [Token.Word, "b"], [Token.Word, "c"], [Token.Word, "e"], [Token.Punct, "-"], [Token.Punct, "-"], [Token.Word, "x"]]],
    ["/*!50100 a */ /*M!100100 b*/ /*!c*/", [[Token.Word, "a"], [Token.Word, "b"], [Token.Word, "c"]]],
    ["'unterminated", [[Token.String, "'unterminated"]]],
    ["a /* unterminated", [[Token.Word, "a"]]],
    ["ünïcode_名前 x", [[Token.Word, "ünïcode_名前"], [Token.Word, "x"]]],
  ])("%s", (sql, expected) => {
    expect(tokens(sql)).toEqual(expected);
  });

  it("recognises keywords case-insensitively, and only whole words", () => {
    const buf = Buffer.from("select SeLeCt selects last_insert_id");
    const lx = new Lexer();
    lx.reset(buf, 0, buf.length, null);
    const kws: number[] = [];
    while (lx.next() !== Token.End) kws.push(lx.kw);
    expect(kws[0]).toBe(kws[1]);
    expect(kws[0]).not.toBe(0);
    expect(kws[2]).toBe(0);
    expect(kws[3]).not.toBe(0);
  });

  it("stays inside [start, end) of a larger buffer", () => {
    const buf = Buffer.from("xx'abc'yy");
    const lx = new Lexer();
    lx.reset(buf, 2, 5, null); // "'ab" — an unterminated string within the view
    expect(lx.next()).toBe(Token.String);
    expect([lx.start, lx.stop]).toEqual([2, 5]);
    expect(lx.next()).toBe(Token.End);
  });
});
