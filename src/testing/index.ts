/**
 * The test kit: real MCP servers and a real OIDC provider on loopback, for testing host apps.
 * Import from `mcp-switchboard/testing`. The helpers that need the optional packages `oidc-provider`
 * ({@link startTestIdp}) and `ws` ({@link startWebSocketMcpServer}) import them on first use; when one is not
 * installed, that helper rejects with a {@link MissingOptionalDependencyError} naming the package.
 * @module mcp-switchboard/testing
 */
export {};
export * from './websocketServer.js';
export * from './testIdp.js';
export * from './testMcpServer.js';
export * from './inMemory.js';
export * from './memoryCoordinator.js';
export { MissingOptionalDependencyError } from './optional.js';
