/**
 * jest for a TypeScript host app testing with mcp-switchboard (an ESM-only package): ts-jest emitting ES
 * modules, run by node with --experimental-vm-modules (see "test" in package.json).
 * @type {import('jest').Config}
 */
export default {
  testEnvironment: 'node',
  extensionsToTreatAsEsm: ['.ts'],
  // Your sources import './x.js' (NodeNext style): jest must find './x.ts'.
  moduleNameMapper: { '^(\\.{1,2}/.*)\\.js$': '$1' },
  transform: { '^.+\\.ts$': ['ts-jest', { useESM: true }] },
};
