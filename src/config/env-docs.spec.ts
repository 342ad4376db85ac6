import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { getMetadataStorage } from 'class-validator';
import { EnvironmentVariables } from './env.schema.js';

const REPO = join(import.meta.dirname, '..', '..');

/** Every variable the schema validates (each one carries at least one validator). */
function schemaVariables(): string[] {
  const metadata = getMetadataStorage().getTargetValidationMetadatas(
    EnvironmentVariables,
    '',
    true,
    false,
  );
  return [...new Set(metadata.map((m) => m.propertyName))].sort();
}

/** The variables named in the first column of README's "Configuration" table. */
function readmeVariables(): string[] {
  const readme = readFileSync(join(REPO, 'README.md'), 'utf8');
  const section = readme.slice(readme.indexOf('\n## Configuration'));
  const table = section.slice(0, section.indexOf('\n## ', 1));
  const names = new Set<string>();
  for (const line of table.split('\n')) {
    const first = /^\|([^|]*)\|/.exec(line)?.[1] ?? '';
    for (const m of first.matchAll(/`([A-Z][A-Z0-9_]*)`/g)) {
      names.add(m[1]);
    }
  }
  return [...names].sort();
}

/** The variables `.env.example` sets or shows commented out. */
function envExampleVariables(): string[] {
  const text = readFileSync(join(REPO, '.env.example'), 'utf8');
  return [...new Set([...text.matchAll(/^#?\s?([A-Z][A-Z0-9_]*)=/gm)].map((m) => m[1]))].sort();
}

describe('configuration documentation', () => {
  it('finds the schema and the README table', () => {
    expect(schemaVariables().length).toBeGreaterThan(50);
    expect(readmeVariables().length).toBeGreaterThan(50);
  });

  it("names every schema variable in README's configuration table, and nothing else", () => {
    expect(readmeVariables()).toEqual(schemaVariables());
  });

  it('lists every schema variable in .env.example, and nothing else', () => {
    expect(envExampleVariables()).toEqual(schemaVariables());
  });
});
