/**
 * A small parser of the Prometheus text exposition format 0.0.4
 * (https://prometheus.io/docs/instrumenting/exposition_formats/), enough to
 * assert on what /metrics serves: HELP and TYPE lines, samples with escaped
 * label values, +Inf/-Inf/NaN, optional timestamps. It rejects what the format
 * does not allow (a sample line it cannot read, a label without quotes, a TYPE
 * given twice), so a malformed exposition fails the test that scrapes it.
 */

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

export interface Exposition {
  /** Metric family name → type (counter, gauge, histogram, summary, untyped). */
  types: Map<string, string>;
  help: Map<string, string>;
  samples: Sample[];
  /**
   * The value of the one sample named `name` whose labels include `labels`
   * (other labels may differ only if a single sample matches); undefined when
   * none does. Throws when several match.
   */
  value(name: string, labels?: Record<string, string>): number | undefined;
  /** The sum of every sample named `name` whose labels include `labels` (0 when none). */
  sum(name: string, labels?: Record<string, string>): number;
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;

export function parseExposition(text: string): Exposition {
  const types = new Map<string, string>();
  const help = new Map<string, string>();
  const samples: Sample[] = [];
  text.split("\n").forEach((raw, i) => {
    const line = raw.trim();
    const where = `line ${i + 1} ("${raw}")`;
    if (line === "") return;
    if (line.startsWith("#")) {
      const m = /^#\s+(HELP|TYPE)\s+(\S+)\s?(.*)$/.exec(line);
      if (m === null) return; // a comment
      if (!NAME.test(m[2]!)) throw new Error(`bad metric name in ${where}`);
      if (m[1] === "TYPE") {
        if (types.has(m[2]!)) throw new Error(`TYPE of ${m[2]} given twice (${where})`);
        if (!/^(counter|gauge|histogram|summary|untyped)$/.test(m[3]!)) throw new Error(`unknown type in ${where}`);
        types.set(m[2]!, m[3]!);
      } else {
        help.set(m[2]!, m[3]!.replace(/\\n/g, "\n").replace(/\\\\/g, "\\"));
      }
      return;
    }
    samples.push(parseSample(line, where));
  });

  const matching = (name: string, labels: Record<string, string>): Sample[] =>
    samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
  return {
    types,
    help,
    samples,
    value(name, labels = {}) {
      const m = matching(name, labels);
      if (m.length > 1) throw new Error(`${m.length} samples of ${name} match ${JSON.stringify(labels)}; name more labels`);
      return m[0]?.value;
    },
    sum: (name, labels = {}) => matching(name, labels).reduce((a, s) => a + s.value, 0),
  };
}

function parseSample(line: string, where: string): Sample {
  let i = 0;
  while (i < line.length && /[a-zA-Z0-9_:]/.test(line[i]!)) i++;
  const name = line.slice(0, i);
  if (!NAME.test(name)) throw new Error(`bad sample name in ${where}`);
  const labels: Record<string, string> = {};
  if (line[i] === "{") {
    i++;
    for (;;) {
      while (line[i] === " ") i++;
      if (line[i] === "}") {
        i++;
        break;
      }
      const eq = line.indexOf("=", i);
      if (eq < 0) throw new Error(`label without "=" in ${where}`);
      const key = line.slice(i, eq).trim();
      if (!/^[a-zA-Z_][a-zA-Z0-9_]*$/.test(key)) throw new Error(`bad label name "${key}" in ${where}`);
      if (line[eq + 1] !== '"') throw new Error(`label ${key} without quotes in ${where}`);
      let v = "";
      let j = eq + 2;
      for (; j < line.length && line[j] !== '"'; j++) {
        if (line[j] === "\\") {
          const n = line[++j];
          v += n === "n" ? "\n" : n === "\\" ? "\\" : n === '"' ? '"' : `\\${n}`;
        } else v += line[j];
      }
      if (j >= line.length) throw new Error(`unterminated label value in ${where}`);
      if (key in labels) throw new Error(`label ${key} given twice in ${where}`);
      labels[key] = v;
      i = j + 1;
      if (line[i] === ",") i++;
      else if (line[i] !== "}") throw new Error(`expected "," or "}" after label ${key} in ${where}`);
    }
  }
  const rest = line.slice(i).trim().split(/\s+/);
  if (rest.length < 1 || rest.length > 2 || rest[0] === "") throw new Error(`expected "value [timestamp]" in ${where}`);
  const value = parseValue(rest[0]!);
  if (value === null) throw new Error(`bad value in ${where}`);
  return { name, labels, value };
}

/** As Prometheus reads it (Go's strconv.ParseFloat): NaN and Inf in any case — prom-client writes NaN as "Nan". */
function parseValue(s: string): number | null {
  const l = s.toLowerCase();
  if (l === "+inf" || l === "inf" || l === "+infinity" || l === "infinity") return Infinity;
  if (l === "-inf" || l === "-infinity") return -Infinity;
  if (l === "nan") return NaN;
  const n = Number(s);
  return s !== "" && !Number.isNaN(n) ? n : null;
}

/** GET `url` (loopback) and parse it; rejects unless 200 with the text format's content type. */
export async function scrape(url: string): Promise<Exposition> {
  const res = await fetch(url, { signal: AbortSignal.timeout(10_000) });
  const text = await res.text();
  if (res.status !== 200) throw new Error(`GET ${url} answered ${res.status}: ${text}`);
  const type = res.headers.get("content-type") ?? "";
  if (!type.startsWith("text/plain") || !type.includes("version=0.0.4")) throw new Error(`GET ${url}: content-type ${type}, not the text format 0.0.4`);
  return parseExposition(text);
}
