import { defineConfig } from 'vitest/config';

// vitest runs ES modules natively: nothing to configure for mcp-switchboard beyond the node environment.
// `globals: true` gives the jest-style describe / it / expect used by the same test files.
export default defineConfig({
  test: { environment: 'node', globals: true },
});
