import { ConsoleLogger, Logger, LoggerService } from '@nestjs/common';
import { hkdfSync, randomBytes } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import type { AppConfig, CryptoConfig } from '../../config/app-config.js';
import type { KmsProvider } from './kms.js';
import { DecryptionError } from './kms.js';
import { piiHashKeyFrom } from './kms.factory.js';
import type { LocalKeyFile } from './local-kms.provider.js';
import { LocalKmsProvider, rotateLocalKeyFile } from './local-kms.provider.js';

const CONTEXT = { subject: 'user-42', purpose: 'pii' };
const b64 = (bytes: Buffer) => bytes.toString('base64');

describe(LocalKmsProvider.name, () => {
  let dir: string;
  let keyFile: string;
  const logged: string[] = [];

  const capture: LoggerService = {
    log: (m: unknown) => logged.push(String(m)),
    error: (m: unknown) => logged.push(String(m)),
    warn: (m: unknown) => logged.push(String(m)),
    debug: (m: unknown) => logged.push(String(m)),
    verbose: (m: unknown) => logged.push(String(m)),
  };

  const localConfig = (overrides: Partial<CryptoConfig['local']> = {}): CryptoConfig['local'] => ({
    keyFile,
    keys: undefined,
    currentVersion: undefined,
    ...overrides,
  });

  const fromFile = (env: AppConfig['env'] = 'development') =>
    new LocalKmsProvider(localConfig(), env);

  const readKeyFile = async () => JSON.parse(await readFile(keyFile, 'utf8')) as LocalKeyFile;

  beforeAll(() => {
    Logger.overrideLogger(capture);
  });

  afterAll(() => {
    Logger.overrideLogger(new ConsoleLogger());
  });

  beforeEach(async () => {
    logged.length = 0;
    dir = await mkdtemp(join(tmpdir(), 'dbu-kms-'));
    keyFile = join(dir, 'secrets', 'kms-keys.json');
  });

  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  describe('key file', () => {
    it.each(['development', 'test'] as const)(
      'is created with mode 0600 in %s, and the warning names the path but no key',
      async (env) => {
        const provider = fromFile(env);

        expect((await stat(keyFile)).mode & 0o777).toBe(0o600);
        const file = await readKeyFile();
        expect(file.current).toBe('v1');
        expect(Buffer.from(file.keys.v1, 'base64')).toHaveLength(32);
        expect(Buffer.from(file.hashKey ?? '', 'base64')).toHaveLength(32);
        expect(provider.currentKeyId()).toBe('local:v1');

        expect(logged.some((line) => line.includes(keyFile))).toBe(true);
        for (const secret of [file.keys.v1, file.hashKey ?? '']) {
          expect(logged.join('\n')).not.toContain(secret);
        }
        expect(await readdir(dirname(keyFile))).toEqual(['kms-keys.json']);
      },
    );

    it('is refused when missing in production, and not created', async () => {
      expect(() => fromFile('production')).toThrow(/does not exist/);
      await expect(stat(keyFile)).rejects.toThrow(/ENOENT/);
    });

    it('is reused, not replaced, by a second provider', async () => {
      fromFile();
      const before = await readFile(keyFile, 'utf8');
      fromFile('production');
      expect(await readFile(keyFile, 'utf8')).toBe(before);
    });

    it('reports a corrupt file without quoting it', async () => {
      fromFile();
      const file = await readKeyFile();
      await writeFile(keyFile, (await readFile(keyFile, 'utf8')).replace('}', ''));
      expect(() => fromFile()).toThrow(`key file ${keyFile} is not valid JSON`);
      expect(() => fromFile()).not.toThrow(file.keys.v1);
    });
  });

  it('wraps and unwraps a data key under the current version', async () => {
    const provider = fromFile();
    const { plaintext, wrapped } = await provider.generateDataKey(CONTEXT);

    expect(plaintext).toHaveLength(32);
    expect(wrapped.keyId).toBe('local:v1');
    expect(wrapped.ciphertext.includes(plaintext)).toBe(false);
    await expect(provider.decryptDataKey(wrapped, CONTEXT)).resolves.toEqual(plaintext);
    // The context is canonicalised: key order does not matter.
    await expect(
      provider.decryptDataKey(wrapped, { purpose: 'pii', subject: 'user-42' }),
    ).resolves.toEqual(plaintext);
  });

  it.each([
    ['another subject', { subject: 'user-43', purpose: 'pii' }],
    ['an extra entry', { ...CONTEXT, extra: '1' }],
    ['a missing entry', { subject: 'user-42' }],
    ['no context', {}],
  ])('refuses to unwrap with %s', async (_, context) => {
    const provider = fromFile();
    const { wrapped } = await provider.generateDataKey(CONTEXT);
    await expect(provider.decryptDataKey(wrapped, context)).rejects.toBeInstanceOf(DecryptionError);
  });

  it('refuses tampered ciphertext and foreign key ids', async () => {
    const provider = fromFile();
    const { wrapped } = await provider.generateDataKey(CONTEXT);
    const tampered = Buffer.from(wrapped.ciphertext);
    tampered[tampered.length - 1] ^= 1;

    await expect(
      provider.decryptDataKey({ ...wrapped, ciphertext: tampered }, CONTEXT),
    ).rejects.toBeInstanceOf(DecryptionError);
    await expect(
      provider.decryptDataKey({ ...wrapped, keyId: 'arn:aws:kms:eu-west-1:1:key/x' }, CONTEXT),
    ).rejects.toBeInstanceOf(DecryptionError);
  });

  it('names an unknown version, and no key bytes, in the error', async () => {
    const provider = fromFile();
    const { wrapped } = await provider.generateDataKey(CONTEXT);
    const file = await readKeyFile();

    const failure = provider.decryptDataKey({ ...wrapped, keyId: 'local:v9' }, CONTEXT);
    await expect(failure).rejects.toThrow(
      new DecryptionError('unknown local master key version v9'),
    );
    await expect(failure).rejects.not.toThrow(file.keys.v1);
  });

  describe(rotateLocalKeyFile.name, () => {
    it('adds v2 as current; v1 keys still open, new keys use v2, rewrap moves to v2', async () => {
      const before = fromFile();
      const old = await before.generateDataKey(CONTEXT);
      const hashKey = before.hashKey();

      await expect(rotateLocalKeyFile(keyFile)).resolves.toEqual({ previous: 'v1', current: 'v2' });
      expect((await stat(keyFile)).mode & 0o777).toBe(0o600);
      expect(await readdir(dirname(keyFile))).toEqual(['kms-keys.json']);
      const file = await readKeyFile();
      expect(Object.keys(file.keys).sort()).toEqual(['v1', 'v2']);
      expect(file.current).toBe('v2');

      const after = fromFile();
      expect(after.currentKeyId()).toBe('local:v2');
      await expect(after.decryptDataKey(old.wrapped, CONTEXT)).resolves.toEqual(old.plaintext);

      const fresh = await after.generateDataKey(CONTEXT);
      expect(fresh.wrapped.keyId).toBe('local:v2');

      const moved = await after.rewrap(old.wrapped, CONTEXT);
      expect(moved.keyId).toBe('local:v2');
      expect(moved.ciphertext.equals(old.wrapped.ciphertext)).toBe(false);
      await expect(after.decryptDataKey(moved, CONTEXT)).resolves.toEqual(old.plaintext);

      // A provider loaded before the rotation picks v2 up when it meets it.
      await expect(before.decryptDataKey(fresh.wrapped, CONTEXT)).resolves.toEqual(fresh.plaintext);
      expect(before.currentKeyId()).toBe('local:v2');

      expect(after.hashKey()).toEqual(hashKey);
      await expect(rotateLocalKeyFile(keyFile)).resolves.toEqual({ previous: 'v2', current: 'v3' });
    });

    it('leaves a file it cannot parse untouched', async () => {
      fromFile();
      const corrupt = (await readFile(keyFile, 'utf8')).replace('}', '');
      await writeFile(keyFile, corrupt);

      await expect(rotateLocalKeyFile(keyFile)).rejects.toThrow(/is not valid JSON/);
      expect(await readFile(keyFile, 'utf8')).toBe(corrupt);
      expect(await readdir(dirname(keyFile))).toEqual(['kms-keys.json']);
    });
  });

  describe('inline keys', () => {
    const v1 = randomBytes(32);
    const v2 = randomBytes(32);

    it('use the highest version unless one is configured, and open each other’s keys', async () => {
      const onlyV1 = new LocalKmsProvider(localConfig({ keys: `v1:${b64(v1)}` }), 'production');
      const both = new LocalKmsProvider(
        localConfig({ keys: `v1:${b64(v1)}, v2:${b64(v2)}` }),
        'production',
      );
      const pinned = new LocalKmsProvider(
        localConfig({ keys: `v2:${b64(v2)},v1:${b64(v1)}`, currentVersion: 'v1' }),
        'production',
      );

      expect(both.currentKeyId()).toBe('local:v2');
      expect(pinned.currentKeyId()).toBe('local:v1');
      const old = await onlyV1.generateDataKey(CONTEXT);
      await expect(both.decryptDataKey(old.wrapped, CONTEXT)).resolves.toEqual(old.plaintext);
      const moved = await both.rewrap(old.wrapped, CONTEXT);
      expect(moved.keyId).toBe('local:v2');
      await expect(onlyV1.decryptDataKey(moved, CONTEXT)).rejects.toThrow(/version v2/);

      // No key file is involved.
      await expect(stat(keyFile)).rejects.toThrow(/ENOENT/);
    });

    it('derive a hash key from v1 that survives rotation', () => {
      const expected = Buffer.from(hkdfSync('sha256', v1, Buffer.alloc(0), 'dbu-pii-hash', 32));
      const onlyV1 = new LocalKmsProvider(localConfig({ keys: `v1:${b64(v1)}` }), 'production');
      const both = new LocalKmsProvider(
        localConfig({ keys: `v1:${b64(v1)},v2:${b64(v2)}` }),
        'production',
      );
      expect(onlyV1.hashKey()).toEqual(expected);
      expect(both.hashKey()).toEqual(expected);
      const withoutV1 = new LocalKmsProvider(localConfig({ keys: `v2:${b64(v2)}` }), 'production');
      expect(() => withoutV1.hashKey()).toThrow(/PII_HASH_KEY/);
    });

    it.each([
      ['a short key', `v1:${b64(randomBytes(16))}`, undefined, /v1 must be base64 of 32 bytes/],
      ['a bad version', `k1:${b64(v1)}`, undefined, /entry #1 is not/],
      ['no separator', b64(v1), undefined, /entry #1 is not/],
      ['a duplicate', `v1:${b64(v1)},v1:${b64(v2)}`, undefined, /lists v1 twice/],
      [
        'an unknown current version',
        `v1:${b64(v1)}`,
        'v3',
        /v3 is not among the local keys \(v1\)/,
      ],
    ])('reject %s without echoing key material', (_, keys, currentVersion, message) => {
      const create = () =>
        new LocalKmsProvider(localConfig({ keys, currentVersion }), 'production');
      expect(create).toThrow(message);
      expect(create).not.toThrow(b64(v1));
    });
  });
});

describe(piiHashKeyFrom.name, () => {
  const config = (provider: CryptoConfig['provider'], piiHashKey: string | undefined): AppConfig =>
    ({
      env: 'production',
      crypto: {
        provider,
        local: {
          keyFile: '/nonexistent',
          keys: `v1:${b64(randomBytes(32))}`,
          currentVersion: undefined,
        },
        aws: { keyId: 'alias/test', region: 'us-east-1', endpoint: undefined },
        piiHashKey,
      },
    }) as AppConfig;
  const aws = { name: 'aws' } as KmsProvider;

  it('decodes a configured key and refuses one shorter than 32 bytes', () => {
    const key = randomBytes(48);
    expect(piiHashKeyFrom(config('aws', b64(key)), aws)).toEqual(key);
    expect(() => piiHashKeyFrom(config('aws', b64(randomBytes(31))), aws)).toThrow(
      'PII_HASH_KEY must be base64 of at least 32 bytes',
    );
    expect(() => piiHashKeyFrom(config('aws', 'not base64!'), aws)).toThrow(/PII_HASH_KEY/);
  });

  it('falls back to the local provider’s hash key, and is required with aws', () => {
    const cfg = config('local', undefined);
    const local = new LocalKmsProvider(cfg.crypto.local, cfg.env);
    expect(piiHashKeyFrom(cfg, local)).toEqual(local.hashKey());
    expect(() => piiHashKeyFrom(config('aws', undefined), aws)).toThrow(
      /PII_HASH_KEY is required with KMS_PROVIDER=aws/,
    );
  });
});
