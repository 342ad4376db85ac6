/** Jest in native ESM mode (NestJS 12 ships ESM only); see scripts/test.sh. */
const common = {
  testEnvironment: 'node',
  extensionsToTreatAsEsm: ['.ts'],
  moduleNameMapper: { '^(\\.{1,2}/.*)\\.js$': '$1' },
  transform: { '^.+\\.ts$': ['ts-jest', { useESM: true }] },
  // the CDK app has its own jest (infra/jest.config.js); its cdk.out holds a copy of package.json
  modulePathIgnorePatterns: ['<rootDir>/infra/'],
};

export default {
  testTimeout: 90_000,
  projects: [
    {
      ...common,
      displayName: 'unit',
      testMatch: ['<rootDir>/src/**/*.spec.ts'],
    },
    {
      ...common,
      displayName: 'e2e',
      testMatch: ['<rootDir>/test/**/*.e2e-spec.ts'],
      globalSetup: '<rootDir>/test/support/global-setup.mjs',
      setupFiles: ['<rootDir>/test/support/setup-logger.ts'],
      globalTeardown: '<rootDir>/test/support/global-teardown.mjs',
      slowTestThreshold: 30,
    },
    {
      // run by scripts/test.sh after the whole suite (it reads the logs the suite wrote)
      ...common,
      displayName: 'final',
      testMatch: ['<rootDir>/test/**/*.final-spec.ts'],
    },
  ],
};
