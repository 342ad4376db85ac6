import type { FastifyReply } from 'fastify';
import { invalidRequest } from './errors.js';

/**
 * Conditional requests (RFC 9110 §13.1) on resources whose ETag is their version, `"N"`.
 * If-None-Match compares weakly (`W/"3"` matches `"3"`) and takes `*` or a list;
 * If-Match takes `*` or one version (`"3"`, `W/"3"` or `3`, as before).
 */

/** One entity tag, weak or strong; its opaque part captured. */
const ENTITY_TAG = /^(?:W\/)?"([\x21\x23-\x7e]*)"$/;

/** `If-Match: "3"`, `W/"3"` or `3` → 3; `*` → '*'; absent → undefined; anything else → 400. */
export function parseIfMatch(header: string | undefined): number | '*' | undefined {
  if (header === undefined) {
    return undefined;
  }
  const value = header.trim();
  if (value === '*') {
    return '*';
  }
  const m = /^(?:W\/)?"?(\d{1,9})"?$/.exec(value);
  if (!m) {
    throw invalidRequest({
      field: 'If-Match',
      message:
        'If-Match must be * or the version as its ETag gives it, e.g. "3" (one version, not a list)',
    });
  }
  return Number(m[1]);
}

/**
 * Whether `If-None-Match` matches the current `etag` (then a GET answers 304): `*`
 * matches any current representation, a list matches when one of its tags does. A
 * malformed header never matches (the GET answers in full).
 */
export function noneMatch(header: string | undefined, etag: string): boolean {
  if (header === undefined) {
    return false;
  }
  const value = header.trim();
  if (value === '*') {
    return true;
  }
  const current = ENTITY_TAG.exec(etag)?.[1];
  return value.split(',').some((part) => ENTITY_TAG.exec(part.trim())?.[1] === current);
}

/** Sets `ETag: "<version>"` on the answer; returns the resource. */
export function tagged<T extends { version: number }>(reply: FastifyReply, resource: T): T {
  void reply.header('etag', `"${resource.version}"`);
  return resource;
}

/**
 * The resource with its ETag, or a web Response with status 304 when If-None-Match holds
 * that ETag (a web Response is the whole answer: its status wins over the route's 200).
 */
export function versionedAnswer<T extends { version: number }>(
  reply: FastifyReply,
  resource: T,
  ifNoneMatch: string | undefined,
): T | Response {
  const etag = `"${resource.version}"`;
  tagged(reply, resource);
  return noneMatch(ifNoneMatch, etag)
    ? new Response(null, { status: 304, headers: { etag } })
    : resource;
}
