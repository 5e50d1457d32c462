import * as fs from "node:fs";
import * as path from "node:path";
import type { Logger } from "pino";
import { decodeConfig, type ConfigDoc } from "./config-codec";

/**
 * The last config every worker served, kept on local disk so that a data plane
 * restarted while etcd is unreachable serves it again.
 *
 * The file is the etcd value byte for byte (proto3 JSON of ConfigVersion), so
 * an operator can read it and `etcdctl put` it back. save() replaces it
 * atomically (write a temporary file, fsync, rename, fsync the directory): a
 * crash leaves either the old or the new file, never a torn one.
 */
export interface DiskConfigCache {
  /** Absolute path of the cached file. */
  readonly file: string;
  /**
   * Reads the cached config. Returns null when there is none, or when the file
   * cannot be read or is not a valid ConfigVersion (logged once, left in place
   * for inspection; the next save() replaces it).
   */
  load(): ConfigDoc | null;
  /** Atomically replaces the cached config. Throws on I/O failure (the old file stays). */
  save(doc: ConfigDoc): Promise<void>;
}

export interface DiskConfigCacheOptions {
  dir: string;
  logger: Logger;
  /** File name inside `dir`; default "config.json". */
  fileName?: string;
}

export function createDiskConfigCache(options: DiskConfigCacheOptions): DiskConfigCache {
  const dir = path.resolve(options.dir);
  const file = path.join(dir, options.fileName ?? "config.json");
  const log = options.logger;
  let seq = 0;

  return {
    file,

    load(): ConfigDoc | null {
      let text: string;
      try {
        text = fs.readFileSync(file, "utf8");
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === "ENOENT") return null;
        log.warn({ file, err: (err as Error).message }, "cannot read the last good config file; ignoring it");
        return null;
      }
      const res = decodeConfig(text);
      if (!res.ok) {
        log.warn(
          { file, reason: res.reason },
          "last good config file is corrupt; ignoring it (it is replaced by the next config served)",
        );
        return null;
      }
      return res.doc;
    },

    async save(doc: ConfigDoc): Promise<void> {
      ensureDir(dir);
      const tmp = `${file}.tmp-${process.pid}-${++seq}`;
      let fh: fs.promises.FileHandle | null = null;
      try {
        fh = await fs.promises.open(tmp, "w", 0o600);
        await fh.writeFile(doc.json, "utf8");
        await fh.sync();
        await fh.close();
        fh = null;
        await fs.promises.rename(tmp, file);
      } catch (err) {
        if (fh !== null) await fh.close().catch(() => undefined);
        await fs.promises.rm(tmp, { force: true }).catch(() => undefined);
        throw err;
      }
      // Make the rename itself durable.
      try {
        const dh = await fs.promises.open(dir, "r");
        try {
          await dh.sync();
        } finally {
          await dh.close();
        }
      } catch {
        // Some filesystems refuse fsync on a directory; the rename is still atomic.
      }
    },
  };
}

/**
 * `mkdir -p` bounded by the number of path components. (Node's recursive
 * mkdir spins forever on some filesystems, e.g. under /proc, where mkdir
 * answers ENOENT for a path whose parent exists.) Throws the first error that
 * is not EEXIST.
 */
export function ensureDir(dir: string): void {
  const abs = path.resolve(dir);
  try {
    if (fs.statSync(abs).isDirectory()) return;
  } catch {
    // create it below
  }
  const parts: string[] = [];
  for (let p = abs; ; p = path.dirname(p)) {
    parts.push(p);
    if (path.dirname(p) === p) break;
  }
  for (const p of parts.reverse()) {
    try {
      fs.mkdirSync(p, 0o700);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
    }
  }
}
