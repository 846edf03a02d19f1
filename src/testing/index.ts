/**
 * The test kit: real MCP servers and a real OIDC provider on loopback, for testing host apps.
 * Import from `mcp-switchboard/testing`. Needs the dev dependencies `oidc-provider` and `ws` where noted.
 * @module mcp-switchboard/testing
 */
export {};
export * from './websocketServer.js';
export * from './testIdp.js';
export * from './testMcpServer.js';
export * from './inMemory.js';
