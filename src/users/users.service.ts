import { Injectable } from '@nestjs/common';
import type { EntityManager } from 'typeorm';
import { AuditService } from '../audit/audit.service.js';
import { CacheService } from '../cache/cache.service.js';
import type { CacheType } from '../cache/cache.types.js';
import { PersonalDataCipher } from '../security/crypto/personal-data-cipher.js';
import { DomainError, ErrorCode, InvalidInputError, NotFoundError } from '../common/errors.js';
import { ReadRouterService } from '../database/read-router.service.js';
import type {
  CreateUserDto,
  ProfileResponseDto,
  PutProfileDto,
  PutTasteProfileDto,
  TasteProfileResponseDto,
  UserResponseDto,
} from './dto/user.dto.js';
import { ProfileRow, TasteProfileRow, UsersRepository } from './users.repository.js';

const UNIQUE_VIOLATION = '23505';

interface SealedEntry {
  sealed: string;
}
const MAX_PROFILE_BYTES = 16 * 1024;

/**
 * Users and profiles. Profiles and taste profiles are write-through cached
 * (spec: user_profiles 1 h, taste_profiles 4 h, event-driven invalidation).
 */
@Injectable()
export class UsersService {
  constructor(
    private readonly users: UsersRepository,
    private readonly router: ReadRouterService,
    private readonly cache: CacheService,
    private readonly audit: AuditService,
    private readonly cipher: PersonalDataCipher,
  ) {}

  /**
   * Cached personal data is sealed with the user's data key too: Redis may persist
   * it (AOF), and an erased user's stale entry can no longer be opened anywhere.
   */
  private async cachedRead<T>(
    type: CacheType,
    userId: string,
    load: () => Promise<T | null>,
  ): Promise<T | null> {
    if (this.cache.bypass(type)) {
      return load();
    }
    const entry = await this.cache.read<SealedEntry | null>(type, userId, async () => {
      const value = await load();
      return value === null ? null : this.sealEntry(type, userId, value);
    });
    return entry === null
      ? null
      : this.cipher.open<T>(userId, `cache:${type}`, Buffer.from(entry.sealed, 'base64'));
  }

  private async sealEntry(type: CacheType, userId: string, value: unknown): Promise<SealedEntry> {
    return {
      sealed: (await this.cipher.sealExisting(userId, `cache:${type}`, value)).toString('base64'),
    };
  }

  async create(dto: CreateUserDto): Promise<UserResponseDto> {
    try {
      const row = await this.router.write(async (m) => {
        const created = await this.users.create(m, dto.email, dto.displayName);
        await this.modified(m, created.id, 'users', 'create', ['email', 'displayName']);
        return created;
      });
      return {
        id: row.id,
        email: row.email,
        displayName: row.displayName,
        createdAt: new Date(row.createdAt).toISOString(),
      };
    } catch (err) {
      if ((err as { code?: string }).code === UNIQUE_VIOLATION) {
        throw new DomainError(ErrorCode.Conflict, 'a user with this email already exists');
      }
      throw err;
    }
  }

  async get(id: string): Promise<UserResponseDto> {
    const row = await this.users.getById(id);
    if (!row) {
      throw new NotFoundError('user', id);
    }
    this.audit.recordAccess(id, 'users');
    return {
      id: row.id,
      email: row.email,
      displayName: row.displayName,
      createdAt: new Date(row.createdAt).toISOString(),
    };
  }

  async getProfile(userId: string): Promise<ProfileResponseDto> {
    const load = async (): Promise<ProfileResponseDto | null> => {
      const row = await this.users.getProfile(userId);
      return row ? profileDto(row) : null;
    };
    const found = await this.cachedRead('user_profiles', userId, load);
    if (found) {
      this.audit.recordAccess(userId, 'user_profiles');
      return found;
    }
    await this.get(userId); // 404 for an unknown user
    return { userId, data: {}, version: 0, updatedAt: new Date(0).toISOString() };
  }

  /**
   * The write's precondition (If-Match) in its transaction, after the user's row is
   * locked: `expected` a version (0: none written yet) or `*` (one must exist).
   */
  private async checkVersion(
    m: EntityManager,
    table: 'user_profiles' | 'taste_profiles',
    userId: string,
    expected: number | '*' | undefined,
  ): Promise<void> {
    if (expected === undefined) {
      if (!(await this.users.exists(m, userId))) {
        throw new NotFoundError('user', userId);
      }
      return;
    }
    const current = await this.users.lockedVersion(m, table, userId);
    if (current === null) {
      throw new NotFoundError('user', userId);
    }
    const what = table === 'user_profiles' ? 'profile' : 'taste profile';
    if (expected === '*' && current === 0) {
      throw new DomainError(
        ErrorCode.PreconditionFailed,
        `user ${userId} has no ${what} yet (If-Match: *)`,
      );
    }
    if (expected !== '*' && expected !== current) {
      throw new DomainError(
        ErrorCode.PreconditionFailed,
        `the ${what} of user ${userId} is at version ${current}; re-read it and retry`,
      );
    }
  }

  async putProfile(
    userId: string,
    dto: PutProfileDto,
    expected?: number | '*',
  ): Promise<ProfileResponseDto> {
    if (Buffer.byteLength(JSON.stringify(dto.data)) > MAX_PROFILE_BYTES) {
      throw new InvalidInputError([
        { field: 'data', message: `data must be at most ${MAX_PROFILE_BYTES} bytes of JSON` },
      ]);
    }
    const row = await this.router.write(async (m) => {
      await this.checkVersion(m, 'user_profiles', userId, expected);
      const saved = await this.users.putProfile(m, userId, dto.data);
      await this.modified(m, userId, 'user_profiles', 'update', ['data']);
      return saved;
    });
    const result = profileDto(row);
    await this.cache.afterWrite(
      'user_profiles',
      userId,
      await this.sealEntry('user_profiles', userId, result),
    );
    return result;
  }

  async getTasteProfile(userId: string): Promise<TasteProfileResponseDto> {
    const load = async (): Promise<TasteProfileResponseDto | null> => {
      const row = await this.users.getTasteProfile(userId);
      return row ? tasteDto(row) : null;
    };
    const found = await this.cachedRead('taste_profiles', userId, load);
    if (found) {
      this.audit.recordAccess(userId, 'taste_profiles');
      return found;
    }
    await this.get(userId);
    return {
      userId,
      likedCuisines: [],
      likedIngredients: [],
      dislikes: [],
      hasEmbedding: false,
      version: 0,
      updatedAt: new Date(0).toISOString(),
    };
  }

  async putTasteProfile(
    userId: string,
    dto: PutTasteProfileDto,
    expected?: number | '*',
  ): Promise<TasteProfileResponseDto> {
    const row = await this.router.write(async (m) => {
      await this.checkVersion(m, 'taste_profiles', userId, expected);
      const saved = await this.users.putTasteProfile(m, userId, dto);
      await this.modified(m, userId, 'taste_profiles', 'update', [
        'likedCuisines',
        'likedIngredients',
        'dislikes',
        ...(dto.embedding ? ['embedding'] : []),
      ]);
      return saved;
    });
    const result = tasteDto(row);
    await this.cache.afterWrite(
      'taste_profiles',
      userId,
      await this.sealEntry('taste_profiles', userId, result),
    );
    return result;
  }

  /** `data_modifications`, in the writing transaction: field names only, never values. */
  private async modified(
    m: EntityManager,
    userId: string,
    resource: string,
    action: 'create' | 'update',
    fields: string[],
  ): Promise<void> {
    await this.audit.append(m, {
      eventType: 'data_modifications',
      subjectId: userId,
      resource,
      action,
      details: { fields },
    });
  }
}

function profileDto(row: ProfileRow): ProfileResponseDto {
  return {
    userId: row.userId,
    data: row.data,
    version: row.version,
    updatedAt: new Date(row.updatedAt).toISOString(),
  };
}

function tasteDto(row: TasteProfileRow): TasteProfileResponseDto {
  return {
    userId: row.userId,
    likedCuisines: row.likedCuisines,
    likedIngredients: row.likedIngredients,
    dislikes: row.dislikes,
    hasEmbedding: row.hasEmbedding,
    version: row.version,
    updatedAt: new Date(row.updatedAt).toISOString(),
  };
}
