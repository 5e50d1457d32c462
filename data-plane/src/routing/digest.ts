/**
 * Statement digests: a normalised fingerprint of a statement and a 64-bit
 * FNV-1a hash of it, so that statements differing only in literal values,
 * spacing, keyword case or comments share one digest.
 *
 * Normalisation: literals (strings, numbers, hex/bit, with a unary sign) become
 * `?`; `NULL`, TRUE/FALSE and `?` placeholders stay; `IN (…)` of literals only
 * becomes `IN (...)`; `VALUES (…), (…)` keeps its first row; comments (and so
 * hints) are dropped, executable-comment content is kept; keywords are
 * upper-cased, identifiers kept as written; tokens are separated by one space
 * (none after `(` or `.`, none before `)`, `,`, `.`); a trailing `;` is dropped.
 *
 * Pure and never throws. Separate from `classify()` so classification stays
 * cheap; call it only when a digest is needed (rules, caches, metrics).
 */
import { Kw } from "./keywords";
import { Ch, Lexer, Token } from "./lexer";

export interface DigestOptions {
  /** Longest digest text returned (bytes); the hash still covers the whole normalised text. Default 4096. */
  maxTextBytes?: number;
}

export interface Digest {
  /** The normalised text (possibly truncated, see `truncated`). */
  text: string;
  /** FNV-1a 64 of the whole normalised text, 16 lower-case hex digits. */
  hash: string;
  truncated: boolean;
}

export const DEFAULT_DIGEST_MAX_TEXT_BYTES = 4096;

const lexer = new Lexer();
const RETAINED_BYTES = 64 * 1024;

/**
 * Collects the normalised bytes in a reused buffer (grown as needed: at most
 * about twice the statement), then hashes them all in one tight loop
 * (FNV-1a 64 in four 16-bit limbs, no BigInt).
 */
class DigestWriter {
  out = Buffer.allocUnsafe(256);
  len = 0;
  h0 = 0;
  h1 = 0;
  h2 = 0;
  h3 = 0;

  reset(): void {
    this.len = 0;
  }

  byte(b: number): void {
    if (this.len === this.out.length) {
      const bigger = Buffer.allocUnsafe(this.out.length * 2);
      this.out.copy(bigger, 0, 0, this.len);
      this.out = bigger;
    }
    this.out[this.len++] = b;
  }

  /** Drops a buffer grown by a huge statement, so a module-level writer does not keep it. */
  shrink(): void {
    if (this.out.length > RETAINED_BYTES) this.out = Buffer.allocUnsafe(256);
  }

  hash(): void {
    // FNV-1a 64: h ^= b; h *= 0x100000001b3 (= 2^40 + 0x1b3), all mod 2^64
    let h0 = 0x2325, h1 = 0x8422, h2 = 0x9ce4, h3 = 0xcbf2;
    const out = this.out;
    for (let i = 0; i < this.len; i++) {
      const x = h0 ^ out[i];
      const t0 = x * 0x1b3;
      let t1 = h1 * 0x1b3;
      let t2 = h2 * 0x1b3 + (x << 8);
      const t3 = h3 * 0x1b3 + (h1 << 8);
      t1 += t0 >>> 16;
      h0 = t0 & 0xffff;
      t2 += t1 >>> 16;
      h1 = t1 & 0xffff;
      h3 = (t3 + (t2 >>> 16)) & 0xffff;
      h2 = t2 & 0xffff;
    }
    this.h0 = h0;
    this.h1 = h1;
    this.h2 = h2;
    this.h3 = h3;
  }

  hex(): string {
    // a table per byte: Number#toString(16) was the largest cost of a short digest
    const h3 = this.h3, h2 = this.h2, h1 = this.h1, h0 = this.h0;
    return HEX[h3 >>> 8] + HEX[h3 & 0xff] + HEX[h2 >>> 8] + HEX[h2 & 0xff] + HEX[h1 >>> 8] + HEX[h1 & 0xff] + HEX[h0 >>> 8] + HEX[h0 & 0xff];
  }
}

const HEX: string[] = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, "0"));
const writer = new DigestWriter();
const ELLIPSIS_LIST = [0x28, 0x2e, 0x2e, 0x2e, 0x29]; // "(...)"

function isLiteral(t: Token): boolean {
  return t === Token.String || t === Token.Number || t === Token.HexBit || t === Token.Placeholder;
}

/**
 * After IN, with the lexer on `(`: whether a list of literals only follows,
 * up to its `)`, which is then the current token. On false the caller
 * restores the lexer.
 */
function skipLiteralList(lx: Lexer, limit: number): boolean {
  for (let i = 0; i < limit; i++) {
    let t = lx.next();
    if (t === Token.Punct && (lx.ch === Ch.Minus || lx.ch === Ch.Plus)) t = lx.next();
    if (!isLiteral(t) && !(t === Token.Word && lx.kw === Kw.Null)) break;
    t = lx.next();
    if (t === Token.Punct && lx.ch === Ch.RParen) return true;
    if (!(t === Token.Punct && lx.ch === Ch.Comma)) break;
  }
  return false;
}

function nextIsPunct(lx: Lexer, ch: Ch): boolean {
  return lx.next() === Token.Punct && lx.ch === ch;
}

/** With the lexer on the `)` that ends a VALUES row: skips `, (…)` rows after it. */
function skipMoreRows(lx: Lexer, limit: number): void {
  for (let i = 0; i < limit; i++) {
    lx.mark();
    if (!nextIsPunct(lx, Ch.Comma) || !nextIsPunct(lx, Ch.LParen)) {
      lx.restore();
      return;
    }
    let depth = 1;
    while (depth > 0 && i < limit) {
      const t = lx.next();
      i++;
      if (t === Token.End) return;
      if (t === Token.Punct) {
        if (lx.ch === Ch.LParen) depth++;
        else if (lx.ch === Ch.RParen) depth--;
      }
    }
  }
}

function run(bytes: Uint8Array, start: number, end: number): void {
  const lx = lexer;
  const w = writer;
  lx.reset(bytes, start, end, null);
  w.reset();
  const limit = end - start + 2;
  let spaceBefore = false; // a space goes before the next token (unless it is ) , . ;)
  let prevValue = false; // the previous token ends an operand: a following - or + is binary
  let pendingSemicolon = false;
  let valuesDepth = -1; // depth of a VALUES row list, or -1
  let depth = 0;
  for (let guard = 0; guard < limit; guard++) {
    const t = lx.next();
    if (t === Token.End) break;
    const ch = lx.ch;
    if (t === Token.Punct && ch === Ch.Semicolon) {
      pendingSemicolon = true;
      continue;
    }
    if (pendingSemicolon) {
      w.byte(Ch.Semicolon);
      spaceBefore = true;
      pendingSemicolon = false;
      prevValue = false;
      valuesDepth = -1;
      depth = 0;
    }
    const closer = t === Token.Punct && (ch === Ch.RParen || ch === Ch.Comma || ch === Ch.Dot);
    if (spaceBefore && !closer) w.byte(Ch.Space);
    spaceBefore = true;
    if (isLiteral(t)) {
      w.byte(Ch.Question);
      prevValue = true;
      continue;
    }
    if (t === Token.Punct) {
      if ((ch === Ch.Minus || ch === Ch.Plus) && !prevValue) {
        lx.mark();
        const n = lx.next();
        if (n === Token.Number || n === Token.HexBit) {
          w.byte(Ch.Question); // a signed literal
          prevValue = true;
          continue;
        }
        lx.restore();
      }
      w.byte(ch);
      if (ch === Ch.LParen) {
        depth++;
        spaceBefore = false;
        prevValue = false;
      } else if (ch === Ch.RParen) {
        if (depth > 0) depth--;
        prevValue = true;
        if (depth === valuesDepth) {
          skipMoreRows(lx, limit);
          valuesDepth = -1;
        }
      } else {
        prevValue = false;
        if (ch === Ch.Dot) spaceBefore = false;
      }
      continue;
    }
    const s = lx.start;
    const e = lx.stop;
    const buf = lx.buf;
    if (t === Token.Word && lx.kw !== Kw.None) {
      for (let i = s; i < e; i++) {
        const c = buf[i];
        w.byte(c >= 0x61 && c <= 0x7a ? c - 0x20 : c);
      }
      const kw = lx.kw;
      prevValue = kw === Kw.Null || kw === Kw.True || kw === Kw.False;
      if (kw === Kw.In) {
        lx.mark();
        if (lx.next() === Token.Punct && lx.ch === Ch.LParen && skipLiteralList(lx, limit)) {
          w.byte(Ch.Space);
          for (const b of ELLIPSIS_LIST) w.byte(b);
          prevValue = true;
        } else {
          lx.restore();
        }
      } else if ((kw === Kw.Values || kw === Kw.Value) && valuesDepth < 0) {
        lx.mark();
        const isRow = lx.next() === Token.Punct && lx.ch === Ch.LParen;
        lx.restore();
        if (isRow) valuesDepth = depth;
      }
      continue;
    }
    for (let i = s; i < e; i++) w.byte(buf[i]);
    prevValue = t === Token.Word || t === Token.QuotedIdent || t === Token.UserVar || t === Token.SysVar;
  }
  lx.release();
  w.hash();
}

/** The digest text and hash of bytes[start, end). */
export function digest(bytes: Uint8Array, start = 0, end = bytes.length, options?: DigestOptions): Digest {
  run(bytes, start, end);
  let max = options?.maxTextBytes ?? DEFAULT_DIGEST_MAX_TEXT_BYTES;
  const truncated = writer.len > max;
  if (truncated) while (max > 0 && (writer.out[max] & 0xc0) === 0x80) max--; // cut on a UTF-8 character boundary
  const result = { text: writer.out.toString("utf8", 0, truncated ? max : writer.len), hash: writer.hex(), truncated };
  writer.shrink();
  return result;
}

/** Only the digest hash of bytes[start, end) (no text is kept or decoded). */
export function digestHash(bytes: Uint8Array, start = 0, end = bytes.length): string {
  run(bytes, start, end);
  writer.shrink();
  return writer.hex();
}
