/**
 * Jest runs the TypeScript sources as native ESM (openid-client, jose and oidc-provider are ESM-only).
 * Type checking is `npm run lint`'s job; ts-jest only transpiles here, which keeps the suite fast.
 * @type {import('jest').Config}
 */
export default {
  testEnvironment: 'node',
  extensionsToTreatAsEsm: ['.ts'],
  roots: ['<rootDir>/__tests__'],
  testMatch: ['**/*.test.ts'],
  // Long runs (a 60 s credential day, 1,000-user bursts) are `npm run soak`, not `npm test`.
  testPathIgnorePatterns: ['/node_modules/', '/__tests__/soak/'],
  moduleNameMapper: {
    '^(\\.{1,2}/.*)\\.js$': '$1',
  },
  transform: {
    '^.+\\.ts$': ['ts-jest', { useESM: true, tsconfig: 'tsconfig.json' }],
  },
  // Figures go to reports/test-figures.txt (__tests__/support/report.ts), never the console; emptied per run.
  globalSetup: '<rootDir>/__tests__/support/reportSetup.js',
  testTimeout: 30000,
  maxWorkers: 2,
};
