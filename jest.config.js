/**
 * Jest runs the TypeScript sources as native ESM (openid-client, jose and oidc-provider are ESM-only).
 * Type checking is `npm run lint`'s job; swc only strips the types here, which keeps the suite fast.
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
    // swc strips the types (type checking is `npm run lint`'s job): a cold run (every CI run) took 84 s against
    // ts-jest's 89 s.
    '^.+\\.ts$': ['@swc/jest', { jsc: { parser: { syntax: 'typescript' }, target: 'es2022' }, module: { type: 'es6' }, sourceMaps: 'inline' }],
  },
  // Figures go to reports/test-figures.txt (__tests__/support/report.ts), never the console; emptied per run.
  globalSetup: '<rootDir>/__tests__/support/reportSetup.js',
  // Slowest files first when there are no timings of earlier runs (see the file).
  testSequencer: '<rootDir>/__tests__/support/sequencer.cjs',
  testTimeout: 30000,
  maxWorkers: 2,
};
