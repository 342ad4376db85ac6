// pg-copy-streams ships no types; this covers the one function the benchmark uses.
declare module 'pg-copy-streams' {
  import type { Writable } from 'node:stream';
  import type { Submittable } from 'pg';

  export interface CopyStreamQuery extends Writable, Submittable {
    rowCount: number;
  }

  /** `COPY ... FROM STDIN`: write the COPY payload into the returned stream. */
  export function from(text: string): CopyStreamQuery;
}
