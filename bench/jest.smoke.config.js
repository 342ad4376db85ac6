/**
 * The bench smoke test (`npm run test:bench-smoke`, a CI step of its own): every
 * `npm run bench:*` in a short mode. Not part of `npm test`, which stays under 15 minutes.
 */
import { fileURLToPath } from 'node:url';
import base from '../jest.config.js';

const root = fileURLToPath(new URL('..', import.meta.url));

const e2e = base.projects.find((p) => p.displayName === 'e2e');

export default {
  rootDir: root,
  testTimeout: base.testTimeout,
  projects: [
    {
      ...e2e,
      rootDir: root,
      displayName: 'bench-smoke',
      testMatch: ['<rootDir>/test/**/*.smoke-spec.ts'],
    },
  ],
};
