/**
 * The MySQL wire protocol, pure: bytes in, messages out. No sockets, no
 * config, no logging. Imports only node:buffer, node:crypto and ../errors.
 */
export * from "./constants";
export * from "./codec";
export * from "./framer";
export * from "./packet-scanner";
export * from "./packets/handshake-v10";
export * from "./packets/handshake-response41";
export * from "./packets/auth-switch-request";
export * from "./packets/ok";
export * from "./packets/err";
export * from "./packets/commands";
export * from "./auth/mysql-native-password";
export * from "./auth/caching-sha2-password";
