import {
  DecryptCommand,
  GenerateDataKeyCommand,
  KMSClient,
  ReEncryptCommand,
} from '@aws-sdk/client-kms';
import type { OnModuleDestroy } from '@nestjs/common';
import type { CryptoConfig } from '../../config/app-config.js';
import { KEY_BYTES } from './envelope.js';
import type { GeneratedDataKey, KeyContext, KmsProvider, WrappedDataKey } from './kms.js';
import { DecryptionError, KmsUnavailableError } from './kms.js';

/** Budget per attempt: a hung KMS must fail the request, not hold it for the 5-minute default. */
const CONNECT_TIMEOUT_MS = 2_000;
const REQUEST_TIMEOUT_MS = 5_000;
/** The SDK's standard retry (throttling, 5xx, network) with jittered backoff; 3 is its default. */
const MAX_ATTEMPTS = 3;

/** KMS errors meaning "these bytes/context/key do not open", as opposed to "KMS unusable". */
const DECRYPTION_FAILURES = new Set(['InvalidCiphertextException', 'IncorrectKeyException']);

/** AWS KMS: data keys from GenerateDataKey, unwrapped with Decrypt, rotated with ReEncrypt. */
export class AwsKmsProvider implements KmsProvider, OnModuleDestroy {
  readonly name = 'aws';
  private readonly client: KMSClient;
  private readonly ownsClient: boolean;
  private readonly keyId: string;

  /** `client` is for tests; otherwise credentials come from the SDK's default provider chain. */
  constructor(config: CryptoConfig['aws'], client?: KMSClient) {
    if (!config.keyId) {
      throw new Error('KMS_PROVIDER=aws needs KMS_AWS_KEY_ID');
    }
    this.keyId = config.keyId;
    this.ownsClient = client === undefined;
    this.client =
      client ??
      new KMSClient({
        region: config.region,
        endpoint: config.endpoint,
        maxAttempts: MAX_ATTEMPTS,
        // NOTE: options, not a NodeHttpHandler instance: the SDK builds its own handler, so we
        // need no direct dependency on @smithy/node-http-handler. Without
        // throwOnRequestTimeout the timeout only logs a warning.
        requestHandler: {
          connectionTimeout: CONNECT_TIMEOUT_MS,
          requestTimeout: REQUEST_TIMEOUT_MS,
          throwOnRequestTimeout: true,
        },
      });
  }

  /** The configured key id (ARN, id or alias); wrapped keys carry the ARN KMS answers with. */
  currentKeyId(): string {
    return this.keyId;
  }

  async generateDataKey(context: KeyContext): Promise<GeneratedDataKey> {
    const out = await this.call('GenerateDataKey', () =>
      this.client.send(
        new GenerateDataKeyCommand({
          KeyId: this.keyId,
          KeySpec: 'AES_256',
          EncryptionContext: context,
        }),
      ),
    );
    if (!out.Plaintext || !out.CiphertextBlob || !out.KeyId || out.Plaintext.length !== KEY_BYTES) {
      throw new KmsUnavailableError('KMS GenerateDataKey returned an incomplete response');
    }
    return {
      plaintext: Buffer.from(out.Plaintext),
      wrapped: { keyId: out.KeyId, ciphertext: Buffer.from(out.CiphertextBlob) },
    };
  }

  async decryptDataKey(wrapped: WrappedDataKey, context: KeyContext): Promise<Buffer> {
    const out = await this.call('Decrypt', () =>
      this.client.send(
        new DecryptCommand({
          CiphertextBlob: wrapped.ciphertext,
          // NOTE: pinning the key makes KMS refuse a blob wrapped by any other key.
          KeyId: wrapped.keyId,
          EncryptionContext: context,
        }),
      ),
    );
    if (!out.Plaintext || out.Plaintext.length !== KEY_BYTES) {
      throw new DecryptionError(`data key under ${wrapped.keyId} has the wrong length`);
    }
    return Buffer.from(out.Plaintext);
  }

  async rewrap(wrapped: WrappedDataKey, context: KeyContext): Promise<WrappedDataKey> {
    const out = await this.call('ReEncrypt', () =>
      this.client.send(
        new ReEncryptCommand({
          CiphertextBlob: wrapped.ciphertext,
          SourceKeyId: wrapped.keyId,
          SourceEncryptionContext: context,
          DestinationKeyId: this.keyId,
          DestinationEncryptionContext: context,
        }),
      ),
    );
    if (!out.CiphertextBlob || !out.KeyId) {
      throw new KmsUnavailableError('KMS ReEncrypt returned an incomplete response');
    }
    return { keyId: out.KeyId, ciphertext: Buffer.from(out.CiphertextBlob) };
  }

  onModuleDestroy(): void {
    if (this.ownsClient) {
      this.client.destroy();
    }
  }

  /**
   * Maps SDK failures to our two error types. Only the error's name, network code and HTTP
   * status travel: AWS messages can quote ARNs and request details.
   */
  private async call<T>(operation: string, send: () => Promise<T>): Promise<T> {
    try {
      return await send();
    } catch (error) {
      // NOTE: structural: network errors may come from another realm, failing `instanceof Error`.
      const name = (error as { name?: unknown } | undefined)?.name;
      const errorName = typeof name === 'string' && name !== '' ? name : 'UnknownError';
      if (DECRYPTION_FAILURES.has(errorName)) {
        throw new DecryptionError(`KMS ${operation} refused the ciphertext: ${errorName}`);
      }
      const code = (error as NodeJS.ErrnoException | undefined)?.code;
      const status = (error as { $metadata?: { httpStatusCode?: number } } | undefined)?.$metadata
        ?.httpStatusCode;
      const details = [code, status === undefined ? undefined : `HTTP ${status}`].filter(Boolean);
      throw new KmsUnavailableError(
        `KMS ${operation} failed: ${errorName}${details.length > 0 ? ` (${details.join(', ')})` : ''}`,
      );
    }
  }
}
