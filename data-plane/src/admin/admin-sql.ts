/**
 * The admin port's SQL: read-only SELECTs over virtual tables, in a small
 * subset —
 *
 *   SELECT * | col [, col …] FROM table
 *     [WHERE col op value [AND col op value …]]     op: = != <> < <= > >= LIKE
 *     [ORDER BY col [ASC|DESC] [, …]] [LIMIT n [OFFSET m] | LIMIT m, n]
 *
 * plus SHOW TABLES, SHOW DATABASES, SELECT @@var / DATABASE() / VERSION()
 * (what clients send on connect), and SET / USE (accepted, ignored). Pure:
 * the caller supplies the tables' rows. Anything else is an AdminSqlError
 * carrying the MySQL errno to send (1064 syntax, 1146 unknown table, 1054
 * unknown column, 1227 not read-only), with a message that says what is
 * supported.
 */

export type Value = string | number | boolean | null;
export type Row = Record<string, Value>;

/** A virtual table: its columns in order and a way to get its rows. */
export interface VirtualTable {
  readonly columns: readonly string[];
  rows(): Row[] | Promise<Row[]>;
}

export class AdminSqlError extends Error {
  constructor(
    readonly errno: number,
    readonly sqlState: string,
    message: string,
  ) {
    super(message);
    this.name = "AdminSqlError";
  }
}

const SUPPORTED = "the admin port answers SELECT * | col, … FROM table [WHERE col = 'v' [AND …]] [ORDER BY col [DESC]] [LIMIT n], SHOW TABLES";

export interface Condition {
  column: string;
  op: "=" | "!=" | "<" | "<=" | ">" | ">=" | "LIKE";
  value: Value;
}

export interface SelectQuery {
  type: "select";
  /** null = * */
  columns: string[] | null;
  table: string;
  where: Condition[];
  orderBy: { column: string; desc: boolean }[];
  limit: number | null;
  offset: number;
}

export type AdminQuery =
  | SelectQuery
  | { type: "show-tables" }
  | { type: "show-databases" }
  /** SELECT of session variables / functions only: one row, names as written. */
  | { type: "variables"; names: string[] }
  /** SET, USE, BEGIN, COMMIT, ROLLBACK: OK, nothing done. */
  | { type: "noop" };

type Tok = { k: "id" | "num" | "str" | "op" | "var"; v: string };

function tokenize(sql: string): Tok[] {
  const out: Tok[] = [];
  let i = 0;
  const n = sql.length;
  while (i < n) {
    const c = sql[i];
    if (/\s/.test(c)) {
      i++;
      continue;
    }
    if (c === "-" && sql[i + 1] === "-") {
      while (i < n && sql[i] !== "\n") i++;
      continue;
    }
    if (c === "#") {
      while (i < n && sql[i] !== "\n") i++;
      continue;
    }
    if (c === "/" && sql[i + 1] === "*") {
      const end = sql.indexOf("*/", i + 2);
      i = end < 0 ? n : end + 2;
      continue;
    }
    if (c === "'" || c === '"') {
      let v = "";
      i++;
      for (;;) {
        if (i >= n) throw syntax("an unterminated string");
        const d = sql[i];
        if (d === "\\" && i + 1 < n) {
          v += sql[i + 1];
          i += 2;
        } else if (d === c && sql[i + 1] === c) {
          v += c;
          i += 2;
        } else if (d === c) {
          i++;
          break;
        } else {
          v += d;
          i++;
        }
      }
      out.push({ k: "str", v });
      continue;
    }
    if (c === "`") {
      const end = sql.indexOf("`", i + 1);
      if (end < 0) throw syntax("an unterminated `identifier`");
      out.push({ k: "id", v: sql.slice(i + 1, end) });
      i = end + 1;
      continue;
    }
    const num = /^-?\d+(\.\d+)?/.exec(sql.slice(i));
    if (num !== null && (c !== "-" || out.length === 0 || out[out.length - 1].k === "op")) {
      out.push({ k: "num", v: num[0] });
      i += num[0].length;
      continue;
    }
    const word = /^@{0,2}[A-Za-z_][A-Za-z0-9_$.]*/.exec(sql.slice(i));
    if (word !== null) {
      out.push({ k: word[0].startsWith("@") ? "var" : "id", v: word[0] });
      i += word[0].length;
      continue;
    }
    const op = /^(<=|>=|<>|!=|[=<>*,();])/.exec(sql.slice(i));
    if (op !== null) {
      out.push({ k: "op", v: op[0] });
      i += op[0].length;
      continue;
    }
    throw syntax(`"${sql.slice(i, i + 10)}"`);
  }
  while (out.length > 0 && out[out.length - 1].k === "op" && out[out.length - 1].v === ";") out.pop();
  return out;
}

function syntax(near: string): AdminSqlError {
  return new AdminSqlError(1064, "42000", `You have an error in your SQL syntax near ${near}; ${SUPPORTED}`);
}

/** Parses one admin statement; throws AdminSqlError. */
export function parseAdminQuery(sql: string): AdminQuery {
  const toks = tokenize(sql);
  let p = 0;
  const peek = (): Tok | undefined => toks[p];
  const kw = (w: string): boolean => {
    const t = toks[p];
    if (t !== undefined && t.k === "id" && t.v.toUpperCase() === w) {
      p++;
      return true;
    }
    return false;
  };
  const op = (o: string): boolean => {
    const t = toks[p];
    if (t !== undefined && t.k === "op" && t.v === o) {
      p++;
      return true;
    }
    return false;
  };
  const near = (): string => {
    const t = toks[p];
    return t === undefined ? "the end of the statement" : `'${toks.slice(p, p + 3).map((x) => x.v).join(" ")}'`;
  };
  const ident = (): string => {
    const t = toks[p];
    if (t === undefined || t.k !== "id") throw syntax(near());
    p++;
    return t.v;
  };
  const end = (): void => {
    if (p < toks.length) throw syntax(near());
  };

  if (toks.length === 0) throw new AdminSqlError(1065, "42000", "Query was empty");
  const first = toks[0].k === "id" ? toks[0].v.toUpperCase() : "";
  if (first === "SHOW") {
    p = 1;
    if (kw("TABLES")) {
      end();
      return { type: "show-tables" };
    }
    if (kw("DATABASES") || kw("SCHEMAS")) {
      end();
      return { type: "show-databases" };
    }
    throw syntax(near());
  }
  if (first === "SET" || first === "USE" || first === "BEGIN" || first === "COMMIT" || first === "ROLLBACK" || first === "START") return { type: "noop" };
  if (first !== "SELECT") {
    throw new AdminSqlError(1227, "42000", `The admin port is read-only: ${first === "" ? "this statement" : first} is not supported; ${SUPPORTED}`);
  }
  p = 1;

  // SELECT @@version_comment LIMIT 1, SELECT DATABASE(), …
  if (peek()?.k === "var" || (peek()?.k === "id" && toks[p + 1]?.v === "(")) {
    const names: string[] = [];
    for (;;) {
      const t = peek();
      if (t === undefined) break;
      if (t.k === "var") {
        names.push(t.v);
        p++;
      } else if (t.k === "id" && toks[p + 1]?.v === "(" && toks[p + 2]?.v === ")") {
        names.push(`${t.v}()`);
        p += 3;
      } else break;
      if (!op(",")) break;
    }
    if (kw("LIMIT")) {
      if (peek()?.k !== "num") throw syntax(near());
      p++;
    }
    end();
    return { type: "variables", names };
  }

  let columns: string[] | null = null;
  if (!op("*")) {
    columns = [ident()];
    while (op(",")) columns.push(ident());
  }
  if (!kw("FROM")) throw syntax(near());
  let table = ident();
  // schema-qualified: mysqlgw.digests
  const dot = table.indexOf(".");
  if (dot >= 0) table = table.slice(dot + 1);
  table = table.toLowerCase();

  const where: Condition[] = [];
  if (kw("WHERE")) {
    do {
      const column = ident().toLowerCase();
      let o: Condition["op"];
      const t = peek();
      if (t?.k === "op" && ["=", "!=", "<>", "<", "<=", ">", ">="].includes(t.v)) {
        o = t.v === "<>" ? "!=" : (t.v as Condition["op"]);
        p++;
      } else if (kw("LIKE")) o = "LIKE";
      else throw syntax(near());
      const v = peek();
      let value: Value;
      if (v?.k === "str") value = v.v;
      else if (v?.k === "num") value = Number(v.v);
      else if (v?.k === "id" && v.v.toUpperCase() === "NULL") value = null;
      else if (v?.k === "id" && (v.v.toUpperCase() === "TRUE" || v.v.toUpperCase() === "FALSE")) value = v.v.toUpperCase() === "TRUE" ? 1 : 0;
      else throw syntax(near());
      p++;
      where.push({ column, op: o, value });
    } while (kw("AND"));
    if (peek()?.k === "id" && peek()?.v.toUpperCase() === "OR") {
      throw new AdminSqlError(1064, "42000", `OR is not supported in the admin port's WHERE (only col op value joined by AND); ${SUPPORTED}`);
    }
  }
  const orderBy: { column: string; desc: boolean }[] = [];
  if (kw("ORDER")) {
    if (!kw("BY")) throw syntax(near());
    do {
      const column = ident().toLowerCase();
      let desc = false;
      if (kw("DESC")) desc = true;
      else kw("ASC");
      orderBy.push({ column, desc });
    } while (op(","));
  }
  let limit: number | null = null;
  let offset = 0;
  if (kw("LIMIT")) {
    const a = peek();
    if (a?.k !== "num" || !/^\d+$/.test(a.v)) throw syntax(near());
    p++;
    limit = Number(a.v);
    if (op(",")) {
      const b = peek();
      if (b?.k !== "num" || !/^\d+$/.test(b.v)) throw syntax(near());
      p++;
      offset = limit;
      limit = Number(b.v);
    } else if (kw("OFFSET")) {
      const b = peek();
      if (b?.k !== "num" || !/^\d+$/.test(b.v)) throw syntax(near());
      p++;
      offset = Number(b.v);
    }
  }
  end();
  return { type: "select", columns: columns?.map((c) => c.toLowerCase()) ?? null, table, where, orderBy, limit, offset };
}

function compare(a: Value, b: Value): number {
  if (a === b) return 0;
  if (a === null) return -1;
  if (b === null) return 1;
  if (typeof a === "number" && typeof b === "number") return a - b;
  if (typeof a === "boolean" || typeof b === "boolean") return Number(a) - Number(b);
  const na = Number(a);
  const nb = Number(b);
  if (typeof a === "number" || typeof b === "number") {
    if (Number.isFinite(na) && Number.isFinite(nb)) return na - nb;
  }
  return String(a) < String(b) ? -1 : String(a) > String(b) ? 1 : 0;
}

function likeToRegExp(pattern: string): RegExp {
  let re = "";
  for (const ch of pattern) {
    if (ch === "%") re += ".*";
    else if (ch === "_") re += ".";
    else re += ch.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  }
  return new RegExp(`^${re}$`, "is");
}

function matches(row: Row, c: Condition): boolean {
  const v = row[c.column] ?? null;
  if (c.value === null) return c.op === "=" ? v === null : c.op === "!=" ? v !== null : false;
  if (v === null) return false;
  if (c.op === "LIKE") return likeToRegExp(String(c.value)).test(String(v));
  const d = compare(v, c.value);
  switch (c.op) {
    case "=":
      return d === 0;
    case "!=":
      return d !== 0;
    case "<":
      return d < 0;
    case "<=":
      return d <= 0;
    case ">":
      return d > 0;
    default:
      return d >= 0;
  }
}

/** Runs a SELECT over `tables`: the result's column names and rows (in column order). */
export async function runSelect(q: SelectQuery, tables: ReadonlyMap<string, VirtualTable>): Promise<{ columns: string[]; rows: Value[][] }> {
  const t = tables.get(q.table);
  if (t === undefined) {
    throw new AdminSqlError(1146, "42S02", `Table 'mysqlgw.${q.table}' doesn't exist; the admin port's tables are ${[...tables.keys()].join(", ")} (SHOW TABLES)`);
  }
  const known = new Set(t.columns);
  const check = (c: string, where: string): void => {
    if (!known.has(c)) throw new AdminSqlError(1054, "42S22", `Unknown column '${c}' in '${where}'; ${q.table} has ${t.columns.join(", ")}`);
  };
  const columns = q.columns ?? [...t.columns];
  for (const c of columns) check(c, "field list");
  for (const c of q.where) check(c.column, "where clause");
  for (const o of q.orderBy) check(o.column, "order clause");

  let rows = (await t.rows()).filter((r) => q.where.every((c) => matches(r, c)));
  if (q.orderBy.length > 0) {
    rows = rows.sort((a, b) => {
      for (const o of q.orderBy) {
        const d = compare(a[o.column] ?? null, b[o.column] ?? null);
        if (d !== 0) return o.desc ? -d : d;
      }
      return 0;
    });
  }
  rows = rows.slice(q.offset, q.limit === null ? undefined : q.offset + q.limit);
  return { columns, rows: rows.map((r) => columns.map((c) => r[c] ?? null)) };
}

/** A value as the text protocol sends it (NULL stays null; booleans as 1/0; numbers without exponent noise). */
export function textValue(v: Value): string | null {
  if (v === null) return null;
  if (typeof v === "boolean") return v ? "1" : "0";
  if (typeof v === "number") return Number.isInteger(v) ? String(v) : String(Math.round(v * 1000) / 1000);
  return v;
}
