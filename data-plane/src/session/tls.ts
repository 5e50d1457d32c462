import { Buffer } from "node:buffer";
import { createPrivateKey, createPublicKey, generateKeyPairSync } from "node:crypto";
import * as fs from "node:fs";
import type * as net from "node:net";
import * as tls from "node:tls";
import { BackendTls_Mode, type BackendTls } from "@mysqlgw/proto";
import { TlsConfigError } from "../errors";
import type { RsaKeyPair } from "./client-auth";

/**
 * TLS and RSA material of a data-plane process: the certificate clients see,
 * the RSA key pair of caching_sha2_password, and per-cluster backend TLS.
 * Files are read once (startup, or config apply for backend CAs).
 */

/** Deployment flags naming the files; all optional. */
export interface SecurityFiles {
  tlsCertFile?: string;
  tlsKeyFile?: string;
  tlsCaFile?: string;
  rsaPrivateKeyFile?: string;
  rsaPublicKeyFile?: string;
}

function readFile(file: string, what: string, flag: string): Buffer {
  try {
    return fs.readFileSync(file);
  } catch (err) {
    throw new TlsConfigError(`cannot read the ${what} ${file} given by ${flag}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`, { cause: err });
  }
}

/** Server-side TLS toward clients, or null when --tls-cert/--tls-key are not given. */
export interface ClientTls {
  readonly context: tls.SecureContext;
  /** Ask clients for a certificate (a --tls-ca was given); never required. */
  readonly requestCert: boolean;
}

export function loadClientTls(f: SecurityFiles): ClientTls | null {
  if (!f.tlsCertFile && !f.tlsKeyFile) {
    if (f.tlsCaFile) throw new TlsConfigError("--tls-ca needs --tls-cert and --tls-key");
    return null;
  }
  if (!f.tlsCertFile || !f.tlsKeyFile) throw new TlsConfigError("TLS toward clients needs both --tls-cert and --tls-key");
  const cert = readFile(f.tlsCertFile, "certificate", "--tls-cert");
  const key = readFile(f.tlsKeyFile, "private key", "--tls-key");
  const ca = f.tlsCaFile ? readFile(f.tlsCaFile, "CA certificate", "--tls-ca") : undefined;
  try {
    return { context: tls.createSecureContext({ cert, key, ca, minVersion: "TLSv1.2" }), requestCert: ca !== undefined };
  } catch (err) {
    throw new TlsConfigError(`--tls-cert/--tls-key cannot be used: ${(err as Error).message}`, { cause: err });
  }
}

/** Loads the RSA pair from files, or generates a 2048-bit one for this process. */
export function loadRsaKeyPair(f: SecurityFiles): RsaKeyPair {
  if (!f.rsaPrivateKeyFile && f.rsaPublicKeyFile) throw new TlsConfigError("--rsa-public-key needs --rsa-private-key");
  let privateKey;
  let publicPem: Buffer;
  if (f.rsaPrivateKeyFile) {
    try {
      privateKey = createPrivateKey(readFile(f.rsaPrivateKeyFile, "RSA private key", "--rsa-private-key"));
      const pub = f.rsaPublicKeyFile ? createPublicKey(readFile(f.rsaPublicKeyFile, "RSA public key", "--rsa-public-key")) : createPublicKey(privateKey);
      publicPem = Buffer.from(pub.export({ type: "spki", format: "pem" }));
    } catch (err) {
      if (err instanceof TlsConfigError) throw err;
      throw new TlsConfigError(`--rsa-private-key/--rsa-public-key cannot be used: ${(err as Error).message}`, { cause: err });
    }
    if (privateKey.asymmetricKeyType !== "rsa") throw new TlsConfigError("--rsa-private-key must be an RSA key");
  } else {
    const pair = generateKeyPairSync("rsa", { modulusLength: 2048 });
    privateKey = pair.privateKey;
    publicPem = Buffer.from(pair.publicKey.export({ type: "spki", format: "pem" }));
  }
  const bits = privateKey.asymmetricKeyDetails?.modulusLength ?? 2048;
  return { publicKeyPem: publicPem, privateKey, modulusBytes: Math.ceil(bits / 8) };
}

/** Wraps an accepted client socket after its SSLRequest (server side). */
export function upgradeClientSocket(socket: net.Socket, t: ClientTls): tls.TLSSocket {
  return new tls.TLSSocket(socket, { isServer: true, secureContext: t.context, requestCert: t.requestCert, rejectUnauthorized: false });
}

/** Backend TLS of one cluster, compiled at config apply. */
export interface BackendTlsSettings {
  readonly mode: "required" | "verify-ca" | "verify-identity";
  /** Contents of ca_file (verify modes). */
  readonly ca: Buffer | null;
  readonly serverName: string;
  /** Why this cluster's TLS cannot be used on this data plane (e.g. unreadable ca_file), else null. */
  readonly error: string | null;
}

/** null for plain TCP (no tls, MODE_UNSPECIFIED or MODE_DISABLED). */
export function compileBackendTls(t: BackendTls | undefined): BackendTlsSettings | null {
  if (t === undefined) return null;
  let mode: BackendTlsSettings["mode"];
  switch (t.mode) {
    case BackendTls_Mode.REQUIRED:
      mode = "required";
      break;
    case BackendTls_Mode.VERIFY_CA:
      mode = "verify-ca";
      break;
    case BackendTls_Mode.VERIFY_IDENTITY:
      mode = "verify-identity";
      break;
    default:
      return null;
  }
  let ca: Buffer | null = null;
  let error: string | null = null;
  if (t.caFile !== "") {
    try {
      ca = fs.readFileSync(t.caFile);
    } catch (err) {
      error = `tls.caFile ${t.caFile} cannot be read on this data plane (${(err as NodeJS.ErrnoException).code ?? String(err)})`;
    }
  } else if (mode !== "required") {
    error = "tls.caFile is required in VERIFY_CA and VERIFY_IDENTITY modes";
  }
  return { mode, ca, serverName: t.serverName, error };
}

/** Options for tls.connect over an already connected backend socket. */
export function backendTlsOptions(s: BackendTlsSettings, socket: net.Socket, host: string): tls.ConnectionOptions {
  const servername = s.serverName || host;
  const opts: tls.ConnectionOptions = {
    socket,
    rejectUnauthorized: s.mode !== "required",
    ca: s.ca ?? undefined,
    minVersion: "TLSv1.2",
  };
  // SNI only for names (not IP literals), as Node requires
  if (!/^[\d.]+$|:/.test(servername)) opts.servername = servername;
  if (s.mode === "verify-ca") opts.checkServerIdentity = () => undefined;
  else if (s.mode === "verify-identity") opts.checkServerIdentity = (_h, cert) => tls.checkServerIdentity(servername, cert);
  return opts;
}
