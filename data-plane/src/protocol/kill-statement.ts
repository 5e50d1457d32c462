/**
 * Recognises `KILL [HARD|SOFT] [CONNECTION|QUERY] <n>` in a COM_QUERY text,
 * the statements whose thread id the gateway rewrites. Pure.
 *
 * Leading spaces and comments (slash-star, `#`, `-- `) are skipped; a trailing `;`,
 * spaces and comments are allowed. `KILL QUERY ID <query id>`, `KILL USER u`,
 * expressions and anything else give null: such statements are forwarded to
 * the backend unchanged.
 */
export interface KillStatement {
  /** KILL QUERY: end the running statement only; else the whole connection. */
  query: boolean;
  /** The thread id as the client wrote it (for us: our connection id). */
  id: number;
}

function skipSpaceAndComments(s: string, i: number): number {
  const n = s.length;
  for (let guard = 0; guard < n + 1 && i < n; guard++) {
    const c = s.charCodeAt(i);
    if (c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d) {
      i++;
    } else if (c === 0x2f && s.charCodeAt(i + 1) === 0x2a) {
      // /* ... */ (an executable /*! comment is treated as a comment: not a plain KILL)
      if (s.charCodeAt(i + 2) === 0x21 || s.charCodeAt(i + 2) === 0x4d) return -1;
      const end = s.indexOf("*/", i + 2);
      if (end < 0) return -1;
      i = end + 2;
    } else if (c === 0x23 || (c === 0x2d && s.charCodeAt(i + 1) === 0x2d && (i + 2 >= n || s.charCodeAt(i + 2) <= 0x20))) {
      const end = s.indexOf("\n", i);
      i = end < 0 ? n : end + 1;
    } else {
      break;
    }
  }
  return i;
}

/** Reads one word (letters/digits/_) at i; returns [word upper-cased, end] or null. */
function word(s: string, i: number): [string, number] | null {
  let j = i;
  while (j < s.length && /[A-Za-z0-9_]/.test(s[j])) j++;
  return j === i ? null : [s.slice(i, j).toUpperCase(), j];
}

export function parseKillStatement(text: string): KillStatement | null {
  let i = skipSpaceAndComments(text, 0);
  if (i < 0) return null;
  let w = word(text, i);
  if (w === null || w[0] !== "KILL") return null;
  let query = false;
  let id: number | null = null;
  // at most: HARD|SOFT, CONNECTION|QUERY, <n>
  for (let step = 0; step < 3; step++) {
    i = skipSpaceAndComments(text, w[1]);
    if (i < 0 || i === w[1]) return null; // words need a separator
    w = word(text, i);
    if (w === null) return null;
    const t = w[0];
    if (/^\d+$/.test(t)) {
      if (t.length > 10) return null;
      id = Number(t);
      break;
    }
    if (step === 0 && (t === "HARD" || t === "SOFT")) continue;
    if (step <= 1 && (t === "CONNECTION" || t === "QUERY")) {
      query = t === "QUERY";
      step = 1;
      continue;
    }
    return null; // ID, USER, an expression…
  }
  if (id === null || id > 0xffffffff) return null;
  i = skipSpaceAndComments(text, w[1]);
  if (i < 0) return null;
  if (i < text.length && text[i] === ";") i = skipSpaceAndComments(text, i + 1);
  if (i !== text.length) return null;
  return { query, id };
}
