/**
 * A MySQL/MariaDB statement lexer over bytes: it walks buf[start, end) of a
 * COM_QUERY payload and yields tokens as offsets, making no strings. Pure.
 *
 * - Comments (`#`, `-- `, slash-star) are skipped; a regular block comment is handed
 *   to `scanCommentHints` when a hints target is set. Executable comments
 *   (`/*!…*\/`, `/*!50100 …*\/`, `/*M!…*\/`) are SQL: their content is lexed
 *   whatever version they name, and their closing `*\/` is skipped.
 * - Strings in `'…'` and `"…"` (backslash and doubled-quote escapes; a double
 *   quote is a string, as without ANSI_QUOTES), backtick identifiers (doubled
 *   backtick escape), X'…', B'…', N'…', 0x…, 0b…, numbers (1, 1.5, .5, 1e10,
 *   1.5E-3), `?`, user variables (@x, @'x', @`x`), system variables (@@x,
 *   @@session.x), multi-byte operators (<=>, <=, >=, <>, !=, :=, ||, &&, <<,
 *   >>, ->, ->>) and single-byte punctuation.
 * - Never throws and never reads outside [start, end): an unterminated string
 *   or comment ends at `end`. Every `next()` consumes at least one byte or
 *   returns End, so a loop over it is bounded by the statement length.
 *
 * NO_BACKSLASH_ESCAPES is not modelled: a backslash always escapes.
 */
import { Kw, lookupKeyword, HASH_SEED } from "./keywords";
import { scanCommentHints } from "./hints";
import type { Classification } from "./statement-kind";

export const enum Token {
  End = 0,
  Word = 1, // unquoted identifier or keyword (`kw` says which keyword)
  QuotedIdent = 2, // `name`
  String = 3, // '…', "…", N'…'
  Number = 4,
  HexBit = 5, // X'…', 0x…, B'…', 0b…
  Placeholder = 6, // ?
  UserVar = 7, // @x, @'x'
  SysVar = 8, // @@x, @@session.x
  Punct = 9, // one byte, in `ch`
  Op = 10, // a multi-byte operator; `ch` is its first byte
}

export const enum Ch {
  Tab = 0x09, Lf = 0x0a, Cr = 0x0d, Space = 0x20, Bang = 0x21, DQuote = 0x22, Hash = 0x23,
  Dollar = 0x24, Amp = 0x26, Quote = 0x27, LParen = 0x28, RParen = 0x29, Star = 0x2a, Plus = 0x2b,
  Comma = 0x2c, Minus = 0x2d, Dot = 0x2e, Slash = 0x2f, Zero = 0x30, Nine = 0x39, Colon = 0x3a,
  Semicolon = 0x3b, Lt = 0x3c, Eq = 0x3d, Gt = 0x3e, Question = 0x3f, At = 0x40, Backslash = 0x5c,
  Underscore = 0x5f, Backtick = 0x60, Pipe = 0x7c,
}

const enum Cls {
  Other = 0,
  Space = 1,
  Ident = 2, // letters, _, $, bytes >= 0x80 (UTF-8)
  Digit = 3,
}

const CLASS = new Uint8Array(256);
for (let c = 0; c < 256; c++) {
  if (c === 0x20 || (c >= 0x09 && c <= 0x0d)) CLASS[c] = Cls.Space;
  else if (c >= 0x30 && c <= 0x39) CLASS[c] = Cls.Digit;
  else if ((c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) || c === 0x5f || c === 0x24 || c >= 0x80) CLASS[c] = Cls.Ident;
}

function isHexDigit(c: number): boolean {
  return (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x46) || (c >= 0x61 && c <= 0x66);
}

/**
 * Not reentrant: one instance per caller at a time. Token fields are valid
 * until the next `next()`; offsets point into the caller's buffer, which must
 * not change while lexing.
 */
export class Lexer {
  buf: Uint8Array = EMPTY;
  pos = 0;
  end = 0;
  inExec = false;
  /** Where comment hints go; null to skip hint scanning (digest). */
  hints: Classification | null = null;
  // current token
  type: Token = Token.End;
  start = 0;
  stop = 0;
  kw: Kw = Kw.None;
  ch = 0;
  // one saved position for look-ahead (mark/restore)
  private mPos = 0;
  private mExec = false;
  private mType: Token = Token.End;
  private mStart = 0;
  private mStop = 0;
  private mKw: Kw = Kw.None;
  private mCh = 0;

  reset(buf: Uint8Array, start: number, end: number, hints: Classification | null): void {
    this.buf = buf;
    this.pos = start < 0 ? 0 : start;
    this.end = end > buf.length ? buf.length : end;
    this.inExec = false;
    this.hints = hints;
    this.type = Token.End;
    this.start = this.stop = this.pos;
    this.kw = Kw.None;
    this.ch = 0;
  }

  /** Drops the buffer reference (so a lexer kept in a module does not pin a chunk). */
  release(): void {
    this.buf = EMPTY;
    this.hints = null;
  }

  mark(): void {
    this.mPos = this.pos;
    this.mExec = this.inExec;
    this.mType = this.type;
    this.mStart = this.start;
    this.mStop = this.stop;
    this.mKw = this.kw;
    this.mCh = this.ch;
  }

  restore(): void {
    this.pos = this.mPos;
    this.inExec = this.mExec;
    this.type = this.mType;
    this.start = this.mStart;
    this.stop = this.mStop;
    this.kw = this.mKw;
    this.ch = this.mCh;
  }

  next(): Token {
    const buf = this.buf;
    const end = this.end;
    let p = this.pos;
    const prev = this.type;
    const prevIsName = (prev === Token.Word && this.kw === Kw.None) || prev === Token.QuotedIdent; // t.5 vs SELECT .5
    this.kw = Kw.None;
    // skip space and comments (bounded: each round consumes bytes)
    while (p < end) {
      const c = buf[p];
      if (CLASS[c] === Cls.Space) {
        p++;
      } else if (c === Ch.Hash) {
        p = this.lineEnd(p);
      } else if (c === Ch.Minus && p + 1 < end && buf[p + 1] === Ch.Minus && (p + 2 >= end || buf[p + 2] <= 0x20)) {
        p = this.lineEnd(p);
      } else if (c === Ch.Slash && p + 1 < end && buf[p + 1] === Ch.Star) {
        p = this.blockComment(p);
      } else if (c === Ch.Star && this.inExec && p + 1 < end && buf[p + 1] === Ch.Slash) {
        this.inExec = false;
        p += 2;
      } else {
        break;
      }
    }
    this.start = p;
    if (p >= end) {
      this.pos = this.stop = end;
      return (this.type = Token.End);
    }
    const c = buf[p];
    this.ch = c;
    const cls = CLASS[c];
    let t: Token;
    if (cls === Cls.Ident) {
      const n = p + 1 < end ? buf[p + 1] : 0;
      if (n === Ch.Quote && (c === 0x58 || c === 0x78 || c === 0x42 || c === 0x62)) {
        p = this.quoted(p + 1, Ch.Quote); // X'..' / B'..'
        t = Token.HexBit;
      } else if (n === Ch.Quote && (c === 0x4e || c === 0x6e)) {
        p = this.quoted(p + 1, Ch.Quote); // N'..'
        t = Token.String;
      } else {
        p = this.word(p);
        t = Token.Word;
      }
    } else if (cls === Cls.Digit || (c === Ch.Dot && p + 1 < end && CLASS[buf[p + 1]] === Cls.Digit && !prevIsName)) {
      const r = this.number(p);
      if (r < 0) {
        p = this.word(p); // 1abc, 0xg, 1e: an identifier that starts with digits
        t = Token.Word;
      } else {
        p = r;
        t = c === Ch.Zero && this.start + 1 < end && isRadixPrefix(buf[this.start + 1]) ? Token.HexBit : Token.Number;
      }
    } else if (c === Ch.Quote || c === Ch.DQuote) {
      p = this.quoted(p, c);
      t = Token.String;
    } else if (c === Ch.Backtick) {
      p = this.quoted(p, c);
      t = Token.QuotedIdent;
    } else if (c === Ch.Question) {
      p++;
      t = Token.Placeholder;
    } else if (c === Ch.At) {
      // 'user'@'host' (adjacent to a string or name) is a host part, not a variable
      if (p === this.stop && (prev === Token.String || prev === Token.Word || prev === Token.QuotedIdent)) {
        p++;
        t = Token.Punct;
      } else if (p + 1 < end && buf[p + 1] === Ch.At) {
        p += 2;
        while (p < end && (CLASS[buf[p]] === Cls.Ident || CLASS[buf[p]] === Cls.Digit || buf[p] === Ch.Dot)) p++;
        t = Token.SysVar;
      } else {
        p++;
        if (p < end && (buf[p] === Ch.Quote || buf[p] === Ch.DQuote || buf[p] === Ch.Backtick)) p = this.quoted(p, buf[p]);
        else while (p < end && (CLASS[buf[p]] === Cls.Ident || CLASS[buf[p]] === Cls.Digit || buf[p] === Ch.Dot)) p++;
        t = Token.UserVar;
      }
    } else {
      const n = p + 1 < end ? buf[p + 1] : 0;
      let len = 1;
      if (c === Ch.Lt) len = n === Ch.Eq ? (p + 2 < end && buf[p + 2] === Ch.Gt ? 3 : 2) : n === Ch.Gt || n === Ch.Lt ? 2 : 1;
      else if (c === Ch.Gt) len = n === Ch.Eq || n === Ch.Gt ? 2 : 1;
      else if (c === Ch.Bang) len = n === Ch.Eq ? 2 : 1;
      else if (c === Ch.Colon) len = n === Ch.Eq ? 2 : 1;
      else if (c === Ch.Pipe) len = n === Ch.Pipe ? 2 : 1;
      else if (c === Ch.Amp) len = n === Ch.Amp ? 2 : 1;
      else if (c === Ch.Minus && n === Ch.Gt) len = p + 2 < end && buf[p + 2] === Ch.Gt ? 3 : 2;
      p += len;
      t = len === 1 ? Token.Punct : Token.Op;
    }
    this.pos = this.stop = p;
    return (this.type = t);
  }

  /** Whether the current token is the 2-byte operator `:=`. */
  isAssignOp(): boolean {
    return this.type === Token.Op && this.ch === Ch.Colon;
  }

  private lineEnd(p: number): number {
    const buf = this.buf;
    const end = this.end;
    while (p < end && buf[p] !== Ch.Lf) p++;
    return p < end ? p + 1 : end;
  }

  private blockComment(p: number): number {
    const buf = this.buf;
    const end = this.end;
    const third = p + 2 < end ? buf[p + 2] : 0;
    if (third === Ch.Bang || ((third === 0x4d || third === 0x6d) && p + 3 < end && buf[p + 3] === Ch.Bang)) {
      // executable comment: skip the opener and up to 6 version digits; the content is SQL
      p += third === Ch.Bang ? 3 : 4;
      for (let i = 0; i < 6 && p < end && CLASS[buf[p]] === Cls.Digit; i++) p++;
      this.inExec = true;
      return p;
    }
    const contentStart = p + 2;
    let q = contentStart;
    while (q + 1 < end && !(buf[q] === Ch.Star && buf[q + 1] === Ch.Slash)) q++;
    const closed = q + 1 < end;
    const contentEnd = closed ? q : end;
    if (this.hints !== null && contentEnd > contentStart) scanCommentHints(buf, contentStart, contentEnd, this.hints);
    return closed ? q + 2 : end;
  }

  /** From an opening quote at p, the offset after the closing one (or end). */
  private quoted(p: number, q: number): number {
    const buf = this.buf;
    const end = this.end;
    const open = p;
    p++;
    // jump from quote to quote (native indexOf); a quote after an odd run of backslashes is escaped
    for (let guard = 0; guard < end && p < end; guard++) {
      const at = buf.indexOf(q, p);
      if (at < 0 || at >= end) return end;
      if (q !== Ch.Backtick) {
        let k = at - 1;
        while (k > open && buf[k] === Ch.Backslash) k--;
        if (((at - 1 - k) & 1) === 1) {
          p = at + 1;
          continue;
        }
      }
      if (at + 1 < end && buf[at + 1] === q) {
        p = at + 2; // doubled quote
        continue;
      }
      return at + 1;
    }
    return end;
  }

  /** Scans a word from p, recognising keywords; returns its end. */
  private word(p: number): number {
    const buf = this.buf;
    const end = this.end;
    const s = p;
    let h = HASH_SEED;
    while (p < end) {
      const c = buf[p];
      const k = CLASS[c];
      if (k !== Cls.Ident && k !== Cls.Digit) break;
      h = Math.imul(h ^ (c >= 0x61 && c <= 0x7a ? c - 0x20 : c), 0x01000193);
      p++;
    }
    this.kw = lookupKeyword(buf, s, p, h);
    return p;
  }

  /** Scans a number from p; returns its end, or -1 when the text is really an identifier (1abc). */
  private number(p: number): number {
    const buf = this.buf;
    const end = this.end;
    const c0 = buf[p];
    if (c0 === Ch.Zero && p + 2 < end && isRadixPrefix(buf[p + 1])) {
      const hex = (buf[p + 1] | 0x20) === 0x78;
      let q = p + 2;
      while (q < end && (hex ? isHexDigit(buf[q]) : buf[q] === 0x30 || buf[q] === 0x31)) q++;
      if (q > p + 2 && (q >= end || CLASS[buf[q]] !== Cls.Ident && CLASS[buf[q]] !== Cls.Digit)) return q;
      return -1;
    }
    while (p < end && CLASS[buf[p]] === Cls.Digit) p++;
    if (p + 1 < end && buf[p] === Ch.Dot && CLASS[buf[p + 1]] === Cls.Digit) {
      p++;
      while (p < end && CLASS[buf[p]] === Cls.Digit) p++;
    } else if (p < end && buf[p] === Ch.Dot && (p + 1 >= end || CLASS[buf[p + 1]] !== Cls.Ident)) {
      p++; // "1." is a number
    }
    if (p < end && (buf[p] | 0x20) === 0x65) {
      let q = p + 1;
      if (q < end && (buf[q] === Ch.Plus || buf[q] === Ch.Minus)) q++;
      if (q < end && CLASS[buf[q]] === Cls.Digit) {
        while (q < end && CLASS[buf[q]] === Cls.Digit) q++;
        p = q;
      }
    }
    if (p < end && CLASS[buf[p]] === Cls.Ident) return -1;
    return p;
  }
}

function isRadixPrefix(c: number): boolean {
  return (c | 0x20) === 0x78 || (c | 0x20) === 0x62;
}

const EMPTY = new Uint8Array(0);
