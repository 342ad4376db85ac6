import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import type { KmsServer } from '../../../test/support/kms-server.js';
import { startKmsServer } from '../../../test/support/kms-server.js';
import { AwsKmsProvider } from './aws-kms.provider.js';
import { DecryptionError, KmsUnavailableError } from './kms.js';

const CONTEXT = { subject: 'user-42', purpose: 'pii' };
const FAKE_CREDENTIALS = {
  AWS_ACCESS_KEY_ID: 'AKIAFAKEFAKEFAKEFAKE',
  AWS_SECRET_ACCESS_KEY: 'fake-secret-0123456789abcdefghijklmnopqrstuv',
};

/** A port with nothing listening on it. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve, reject) => server.close((e) => (e ? reject(e) : resolve())));
  return port;
}

describe(AwsKmsProvider.name, () => {
  let kms: KmsServer;
  const providers: AwsKmsProvider[] = [];
  const saved: Record<string, string | undefined> = {};

  const provider = (keyId = kms.keyId, endpoint = kms.url) => {
    const created = new AwsKmsProvider({ keyId, region: 'us-east-1', endpoint });
    providers.push(created);
    return created;
  };

  /** The rejection of `promise`, checked to be a `type` that leaks no credential or context. */
  const failure = async <E extends Error>(
    promise: Promise<unknown>,
    type: new (...args: never[]) => E,
  ): Promise<E> => {
    await expect(promise).rejects.toBeInstanceOf(type);
    const error = await promise.then(
      () => {
        throw new Error('resolved');
      },
      (e: E) => e,
    );
    for (const secret of [...Object.values(FAKE_CREDENTIALS), ...Object.values(CONTEXT)]) {
      expect(error.message).not.toContain(secret);
    }
    return error;
  };

  beforeAll(async () => {
    // NOTE: the provider uses the SDK's default credential chain; give it fake env credentials.
    for (const [name, value] of Object.entries(FAKE_CREDENTIALS)) {
      saved[name] = process.env[name];
      process.env[name] = value;
    }
    kms = await startKmsServer();
  });

  afterAll(async () => {
    providers.forEach((p) => p.onModuleDestroy());
    await kms.close();
    for (const [name, value] of Object.entries(saved)) {
      if (value === undefined) {
        delete process.env[name];
      } else {
        process.env[name] = value;
      }
    }
  });

  it('generates a data key wrapped under the key ARN and unwraps it', async () => {
    const kmsProvider = provider();
    const before = { ...kms.calls };

    const { plaintext, wrapped } = await kmsProvider.generateDataKey(CONTEXT);

    expect(plaintext).toHaveLength(32);
    expect(wrapped.keyId).toBe(kms.keyId);
    expect(wrapped.keyId).toMatch(/^arn:aws:kms:us-east-1:000000000000:key\/[0-9a-f-]{36}$/);
    await expect(kmsProvider.decryptDataKey(wrapped, CONTEXT)).resolves.toEqual(plaintext);
    expect(kms.calls.GenerateDataKey).toBe((before.GenerateDataKey ?? 0) + 1);
    expect(kms.calls.Decrypt).toBe((before.Decrypt ?? 0) + 1);
  });

  it('accepts a bare key id in config and stores the ARN KMS answers with', async () => {
    const bareId = kms.keyId.split('/').pop() as string;
    const kmsProvider = provider(bareId);

    expect(kmsProvider.currentKeyId()).toBe(bareId);
    const { plaintext, wrapped } = await kmsProvider.generateDataKey(CONTEXT);
    expect(wrapped.keyId).toBe(kms.keyId);
    await expect(provider().decryptDataKey(wrapped, CONTEXT)).resolves.toEqual(plaintext);
  });

  it.each([
    ['another subject', { subject: 'user-43', purpose: 'pii' }],
    ['an extra entry', { ...CONTEXT, extra: '1' }],
    ['no context', {}],
  ])('maps a wrong context (%s) to DecryptionError', async (_, context) => {
    const kmsProvider = provider();
    const { wrapped } = await kmsProvider.generateDataKey(CONTEXT);
    const error = await failure(kmsProvider.decryptDataKey(wrapped, context), DecryptionError);
    expect(error.message).toContain('InvalidCiphertextException');
  });

  it('maps tampered ciphertext to DecryptionError', async () => {
    const kmsProvider = provider();
    const { wrapped } = await kmsProvider.generateDataKey(CONTEXT);
    const tampered = Buffer.from(wrapped.ciphertext);
    tampered[tampered.length - 1] ^= 1;

    await failure(
      kmsProvider.decryptDataKey({ ...wrapped, ciphertext: tampered }, CONTEXT),
      DecryptionError,
    );
    await failure(
      kmsProvider.decryptDataKey({ ...wrapped, ciphertext: tampered.subarray(0, 10) }, CONTEXT),
      DecryptionError,
    );
  });

  it('maps a blob presented under another key id to DecryptionError', async () => {
    const kmsProvider = provider();
    const { wrapped } = await kmsProvider.generateDataKey(CONTEXT);
    const error = await failure(
      kmsProvider.decryptDataKey({ ...wrapped, keyId: kms.createKey() }, CONTEXT),
      DecryptionError,
    );
    expect(error.message).toContain('IncorrectKeyException');
  });

  it('retries a transient server failure and succeeds', async () => {
    const kmsProvider = provider();
    const before = kms.calls.GenerateDataKey ?? 0;
    kms.failNext(1);

    await expect(kmsProvider.generateDataKey(CONTEXT)).resolves.toHaveProperty('plaintext');
    expect(kms.calls.GenerateDataKey).toBe(before + 2);
  });

  it('maps a failing server to KmsUnavailableError once the retries are spent', async () => {
    const kmsProvider = provider();
    const { wrapped } = await kmsProvider.generateDataKey(CONTEXT);
    const before = kms.calls.Decrypt ?? 0;
    kms.failNext(3);

    const error = await failure(kmsProvider.decryptDataKey(wrapped, CONTEXT), KmsUnavailableError);
    expect(error.message).toBe('KMS Decrypt failed: KMSInternalException (HTTP 500)');
    expect(kms.calls.Decrypt).toBe(before + 3);
    await expect(kmsProvider.decryptDataKey(wrapped, CONTEXT)).resolves.toHaveLength(32);
  });

  it('maps an unreachable KMS to KmsUnavailableError', async () => {
    const kmsProvider = provider(kms.keyId, `http://127.0.0.1:${await closedPort()}`);
    const error = await failure(kmsProvider.generateDataKey(CONTEXT), KmsUnavailableError);
    // NOTE: outside jest the message ends in `(ECONNREFUSED)`; under jest's vm the SDK re-wraps
    // the cross-realm socket error and the code is lost.
    expect(error.message).toMatch(/^KMS GenerateDataKey failed: \w+/);
  });

  it('maps an unknown key to KmsUnavailableError, not DecryptionError', async () => {
    const kmsProvider = provider(
      'arn:aws:kms:us-east-1:000000000000:key/00000000-0000-0000-0000-000000000000',
    );
    const error = await failure(kmsProvider.generateDataKey(CONTEXT), KmsUnavailableError);
    expect(error.message).toContain('NotFoundException');
  });

  it('rewraps under the configured key without changing the data key', async () => {
    const { plaintext, wrapped } = await provider().generateDataKey(CONTEXT);
    const newKey = kms.createKey();
    const rotated = provider(newKey);

    const moved = await rotated.rewrap(wrapped, CONTEXT);

    expect(moved.keyId).toBe(newKey);
    expect(kms.calls.ReEncrypt).toBeGreaterThanOrEqual(1);
    await expect(rotated.decryptDataKey(moved, CONTEXT)).resolves.toEqual(plaintext);
    await failure(rotated.decryptDataKey({ ...moved, keyId: kms.keyId }, CONTEXT), DecryptionError);
    await failure(rotated.rewrap(wrapped, { ...CONTEXT, subject: 'user-43' }), DecryptionError);
  });

  it('needs a key id', () => {
    expect(
      () => new AwsKmsProvider({ keyId: undefined, region: 'us-east-1', endpoint: kms.url }),
    ).toThrow('KMS_PROVIDER=aws needs KMS_AWS_KEY_ID');
  });
});
