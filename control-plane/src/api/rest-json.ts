import { create, fromJson, toJson, type DescMessage, type JsonValue, type MessageInitShape, type MessageShape } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import type { ConnectNodeAdapterOptions } from "@connectrpc/connect-node";
import { MgwError } from "../errors";

/** The request/response types connect-node hands to its fallback (http1 or http2 compat). */
export type NodeHandler = NonNullable<ConnectNodeAdapterOptions["fallback"]>;
export type Req = Parameters<NodeHandler>[0];
export type Res = Parameters<NodeHandler>[1];

/**
 * The request message of a REST call from its JSON body (proto3 JSON mapping,
 * unknown fields refused; an empty body is the empty message). A body over
 * `maxBytes` is refused with `tooLarge` (what to do about it).
 */
export async function readJsonMessage<D extends DescMessage>(req: Req, schema: D, maxBytes: number, tooLarge: string): Promise<MessageShape<D>> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > maxBytes) throw new ConnectError(`request body is over ${maxBytes} bytes; ${tooLarge}`, Code.ResourceExhausted);
    chunks.push(chunk);
  }
  const text = Buffer.concat(chunks).toString("utf8");
  let json: JsonValue;
  try {
    json = text.trim() === "" ? {} : (JSON.parse(text) as JsonValue);
  } catch (err) {
    throw new MgwError("MGW_ERR_API_BAD_REQUEST", `request body is not JSON (${(err as Error).message}); send the ${schema.typeName} message as JSON`);
  }
  try {
    return fromJson(schema, json, { ignoreUnknownFields: false });
  } catch (err) {
    throw new MgwError("MGW_ERR_API_BAD_REQUEST", `request body is not a valid ${schema.typeName}: ${(err as Error).message}; see docs/api.md for the JSON shape`);
  }
}

/** A response message as JSON, every field present. */
export function sendMessage<D extends DescMessage>(res: Res, schema: D, value: MessageInitShape<D>, status = 200): void {
  sendJson(res, status, toJson(schema, create(schema, value), { alwaysEmitImplicit: true }));
}

export function sendJson(res: Res, status: number, body: JsonValue): void {
  const text = JSON.stringify(body, null, 2) + "\n";
  res.writeHead(status, { "content-type": "application/json; charset=utf-8", "content-length": Buffer.byteLength(text) });
  res.end(text);
}
