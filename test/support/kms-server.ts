import { createCipheriv, createDecipheriv, randomBytes, randomUUID } from 'node:crypto';
import { createServer, IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * A stand-in for AWS KMS speaking its JSON protocol (`X-Amz-Target: TrentService.<Op>`), enough
 * for GenerateDataKey, Encrypt, Decrypt and ReEncrypt against symmetric keys held in memory.
 * Ciphertexts are AES-256-GCM bound to the EncryptionContext, like the real service. SigV4 is
 * not verified: any Authorization header is accepted.
 */
export interface KmsServer {
  url: string;
  /** ARN of the key created at start. */
  keyId: string;
  /** Requests received per operation, failed ones included. */
  calls: Record<string, number>;
  /** The next `n` requests get a 500 KMSInternalException (retryable, like an outage). */
  failNext(n: number): void;
  /** Adds another key; returns its ARN. */
  createKey(): string;
  close(): Promise<void>;
}

const REGION = 'us-east-1';
const ACCOUNT = '000000000000';
const CONTENT_TYPE = 'application/x-amz-json-1.1';
const TARGET_PREFIX = 'TrentService.';
const ALGORITHM = 'SYMMETRIC_DEFAULT';
const UUID_BYTES = 16;
const IV_BYTES = 12;
const TAG_BYTES = 16;

interface Key {
  arn: string;
  id: string;
  material: Buffer;
}

type Body = Record<string, unknown>;

class KmsFault extends Error {
  constructor(
    readonly type: string,
    message: string,
    readonly status = 400,
  ) {
    super(message);
  }
}

const uuidBytes = (id: string) => Buffer.from(id.replace(/-/g, ''), 'hex');

function context(value: unknown): string {
  const ctx = (value ?? {}) as Record<string, string>;
  return JSON.stringify(
    Object.keys(ctx)
      .sort()
      .map((k) => [k, ctx[k]]),
  );
}

function blob(value: unknown, field: string): Buffer {
  if (typeof value !== 'string') {
    throw new KmsFault('ValidationException', `${field} is required`);
  }
  return Buffer.from(value, 'base64');
}

export async function startKmsServer(): Promise<KmsServer> {
  const keys = new Map<string, Key>();
  const calls: Record<string, number> = {};
  let failures = 0;

  const createKey = (): string => {
    const id = randomUUID();
    const arn = `arn:aws:kms:${REGION}:${ACCOUNT}:key/${id}`;
    keys.set(id, { arn, id, material: randomBytes(32) });
    return arn;
  };

  /** Accepts a key ARN or bare key id; aliases are not modelled. */
  const resolve = (keyId: unknown): Key => {
    const id = typeof keyId === 'string' ? keyId.replace(/^arn:aws:kms:[^:]+:\d+:key\//, '') : '';
    const key = keys.get(id);
    if (!key) {
      throw new KmsFault('NotFoundException', `Key '${String(keyId)}' does not exist`);
    }
    return key;
  };

  const encrypt = (key: Key, plaintext: Buffer, ctx: unknown): Buffer => {
    const iv = randomBytes(IV_BYTES);
    const cipher = createCipheriv('aes-256-gcm', key.material, iv);
    cipher.setAAD(Buffer.from(context(ctx)));
    const ct = Buffer.concat([cipher.update(plaintext), cipher.final()]);
    return Buffer.concat([uuidBytes(key.id), iv, cipher.getAuthTag(), ct]);
  };

  const decrypt = (ciphertext: Buffer, ctx: unknown, expectedKeyId: unknown) => {
    const invalid = new KmsFault('InvalidCiphertextException', '');
    if (ciphertext.length < UUID_BYTES + IV_BYTES + TAG_BYTES) {
      throw invalid;
    }
    const key = [...keys.values()].find((k) =>
      uuidBytes(k.id).equals(ciphertext.subarray(0, UUID_BYTES)),
    );
    if (!key) {
      throw invalid;
    }
    if (expectedKeyId !== undefined && resolve(expectedKeyId) !== key) {
      throw new KmsFault(
        'IncorrectKeyException',
        'The key ID in the request does not identify a CMK that can perform this operation.',
      );
    }
    const iv = ciphertext.subarray(UUID_BYTES, UUID_BYTES + IV_BYTES);
    const tag = ciphertext.subarray(UUID_BYTES + IV_BYTES, UUID_BYTES + IV_BYTES + TAG_BYTES);
    const decipher = createDecipheriv('aes-256-gcm', key.material, iv, {
      authTagLength: TAG_BYTES,
    });
    decipher.setAAD(Buffer.from(context(ctx)));
    decipher.setAuthTag(tag);
    try {
      const plaintext = Buffer.concat([
        decipher.update(ciphertext.subarray(UUID_BYTES + IV_BYTES + TAG_BYTES)),
        decipher.final(),
      ]);
      return { key, plaintext };
    } catch {
      // NOTE: real KMS gives no reason either (wrong context and tampering look the same).
      throw invalid;
    }
  };

  const operations: Record<string, (body: Body) => Body> = {
    GenerateDataKey: (body) => {
      const key = resolve(body.KeyId);
      const spec = body.KeySpec;
      const bytes =
        spec === 'AES_256' ? 32 : spec === 'AES_128' ? 16 : Number(body.NumberOfBytes ?? 0);
      if (!(bytes >= 1 && bytes <= 1024)) {
        throw new KmsFault('ValidationException', 'KeySpec or NumberOfBytes is required');
      }
      const plaintext = randomBytes(bytes);
      return {
        KeyId: key.arn,
        Plaintext: plaintext.toString('base64'),
        CiphertextBlob: encrypt(key, plaintext, body.EncryptionContext).toString('base64'),
      };
    },
    Encrypt: (body) => {
      const key = resolve(body.KeyId);
      const plaintext = blob(body.Plaintext, 'Plaintext');
      return {
        KeyId: key.arn,
        CiphertextBlob: encrypt(key, plaintext, body.EncryptionContext).toString('base64'),
        EncryptionAlgorithm: ALGORITHM,
      };
    },
    Decrypt: (body) => {
      const { key, plaintext } = decrypt(
        blob(body.CiphertextBlob, 'CiphertextBlob'),
        body.EncryptionContext,
        body.KeyId,
      );
      return {
        KeyId: key.arn,
        Plaintext: plaintext.toString('base64'),
        EncryptionAlgorithm: ALGORITHM,
      };
    },
    ReEncrypt: (body) => {
      const source = decrypt(
        blob(body.CiphertextBlob, 'CiphertextBlob'),
        body.SourceEncryptionContext,
        body.SourceKeyId,
      );
      const destination = resolve(body.DestinationKeyId);
      return {
        SourceKeyId: source.key.arn,
        KeyId: destination.arn,
        CiphertextBlob: encrypt(
          destination,
          source.plaintext,
          body.DestinationEncryptionContext,
        ).toString('base64'),
        SourceEncryptionAlgorithm: ALGORITHM,
        DestinationEncryptionAlgorithm: ALGORITHM,
      };
    },
  };

  const reply = (res: ServerResponse, status: number, body: Body, errorType?: string) => {
    const headers: Record<string, string> = { 'content-type': CONTENT_TYPE };
    if (errorType) {
      headers['x-amzn-errortype'] = errorType;
    }
    res.writeHead(status, headers);
    res.end(JSON.stringify(body));
  };

  const handle = (req: IncomingMessage, raw: string, res: ServerResponse) => {
    const target = String(req.headers['x-amz-target'] ?? '');
    const operation = target.startsWith(TARGET_PREFIX) ? target.slice(TARGET_PREFIX.length) : '';
    calls[operation] = (calls[operation] ?? 0) + 1;
    try {
      if (failures > 0) {
        failures -= 1;
        throw new KmsFault('KMSInternalException', 'injected failure', 500);
      }
      const run = req.method === 'POST' ? operations[operation] : undefined;
      if (!run) {
        throw new KmsFault('UnknownOperationException', `unsupported operation '${operation}'`);
      }
      let body: Body;
      try {
        body = JSON.parse(raw || '{}') as Body;
      } catch {
        throw new KmsFault('SerializationException', 'request body is not JSON');
      }
      reply(res, 200, run(body));
    } catch (error) {
      if (!(error instanceof KmsFault)) {
        throw error;
      }
      reply(res, error.status, { __type: error.type, message: error.message }, error.type);
    }
  };

  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => handle(req, Buffer.concat(chunks).toString('utf8'), res));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;

  return {
    url: `http://127.0.0.1:${port}`,
    keyId: createKey(),
    calls,
    failNext: (n) => {
      failures = n;
    },
    createKey,
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve, reject) =>
        server.close((e) => (e ? reject(e) : resolve())),
      );
    },
  };
}
