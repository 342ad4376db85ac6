import { Global, Injectable, Module } from '@nestjs/common';
import type { EntityManager } from 'typeorm';

/** A table holding rows of one user, and the column that names the user. */
export interface UserTableRef {
  table: string;
  userColumn: string;
}

/**
 * One kind of a user's personal data, owned by the module that stores it. The same
 * registry drives export (collect) and erasure (erase + verify), so a table cannot
 * be exported but forgotten by erasure, or the other way round.
 */
export interface PersonalDataProvider {
  /** The data kind: a key of the export (`profile`, `consents`, ...). */
  readonly kind: string;
  /** Tables with rows of the user that erasure must leave empty (verification checks each). */
  readonly tables: readonly UserTableRef[];
  /** Erasure order: lower runs first (rows that reference others before what they reference). */
  readonly erasureOrder: number;
  /** The user's data in clear, for an export, read in the caller's transaction. */
  collect(m: EntityManager, userId: string): Promise<Array<Record<string, unknown>>>;
  /** Deletes the user's rows in the caller's (erasure) transaction; returns the rows deleted. */
  erase(m: EntityManager, userId: string): Promise<number>;
  /** After the erasure committed: what lives outside the database (cache entries, files). */
  afterErase?(userId: string): Promise<void>;
  /** Entries left outside the database (e.g. cache), for the verification report. */
  leftOutside?(userId: string): Promise<number>;
}

@Injectable()
export class PersonalDataRegistry {
  private readonly providers: PersonalDataProvider[] = [];

  register(...providers: PersonalDataProvider[]): void {
    for (const p of providers) {
      if (this.providers.some((q) => q.kind === p.kind)) {
        throw new Error(`personal data kind "${p.kind}" is registered twice`);
      }
      this.providers.push(p);
    }
  }

  /** In erasure order. */
  all(): PersonalDataProvider[] {
    return [...this.providers].sort((a, b) => a.erasureOrder - b.erasureOrder);
  }
}

/** Global: every module that stores personal data registers its providers here at init. */
@Global()
@Module({ providers: [PersonalDataRegistry], exports: [PersonalDataRegistry] })
export class PersonalDataModule {}
