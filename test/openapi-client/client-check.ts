/**
 * A small caller written against the client types generated from /docs-json: if the
 * document loses a route, a field or a type, this stops compiling. Type-checked (not run)
 * by test/openapi.e2e-spec.ts; excluded from the project's own tsconfig and lint.
 */
import createClient from 'openapi-fetch';
import type { paths } from './schema.js';

const client = createClient<paths>({
  baseUrl: 'http://localhost:3000',
  headers: { authorization: 'Bearer api-key' },
});

export async function createUserAndRecipe(): Promise<string> {
  const user = await client.POST('/v1/users', {
    body: { email: 'ada@example.com', displayName: 'Ada' },
  });
  if (user.error) {
    const message: string = user.error.message;
    const fields: string[] = (user.error.errors ?? []).map((e) => e.field);
    throw new Error(`${message} (${fields.join(', ')})`);
  }
  const authorId: string = user.data.id;
  const created = await client.POST('/v1/recipes', {
    body: {
      title: 'Soup',
      ingredients: ['water'],
      steps: ['boil'],
      cuisine: 'french',
      totalMinutes: 10,
      authorId,
    },
    params: { header: { 'Idempotency-Key': 'create-soup-1' } },
  });
  if (!created.data) {
    throw new Error(created.error.message);
  }
  const read = await client.GET('/v1/recipes/{id}', {
    params: { path: { id: created.data.id }, header: { 'x-consistency': 'strong' } },
  });
  const version: number | undefined = read.data?.version;
  const page = await client.GET('/v1/recipes', {
    params: { query: { cuisine: 'french', limit: 5 } },
  });
  const next: string | null | undefined = page.data?.nextCursor;
  const titles: string[] = page.data?.items.map((r) => r.title) ?? [];
  return `${version ?? '?'} ${next ?? 'end'} ${titles.join(',')}`;
}
