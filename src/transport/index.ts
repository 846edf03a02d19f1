/**
 * The transport layer: default transports per config type, the auth-aware fetch, shared undici dispatchers,
 * the SSRF guard, MCP over WebSocket, and MCP over stdio ending the server's whole process tree.
 * @module
 */
export type * from './types.js';
export * from './ssrf.js';
export * from './httpClient.js';
export * from './authFetch.js';
export * from './websocketClientTransport.js';
export * from './stdioClientTransport.js';
export * from './createTransport.js';
