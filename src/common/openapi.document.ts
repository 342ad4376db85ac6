import type { OpenAPIObject, OperationObject, ParameterObject } from '@nestjs/swagger';

const MUTATING = new Set(['post', 'put', 'patch', 'delete']);

const REQUEST_ID_PARAMETER: ParameterObject = {
  name: 'x-request-id',
  in: 'header',
  required: false,
  schema: { type: 'string', pattern: '^[A-Za-z0-9._:-]{1,128}$' },
  description: 'echoed in the answer (and in every log line) when sane; else a fresh UUID',
};

/**
 * What the Fastify hooks in `configureApp` do to every request, added to every operation
 * of the document (decorators cannot see hooks): `x-request-id` in and out, and the
 * `x-write-lsn` a successful write answers for read-your-writes.
 */
export function completeOpenApiDocument(doc: OpenAPIObject): OpenAPIObject {
  for (const item of Object.values(doc.paths)) {
    for (const [method, op] of Object.entries(item) as Array<[string, OperationObject]>) {
      if (typeof op !== 'object' || op === null || !('responses' in op)) {
        continue;
      }
      op.parameters = [...(op.parameters ?? []), REQUEST_ID_PARAMETER];
      for (const [status, response] of Object.entries(op.responses)) {
        if (!response || '$ref' in response) {
          continue;
        }
        response.headers = {
          ...response.headers,
          'x-request-id': { description: 'the request id', schema: { type: 'string' } },
        };
        if (MUTATING.has(method) && status.startsWith('2')) {
          response.headers['x-write-lsn'] = {
            description:
              'the writer position after this request: send it back on reads for read-your-writes',
            schema: { type: 'string' },
          };
        }
      }
    }
  }
  return doc;
}
