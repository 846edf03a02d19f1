/**
 * The transport layer: default transports per config type, the auth-aware fetch, shared undici dispatchers,
 * the SSRF guard, and MCP over WebSocket.
 * @module
 */
export type * from './types.js';
export * from './ssrf.js';
export * from './httpClient.js';
export * from './authFetch.js';
export * from './websocketClientTransport.js';
export * from './createTransport.js';
