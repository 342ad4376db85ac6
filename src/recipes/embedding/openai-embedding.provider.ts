import { Logger } from '@nestjs/common';
import { InvalidInputError } from '../../common/errors.js';
import { EmbeddingsConfig } from '../../config/app-config.js';
import { EMBEDDING_DIMENSIONS } from '../recipes.constants.js';
import { EmbeddingProvider, EmbeddingProviderError } from './embedding-provider.js';

/** The longest text (in characters) we send; longer input is the caller's error (400). */
export const MAX_EMBEDDING_INPUT_CHARS = 8000;

/**
 * The largest answer read from the provider: 1536 numbers as JSON are about 35 KB; a
 * bigger body (a misbehaving or hostile endpoint) is cut off and refused, never buffered.
 */
export const MAX_EMBEDDING_RESPONSE_BYTES = 1024 * 1024;

/** How much of a provider's error message ends up in ours. */
const ERROR_SNIPPET_CHARS = 200;

/** A provider message sharing this many consecutive characters with the input is withheld. */
const QUOTE_WINDOW = 16;

/**
 * `{url}/v1/embeddings`, whether `url` is `https://host`, `https://host/`, `https://host/v1` or
 * `https://host/v1/`. A query string or fragment in `url` is dropped.
 */
export function embeddingsEndpoint(url: string): string {
  const parsed = new URL(url);
  const path = parsed.pathname.replace(/\/+$/, '');
  parsed.pathname = /\/v1$/.test(path) ? `${path}/embeddings` : `${path}/v1/embeddings`;
  parsed.search = '';
  parsed.hash = '';
  return parsed.toString();
}

/** Calls an OpenAI-compatible `POST /v1/embeddings` for one text. */
export class OpenAiEmbeddingProvider implements EmbeddingProvider {
  readonly name = 'openai';
  private readonly logger = new Logger(OpenAiEmbeddingProvider.name);
  private readonly endpoint: string;

  constructor(private readonly config: EmbeddingsConfig) {
    if (!config.url) {
      // NOTE: config validation requires EMBEDDINGS_URL for 'openai'; this is a wiring bug.
      throw new Error('OpenAiEmbeddingProvider needs embeddings.url');
    }
    this.endpoint = embeddingsEndpoint(config.url);
  }

  async embed(text: string): Promise<number[]> {
    assertEmbeddableText(text);

    const started = performance.now();
    const headers: Record<string, string> = { 'content-type': 'application/json' };
    if (this.config.apiKey) {
      headers.authorization = `Bearer ${this.config.apiKey}`;
    }
    const body = JSON.stringify({
      model: this.config.model,
      input: text,
      dimensions: EMBEDDING_DIMENSIONS,
    });

    let status: number;
    let raw: string;
    try {
      // NOTE: the signal also covers reading the body: a server stalling mid-answer times out too.
      const response = await fetch(this.endpoint, {
        method: 'POST',
        headers,
        body,
        signal: AbortSignal.timeout(this.config.timeoutMs),
        // a redirect could send the request (and its API key) elsewhere: never followed
        redirect: 'manual',
      });
      status = response.status;
      if (status >= 300 && status < 400) {
        await response.body?.cancel();
        throw new EmbeddingProviderError(`HTTP ${status}: redirects are not followed`);
      }
      raw = await readCapped(response, MAX_EMBEDDING_RESPONSE_BYTES);
    } catch (error) {
      if (error instanceof EmbeddingProviderError) {
        throw error;
      }
      throw this.transportError(error);
    }
    this.logger.debug(
      `embeddings answered ${status} in ${Math.round(performance.now() - started)} ms`,
    );

    if (status < 200 || status > 299) {
      const snippet = this.sanitise(providerMessage(raw), text);
      throw new EmbeddingProviderError(`HTTP ${status}${snippet ? `: ${snippet}` : ''}`);
    }

    let parsed: unknown;
    try {
      parsed = JSON.parse(raw);
    } catch {
      throw new EmbeddingProviderError(`HTTP ${status} with a body that is not JSON`);
    }
    return extractEmbedding(parsed);
  }

  private transportError(error: unknown): EmbeddingProviderError {
    // NOTE: duck-typed, not `instanceof`: undici's DOMException/TypeError may come from another
    // realm (Jest's VM context), where `instanceof Error` is false.
    const failure = error as { name?: unknown; cause?: { code?: unknown } } | null;
    if (failure?.name === 'TimeoutError') {
      return new EmbeddingProviderError(`no answer within ${this.config.timeoutMs} ms`);
    }
    // undici reports `TypeError: fetch failed` with the real reason (ECONNREFUSED, ...) as the
    // cause; name only its code so no URL, header or body text can leak.
    const code = failure?.cause?.code;
    return new EmbeddingProviderError(
      `request failed${typeof code === 'string' ? ` (${code})` : ''}`,
    );
  }

  /** One short line with neither the API key nor the request text in it. */
  private sanitise(message: string, text: string): string {
    let clean = message;
    const exact = [this.config.apiKey, text.trim()].filter(
      (s): s is string => typeof s === 'string' && s.length >= 4,
    );
    for (const secret of exact) {
      clean = clean.split(secret).join('[redacted]');
    }
    clean = clean
      // Key-looking tokens: OpenAI echoes a masked key on 401.
      .replace(/\b(sk|pk|key)-[A-Za-z0-9_*.-]+/gi, '[redacted]')
      .replace(/bearer\s+\S+/gi, 'Bearer [redacted]')
      .replace(/\p{Cc}+/gu, ' ')
      .replace(/\s+/g, ' ')
      .trim();
    if (clean.length > ERROR_SNIPPET_CHARS) {
      clean = `${clean.slice(0, ERROR_SNIPPET_CHARS)}…`;
    }
    // NOTE: providers like to quote (part of) the offending input; withhold rather than leak it.
    return quotesInput(clean, text) ? '[provider message withheld: it quotes the input]' : clean;
  }
}

/** The body as text, refused once it grows past `maxBytes` (what is left is not read). */
async function readCapped(response: Response, maxBytes: number): Promise<string> {
  const declared = Number(response.headers.get('content-length'));
  if (declared > maxBytes) {
    await response.body?.cancel();
    throw new EmbeddingProviderError(`answer of ${declared} bytes exceeds ${maxBytes}`);
  }
  if (!response.body) {
    return '';
  }
  const chunks: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of response.body as AsyncIterable<Uint8Array>) {
    size += chunk.byteLength;
    if (size > maxBytes) {
      await response.body.cancel().catch(() => undefined);
      throw new EmbeddingProviderError(`answer exceeds ${maxBytes} bytes`);
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** Whether `message` holds any run of QUOTE_WINDOW characters taken from `text`. */
function quotesInput(message: string, text: string): boolean {
  for (let i = 0; i + QUOTE_WINDOW <= message.length; i++) {
    if (text.includes(message.slice(i, i + QUOTE_WINDOW))) {
      return true;
    }
  }
  return false;
}

function assertEmbeddableText(text: unknown): asserts text is string {
  if (typeof text !== 'string' || text.trim() === '') {
    throw new InvalidInputError([{ field: 'text', message: 'text to embed must not be empty' }]);
  }
  // Count code points, not UTF-16 units, so emoji count once.
  if (text.length > MAX_EMBEDDING_INPUT_CHARS && [...text].length > MAX_EMBEDDING_INPUT_CHARS) {
    throw new InvalidInputError([
      {
        field: 'text',
        message: `text to embed must be at most ${MAX_EMBEDDING_INPUT_CHARS} characters`,
      },
    ]);
  }
}

/** `error.message` of an OpenAI-style error body, else the raw body. */
function providerMessage(raw: string): string {
  try {
    const body = JSON.parse(raw) as { error?: { message?: unknown } | string; message?: unknown };
    const candidate =
      typeof body?.error === 'string' ? body.error : (body?.error?.message ?? body?.message);
    if (typeof candidate === 'string') {
      return candidate;
    }
  } catch {
    // Not JSON (an HTML page from a proxy, plain text): fall back to the raw body.
  }
  return raw;
}

function extractEmbedding(body: unknown): number[] {
  const data = (body as { data?: unknown } | null)?.data;
  if (!Array.isArray(data) || data.length === 0) {
    throw new EmbeddingProviderError('answer has no data[0]');
  }
  const embedding = (data[0] as { embedding?: unknown } | null)?.embedding;
  if (!Array.isArray(embedding)) {
    throw new EmbeddingProviderError('answer has no data[0].embedding array');
  }
  if (embedding.length !== EMBEDDING_DIMENSIONS) {
    throw new EmbeddingProviderError(
      `expected ${EMBEDDING_DIMENSIONS} dimensions, got ${embedding.length}`,
    );
  }
  const bad = embedding.findIndex((v) => typeof v !== 'number' || !Number.isFinite(v));
  if (bad !== -1) {
    throw new EmbeddingProviderError(`embedding value at index ${bad} is not a finite number`);
  }
  return embedding as number[];
}
