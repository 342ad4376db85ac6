import { Logger } from '@nestjs/common';
import { hkdfSync, randomBytes } from 'node:crypto';
import { linkSync, mkdirSync, readFileSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { open, readFile, rename, rm } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { AppConfig, CryptoConfig } from '../../config/app-config.js';
import { KEY_BYTES, openField, sealField } from './envelope.js';
import type { GeneratedDataKey, KeyContext, KmsProvider, WrappedDataKey } from './kms.js';
import { DecryptionError } from './kms.js';

export const LOCAL_KEY_ID_PREFIX = 'local:';

/** HKDF info for the PII hash key derived from `v1` when none is configured. */
const HASH_KEY_INFO = 'dbu-pii-hash';

/** Separates wrapped data keys from anything else ever sealed under a master key. */
const WRAP_AAD_PREFIX = 'dbu-data-key\0';

const VERSION_PATTERN = /^v([1-9]\d*)$/;
const BASE64_PATTERN = /^[A-Za-z0-9+/]+={0,2}$/;
const FILE_MODE = 0o600;

/** On-disk shape of `KMS_LOCAL_KEY_FILE`; key material is base64. */
export interface LocalKeyFile {
  current?: string;
  keys: Record<string, string>;
  hashKey?: string;
}

interface MasterKeys {
  versions: Map<string, Buffer>;
  /** The file's `current`, if any; config's `currentVersion` still wins. */
  current: string | undefined;
  hashKey: Buffer | undefined;
}

/**
 * Decodes strict base64 key material. `what` names the setting in errors; the value never
 * appears in them.
 */
export function decodeKeyMaterial(
  value: string,
  what: string,
  minBytes: number,
  exact = false,
): Buffer {
  const trimmed = value.trim();
  const bytes = BASE64_PATTERN.test(trimmed) ? Buffer.from(trimmed, 'base64') : Buffer.alloc(0);
  if (bytes.length === 0 || (exact ? bytes.length !== minBytes : bytes.length < minBytes)) {
    throw new Error(`${what} must be base64 of ${exact ? '' : 'at least '}${minBytes} bytes`);
  }
  return bytes;
}

function versionNumber(version: string): number {
  const match = VERSION_PATTERN.exec(version);
  if (!match) {
    throw new Error(`master key version "${version}" is not of the form v<N>`);
  }
  return Number(match[1]);
}

function highestVersion(versions: Iterable<string>): string {
  const sorted = [...versions].sort((a, b) => versionNumber(b) - versionNumber(a));
  if (sorted.length === 0) {
    throw new Error('no master keys configured');
  }
  return sorted[0];
}

/** Sorted-key JSON of the context, so `{a,b}` and `{b,a}` bind the same AAD. */
export function canonicalContext(context: KeyContext): string {
  const entries = Object.keys(context)
    .sort()
    .map((k) => [k, context[k]]);
  return JSON.stringify(entries);
}

function parseInlineKeys(inline: string): MasterKeys {
  const versions = new Map<string, Buffer>();
  inline.split(',').forEach((entry, index) => {
    const separator = entry.indexOf(':');
    const version = separator > 0 ? entry.slice(0, separator).trim() : '';
    // NOTE: name the entry by position: echoing it could print key material.
    if (!VERSION_PATTERN.test(version)) {
      throw new Error(`KMS_LOCAL_KEYS entry #${index + 1} is not "v<N>:<base64>"`);
    }
    if (versions.has(version)) {
      throw new Error(`KMS_LOCAL_KEYS lists ${version} twice`);
    }
    const material = entry.slice(separator + 1);
    versions.set(
      version,
      decodeKeyMaterial(material, `KMS_LOCAL_KEYS ${version}`, KEY_BYTES, true),
    );
  });
  return { versions, current: undefined, hashKey: undefined };
}

function parseKeyFile(raw: string, path: string): { file: LocalKeyFile; keys: MasterKeys } {
  let file: LocalKeyFile;
  try {
    file = JSON.parse(raw) as LocalKeyFile;
  } catch {
    // NOTE: the parser's message quotes the file, i.e. key material.
    throw new Error(`key file ${path} is not valid JSON`);
  }
  if (
    typeof file !== 'object' ||
    file === null ||
    typeof file.keys !== 'object' ||
    file.keys === null
  ) {
    throw new Error(`key file ${path} has no "keys" object`);
  }
  const versions = new Map<string, Buffer>();
  for (const [version, material] of Object.entries(file.keys)) {
    versionNumber(version);
    if (typeof material !== 'string') {
      throw new Error(`key file ${path}: ${version} is not a base64 string`);
    }
    versions.set(
      version,
      decodeKeyMaterial(material, `key file ${path} ${version}`, KEY_BYTES, true),
    );
  }
  const hashKey =
    typeof file.hashKey === 'string'
      ? decodeKeyMaterial(file.hashKey, `key file ${path} hashKey`, KEY_BYTES)
      : undefined;
  return { file, keys: { versions, current: file.current, hashKey } };
}

function newKeyFile(): LocalKeyFile {
  return {
    current: 'v1',
    keys: { v1: randomBytes(KEY_BYTES).toString('base64') },
    hashKey: randomBytes(KEY_BYTES).toString('base64'),
  };
}

function tempPathFor(path: string): string {
  return `${path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
}

// NOTE: structural, not `instanceof Error`: fs errors can come from another realm (jest's vm).
function isErrno(error: unknown, code: string): boolean {
  return (
    typeof error === 'object' && error !== null && (error as NodeJS.ErrnoException).code === code
  );
}

function readIfExists(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch (error) {
    if (isErrno(error, 'ENOENT')) {
      return undefined;
    }
    throw error;
  }
}

/**
 * Master keys from `KMS_LOCAL_KEYS` or a key file; for development, tests and single-host
 * deployments where no cloud KMS is available. The key file is read once at construction;
 * an unknown version met while unwrapping triggers one re-read, so a key rotated by another
 * process is picked up without a restart.
 */
export class LocalKmsProvider implements KmsProvider {
  readonly name = 'local';
  private readonly logger = new Logger(LocalKmsProvider.name);
  private keys: MasterKeys;

  constructor(
    private readonly config: CryptoConfig['local'],
    private readonly env: AppConfig['env'],
  ) {
    this.keys = config.keys ? parseInlineKeys(config.keys) : this.loadKeyFile();
    this.currentVersion();
  }

  currentKeyId(): string {
    return `${LOCAL_KEY_ID_PREFIX}${this.currentVersion()}`;
  }

  async generateDataKey(context: KeyContext): Promise<GeneratedDataKey> {
    const plaintext = randomBytes(KEY_BYTES);
    return { plaintext, wrapped: this.wrap(plaintext, context) };
  }

  async decryptDataKey(wrapped: WrappedDataKey, context: KeyContext): Promise<Buffer> {
    const master = await this.masterKeyFor(wrapped.keyId);
    const plaintext = openField(
      master,
      wrapped.ciphertext,
      WRAP_AAD_PREFIX + canonicalContext(context),
    );
    if (plaintext.length !== KEY_BYTES) {
      throw new DecryptionError(`data key under ${wrapped.keyId} has the wrong length`);
    }
    return plaintext;
  }

  async rewrap(wrapped: WrappedDataKey, context: KeyContext): Promise<WrappedDataKey> {
    const plaintext = await this.decryptDataKey(wrapped, context);
    try {
      return this.wrap(plaintext, context);
    } finally {
      plaintext.fill(0);
    }
  }

  /**
   * Key for keyed hashes of personal data (lookups, erasure ledger). It must never change, so
   * without a stored one it is derived from `v1`, which rotation keeps.
   */
  hashKey(): Buffer {
    if (this.keys.hashKey) {
      return Buffer.from(this.keys.hashKey);
    }
    const v1 = this.keys.versions.get('v1');
    if (!v1) {
      throw new Error(
        'no PII hash key: set PII_HASH_KEY (the local master keys have no v1 to derive it from)',
      );
    }
    return Buffer.from(hkdfSync('sha256', v1, Buffer.alloc(0), HASH_KEY_INFO, KEY_BYTES));
  }

  private currentVersion(): string {
    const version =
      this.config.currentVersion ?? this.keys.current ?? highestVersion(this.keys.versions.keys());
    if (!this.keys.versions.has(version)) {
      const known = [...this.keys.versions.keys()].join(', ');
      throw new Error(
        `current master key version ${version} is not among the local keys (${known})`,
      );
    }
    return version;
  }

  private wrap(plaintext: Buffer, context: KeyContext): WrappedDataKey {
    const version = this.currentVersion();
    const master = this.keys.versions.get(version) as Buffer;
    return {
      keyId: `${LOCAL_KEY_ID_PREFIX}${version}`,
      ciphertext: sealField(master, plaintext, WRAP_AAD_PREFIX + canonicalContext(context)),
    };
  }

  private async masterKeyFor(keyId: string): Promise<Buffer> {
    if (!keyId.startsWith(LOCAL_KEY_ID_PREFIX)) {
      throw new DecryptionError(`key id ${keyId} is not a local master key`);
    }
    const version = keyId.slice(LOCAL_KEY_ID_PREFIX.length);
    let master = this.keys.versions.get(version);
    if (!master && !this.config.keys && VERSION_PATTERN.test(version)) {
      const path = this.config.keyFile;
      this.keys = parseKeyFile(await readFile(path, 'utf8'), path).keys;
      master = this.keys.versions.get(version);
      if (master) {
        this.logger.log(`Reloaded KMS key file ${path}: found master key ${version}`);
      }
    }
    if (!master) {
      throw new DecryptionError(`unknown local master key version ${version}`);
    }
    return master;
  }

  private loadKeyFile(): MasterKeys {
    const path = this.config.keyFile;
    let raw = readIfExists(path);
    if (raw === undefined) {
      if (this.env === 'production') {
        throw new Error(
          `KMS key file ${path} does not exist; in production provide it (or KMS_LOCAL_KEYS, or KMS_PROVIDER=aws)`,
        );
      }
      raw = this.createKeyFile(path);
    }
    const mode = statSync(path).mode & 0o777;
    if ((mode & 0o077) !== 0) {
      this.logger.warn(
        `KMS key file ${path} is accessible to group/others (mode ${mode.toString(8)}); chmod 600 it`,
      );
    }
    return parseKeyFile(raw, path).keys;
  }

  /** Returns the file's contents: ours, or another process's if it won the race to create it. */
  private createKeyFile(path: string): string {
    mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
    const temp = tempPathFor(path);
    writeFileSync(temp, `${JSON.stringify(newKeyFile(), null, 2)}\n`, {
      mode: FILE_MODE,
      flag: 'wx',
    });
    try {
      // NOTE: link, not rename: it fails if the file appeared meanwhile instead of replacing
      // keys another process may already have wrapped data with.
      linkSync(temp, path);
      this.logger.warn(
        `Created KMS key file ${path} with a new random master key (${this.env} only)`,
      );
    } catch (error) {
      if (!isErrno(error, 'EEXIST')) {
        throw error;
      }
    } finally {
      unlinkSync(temp);
    }
    return readFileSync(path, 'utf8');
  }
}

/**
 * Adds a random master key version to a key file and makes it current. Existing versions are
 * kept so older wrapped keys still open; re-wrapping them is a separate job. Written as a temp
 * file then renamed, so readers never see a partial file.
 */
export async function rotateLocalKeyFile(
  path: string,
): Promise<{ previous: string; current: string }> {
  const { file, keys } = parseKeyFile(await readFile(path, 'utf8'), path);
  const previous = keys.current ?? highestVersion(keys.versions.keys());
  const current = `v${versionNumber(highestVersion(keys.versions.keys())) + 1}`;
  const next: LocalKeyFile = {
    ...file,
    current,
    keys: { ...file.keys, [current]: randomBytes(KEY_BYTES).toString('base64') },
  };

  const temp = tempPathFor(path);
  try {
    const handle = await open(temp, 'wx', FILE_MODE);
    try {
      await handle.writeFile(`${JSON.stringify(next, null, 2)}\n`, 'utf8');
      await handle.sync();
    } finally {
      await handle.close();
    }
    parseKeyFile(await readFile(temp, 'utf8'), temp);
    await rename(temp, path);
  } catch (error) {
    await rm(temp, { force: true });
    throw error;
  }
  return { previous, current };
}
