import * as fs from "node:fs";

/**
 * TLS toward etcd (--etcd-ca, --etcd-cert, --etcd-key): set once at start,
 * spread into every etcd3 client of this process (`new Etcd3({ ...,
 * ...etcdSecurityOptions() })`). With a client certificate, an etcd started
 * with --client-cert-auth knows who connects (and with etcd's auth enabled,
 * the certificate's CN is the etcd user).
 */
export interface EtcdTlsFiles {
  /** PEM of the CA that signed etcd's server certificate. */
  ca?: string;
  /** PEM client certificate and key (etcd --client-cert-auth). */
  cert?: string;
  key?: string;
}

interface EtcdCredentials {
  rootCertificate: Buffer;
  privateKey?: Buffer;
  certChain?: Buffer;
}

let credentials: EtcdCredentials | null = null;

/**
 * Reads the files and makes every etcd client made afterwards use them; throws
 * an Error saying which file cannot be read. `{}`: plain etcd3 behaviour.
 */
export function setEtcdTls(files: EtcdTlsFiles): void {
  if (files.ca === undefined && files.cert === undefined && files.key === undefined) {
    credentials = null;
    return;
  }
  if ((files.cert === undefined) !== (files.key === undefined)) throw new Error("--etcd-cert and --etcd-key go together; pass both");
  if (files.ca === undefined) throw new Error("--etcd-cert needs --etcd-ca (the CA that signed etcd's certificate)");
  const read = (flag: string, file: string): Buffer => {
    try {
      return fs.readFileSync(file);
    } catch (err) {
      throw new Error(`${flag} ${file} cannot be read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
    }
  };
  credentials = {
    rootCertificate: read("--etcd-ca", files.ca),
    ...(files.cert === undefined ? {} : { certChain: read("--etcd-cert", files.cert), privateKey: read("--etcd-key", files.key!) }),
  };
}

/** The same files as node:https options, for requests of our own to etcd's https:// client URL (etcd-probe.ts). */
export function etcdHttpsOptions(): { ca?: Buffer; cert?: Buffer; key?: Buffer } {
  if (credentials === null) return {};
  return { ca: credentials.rootCertificate, ...(credentials.certChain === undefined ? {} : { cert: credentials.certChain, key: credentials.privateKey }) };
}

/** What every `new Etcd3({...})` of this process spreads in: `{ credentials }` once setEtcdTls() was given files, else nothing. */
export function etcdSecurityOptions(): { credentials?: EtcdCredentials } {
  return credentials === null ? {} : { credentials };
}
