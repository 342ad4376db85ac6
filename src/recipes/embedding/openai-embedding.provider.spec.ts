import { ConsoleLogger, Logger, LoggerService } from '@nestjs/common';
import { createServer, IncomingMessage, Server, ServerResponse } from 'node:http';
import { AddressInfo } from 'node:net';
import { DomainError, ErrorCode } from '../../common/errors.js';
import { EmbeddingsConfig } from '../../config/app-config.js';
import { EMBEDDING_DIMENSIONS } from '../recipes.constants.js';
import { EmbeddingProviderError } from './embedding-provider.js';
import {
  embeddingsEndpoint,
  MAX_EMBEDDING_INPUT_CHARS,
  MAX_EMBEDDING_RESPONSE_BYTES,
  OpenAiEmbeddingProvider,
} from './openai-embedding.provider.js';

const API_KEY = 'sk-test-9f8e7d6c5b4a39281706';
const TEXT = 'creamy tomato soup with basil';

interface SeenRequest {
  method: string | undefined;
  path: string | undefined;
  headers: IncomingMessage['headers'];
  body: unknown;
}

type Handler = (res: ServerResponse, seen: SeenRequest) => void;

const vector = (n = EMBEDDING_DIMENSIONS): number[] =>
  Array.from({ length: n }, (_, i) => (i % 7) / 10);

const json = (status: number, body: unknown) => (res: ServerResponse) => {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(typeof body === 'string' ? body : JSON.stringify(body));
};

const ok = (embedding: unknown) =>
  json(200, {
    object: 'list',
    data: [{ object: 'embedding', embedding, index: 0 }],
    model: 'text-embedding-3-small',
    usage: { prompt_tokens: 5, total_tokens: 5 },
  });

describe(OpenAiEmbeddingProvider.name, () => {
  let server: Server;
  let origin: string;
  let handler: Handler;
  let requests: SeenRequest[];
  const logged: string[] = [];

  const capture: LoggerService = {
    log: (m: unknown) => logged.push(String(m)),
    error: (m: unknown) => logged.push(String(m)),
    warn: (m: unknown) => logged.push(String(m)),
    debug: (m: unknown) => logged.push(String(m)),
    verbose: (m: unknown) => logged.push(String(m)),
  };

  const provider = (overrides: Partial<EmbeddingsConfig> = {}) =>
    new OpenAiEmbeddingProvider({
      provider: 'openai',
      url: origin,
      model: 'text-embedding-3-small',
      apiKey: API_KEY,
      timeoutMs: 2_000,
      ...overrides,
    });

  /** The rejection of `promise`, which must be an EmbeddingProviderError. */
  const providerError = async (promise: Promise<unknown>): Promise<EmbeddingProviderError> => {
    await expect(promise).rejects.toBeInstanceOf(EmbeddingProviderError);
    return promise.then(
      () => {
        throw new Error('resolved');
      },
      (e: EmbeddingProviderError) => e,
    );
  };

  beforeAll(async () => {
    Logger.overrideLogger(capture);
    server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const raw = Buffer.concat(chunks).toString('utf8');
        const seen: SeenRequest = {
          method: req.method,
          path: req.url,
          headers: req.headers,
          body: raw ? JSON.parse(raw) : undefined,
        };
        requests.push(seen);
        handler(res, seen);
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  beforeEach(() => {
    requests = [];
    handler = ok(vector());
  });

  afterAll(async () => {
    // NOTE: the timeout test leaves a request hanging; drop it so close() can finish.
    server.closeAllConnections();
    await new Promise<void>((resolve, reject) => server.close((e) => (e ? reject(e) : resolve())));
    Logger.overrideLogger(new ConsoleLogger());
  });

  it('returns the vector and sends model, input, dimensions and the bearer key', async () => {
    await expect(provider().embed(TEXT)).resolves.toEqual(vector());

    expect(requests).toHaveLength(1);
    const [seen] = requests;
    expect(seen.method).toBe('POST');
    expect(seen.path).toBe('/v1/embeddings');
    expect(seen.headers.authorization).toBe(`Bearer ${API_KEY}`);
    expect(seen.headers['content-type']).toBe('application/json');
    expect(seen.body).toEqual({
      model: 'text-embedding-3-small',
      input: TEXT,
      dimensions: EMBEDDING_DIMENSIONS,
    });
  });

  it('sends no authorization header without an API key', async () => {
    await expect(provider({ apiKey: undefined }).embed(TEXT)).resolves.toHaveLength(
      EMBEDDING_DIMENSIONS,
    );
    expect(requests[0].headers.authorization).toBeUndefined();
  });

  it.each([
    ['', '/v1/embeddings'],
    ['/', '/v1/embeddings'],
    ['/v1', '/v1/embeddings'],
    ['/v1/', '/v1/embeddings'],
    ['/openai', '/openai/v1/embeddings'],
    ['/openai/', '/openai/v1/embeddings'],
    ['/openai/v1//', '/openai/v1/embeddings'],
  ])('joins base url %j into %s', async (suffix, path) => {
    await provider({ url: `${origin}${suffix}` }).embed(TEXT);
    expect(requests.map((r) => r.path)).toEqual([path]);
  });

  it.each([
    ['https://api.openai.com', 'https://api.openai.com/v1/embeddings'],
    ['https://api.openai.com/v1', 'https://api.openai.com/v1/embeddings'],
    ['http://llm.internal:8080/api/v1/?x=1', 'http://llm.internal:8080/api/v1/embeddings'],
  ])('embeddingsEndpoint(%j) is %s', (url, expected) => {
    expect(embeddingsEndpoint(url)).toBe(expected);
  });

  it('refuses to be built without a url', () => {
    expect(() => provider({ url: undefined })).toThrow(/url/);
  });

  it.each([
    ['empty', ''],
    ['whitespace', ' \n\t '],
    ['too long', 'a'.repeat(MAX_EMBEDDING_INPUT_CHARS + 1)],
  ])('rejects %s text as invalid without calling the provider', async (_, text) => {
    const promise = provider().embed(text);
    await expect(promise).rejects.toBeInstanceOf(DomainError);
    await expect(promise).rejects.toMatchObject({ code: ErrorCode.Invalid });
    await expect(promise).rejects.not.toBeInstanceOf(EmbeddingProviderError);
    expect(requests).toHaveLength(0);
  });

  it('accepts text of exactly the maximum length, counted in characters', async () => {
    await expect(provider().embed('a'.repeat(MAX_EMBEDDING_INPUT_CHARS))).resolves.toHaveLength(
      EMBEDDING_DIMENSIONS,
    );
    // Astral characters are two UTF-16 units each but one character.
    await expect(provider().embed('🍅'.repeat(MAX_EMBEDDING_INPUT_CHARS))).resolves.toHaveLength(
      EMBEDDING_DIMENSIONS,
    );
  });

  it('turns a 500 into an EmbeddingProviderError naming the status and the message', async () => {
    handler = json(500, { error: { message: 'The server had an error', type: 'server_error' } });
    const error = await providerError(provider().embed(TEXT));
    expect(error.code).toBe(ErrorCode.BadGateway);
    expect(error.message).toContain('500');
    expect(error.message).toContain('The server had an error');
  });

  it('shortens a long, non-JSON error page to one line', async () => {
    handler = (res) => {
      res.writeHead(503, { 'content-type': 'text/html' });
      res.end(`<html>\n<body>\r\n${'Service Unavailable '.repeat(100)}</body></html>`);
    };
    const error = await providerError(provider().embed(TEXT));
    expect(error.message).toContain('503');
    expect(error.message).not.toMatch(/[\r\n]/);
    expect(error.message.length).toBeLessThan(300);
  });

  it.each([
    ['3 numbers', [0.1, 0.2, 0.3], /1536.*got 3/],
    ['1537 numbers', vector(EMBEDDING_DIMENSIONS + 1), /1536.*got 1537/],
    ['a string inside', vector().map((v, i) => (i === 10 ? '0.5' : v)), /index 10/],
    ['a null inside', vector().map((v, i) => (i === 0 ? null : v)), /index 0/],
    ['no array', 'not an array', /embedding/],
  ])('rejects an embedding with %s', async (_, embedding, message) => {
    handler = ok(embedding);
    const error = await providerError(provider().embed(TEXT));
    expect(error.message).toMatch(message);
  });

  it.each([
    ['malformed JSON', json(200, '{"data": [{"embedding": [0.1, 0.2'), /not JSON/],
    ['an empty data list', json(200, { data: [] }), /data\[0\]/],
    ['no data', json(200, { object: 'list' }), /data\[0\]/],
    ['JSON null', json(200, 'null'), /data\[0\]/],
  ])('rejects an answer with %s', async (_, answer, message) => {
    handler = answer;
    const error = await providerError(provider().embed(TEXT));
    expect(error.message).toMatch(message);
  });

  it('gives up after timeoutMs when the server never answers', async () => {
    handler = () => undefined;
    const started = Date.now();
    const error = await providerError(provider({ timeoutMs: 200 }).embed(TEXT));
    expect(error.message).toContain('no answer within 200 ms');
    expect(Date.now() - started).toBeLessThan(2_000);
  });

  it('does not follow a redirect (it could carry the API key elsewhere)', async () => {
    handler = (res, seen) => {
      if (seen.path === '/v1/embeddings') {
        res.writeHead(307, { location: `${origin}/elsewhere` });
        res.end();
        return;
      }
      ok(vector())(res);
    };
    const error = await providerError(provider().embed(TEXT));
    expect(error.message).toBe('embedding provider: HTTP 307: redirects are not followed');
    expect(requests.map((r) => r.path)).toEqual(['/v1/embeddings']);
  });

  it.each([
    ['declared in content-length', true],
    ['streamed without a length', false],
  ])('refuses an answer larger than the cap (%s)', async (_, declared) => {
    const padding = ' '.repeat(MAX_EMBEDDING_RESPONSE_BYTES);
    handler = (res) => {
      const body = JSON.stringify({ data: [{ embedding: vector() }] }) + padding;
      res.writeHead(200, {
        'content-type': 'application/json',
        ...(declared ? { 'content-length': String(Buffer.byteLength(body)) } : {}),
      });
      if (declared) {
        res.end(body);
        return;
      }
      // chunked: 64 KiB at a time, so only the running count can stop it
      for (let i = 0; i < body.length; i += 65_536) {
        res.write(body.slice(i, i + 65_536));
      }
      res.end();
    };
    const error = await providerError(provider().embed(TEXT));
    expect(error.message).toMatch(/exceeds 1048576/);
  });

  it('turns a refused connection into an EmbeddingProviderError', async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise<void>((resolve) => closed.close(() => resolve()));

    const error = await providerError(provider({ url: `http://127.0.0.1:${port}` }).embed(TEXT));
    expect(error.message).toContain('request failed (ECONNREFUSED)');
  });

  it.each([
    [
      'echoes the key',
      json(401, { error: { message: `Incorrect API key provided: ${API_KEY}.` } }),
    ],
    [
      'echoes a masked key',
      json(401, { error: { message: 'Incorrect API key provided: sk-test-****1706.' } }),
    ],
    ['echoes the header', json(403, `forbidden for Authorization: Bearer ${API_KEY}`)],
    ['quotes the input', json(400, { error: { message: `bad input '${TEXT}'` } })],
    [
      'quotes part of the input',
      json(400, { error: { message: `cannot embed "...${TEXT.slice(3, 25)}..."` } }),
    ],
  ])('never leaks the key or the text when the provider %s', async (_, answer) => {
    handler = answer;
    logged.length = 0;
    const error = await providerError(provider().embed(TEXT));
    expect(error.message).toMatch(/HTTP 40[013]/);
    expect(logged.join('\n')).toMatch(/answered 40[013] in \d+ ms/);
    for (const line of [error.message, ...logged]) {
      expect(line).not.toContain(API_KEY);
      expect(line).not.toContain('9f8e7d6c5b4a');
      expect(line).not.toContain('1706');
      expect(line).not.toContain(TEXT.slice(3, 25));
    }
  });
});
