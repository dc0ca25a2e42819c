// What a model sends is untrusted input, like a user's: every field of a stream chunk is checked
// for its type and clamped to what the database holds before anything else sees it.

/** Longest `model` kept, in code points (the column is VARCHAR(255), which counts characters). */
export const MAX_MODEL_CHARS = 255;
/** Longest `finish_reason` kept, in code points (the column is VARCHAR(64)). */
export const MAX_FINISH_REASON_CHARS = 64;
/** Token counts are INT columns. */
const MAX_TOKENS = 2 ** 31 - 1;

export interface ParsedChunk {
  delta?: string;
  model?: string;
  finishReason?: string;
  usage?: { promptTokens: number; completionTokens: number };
  /** The model reported an error in the stream. */
  error?: string;
}

/** A chunk that cannot be read: the reply ends FAILED with this text. */
export class MalformedChunk extends Error {
  override name = 'MalformedChunk';
}

export function parseChunk(data: string): ParsedChunk {
  let chunk: unknown;
  try {
    chunk = JSON.parse(data);
  } catch {
    throw new MalformedChunk('the model sent an event that is not JSON');
  }
  if (!isObject(chunk)) throw new MalformedChunk('the model sent an event that is not a JSON object');
  const parsed: ParsedChunk = {};
  if (chunk.error !== undefined && chunk.error !== null) {
    const message = isObject(chunk.error) ? chunk.error.message : chunk.error;
    parsed.error = safeText(typeof message === 'string' ? message : JSON.stringify(chunk.error));
    return parsed;
  }
  if (typeof chunk.model === 'string' && chunk.model !== '') parsed.model = clampCodePoints(chunk.model, MAX_MODEL_CHARS);
  const usage = chunk.usage;
  if (isObject(usage) && isTokenCount(usage.prompt_tokens) && isTokenCount(usage.completion_tokens)) {
    parsed.usage = { promptTokens: usage.prompt_tokens, completionTokens: usage.completion_tokens };
  }
  const choice = Array.isArray(chunk.choices) ? chunk.choices[0] : undefined;
  if (!isObject(choice)) return parsed;
  if (typeof choice.finish_reason === 'string' && choice.finish_reason !== '') parsed.finishReason = clampCodePoints(choice.finish_reason, MAX_FINISH_REASON_CHARS);
  const delta = choice.delta;
  if (delta === undefined || delta === null) return parsed;
  if (!isObject(delta)) throw new MalformedChunk('the model sent a delta that is not an object');
  const content = delta.content;
  if (content === undefined || content === null) return parsed;
  if (typeof content !== 'string') throw new MalformedChunk('the model sent delta content that is not text');
  if (content !== '') parsed.delta = content;
  return parsed;
}

const isObject = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value);

/** An integer an INT token-count column holds, and not negative. */
export const isTokenCount = (value: unknown): value is number => Number.isSafeInteger(value) && (value as number) >= 0 && (value as number) <= MAX_TOKENS;

/** Text every database stores as is: NUL and unpaired surrogates become U+FFFD. */
export function safeText(text: string): string {
  return text.toWellFormed().replace(/\u0000/g, '\uFFFD');
}

/** At most `max` UTF-16 units of safe text. */
export const clamp = (text: string, max: number): string => safeText(truncate(text, max));

/** At most `max` UTF-16 units, no surrogate pair cut in half. */
export function truncate(text: string, max: number): string {
  if (text.length <= max) return text;
  return text.slice(0, max > 0 && isHighSurrogate(text.charCodeAt(max - 1)) ? max - 1 : max);
}

/**
 * Safe text of at most `max` code points: what a VARCHAR(max) column holds on PostgreSQL and
 * MySQL, and what the input checks (zod) measure, so a model name a user may set survives its echo.
 */
export const clampCodePoints = (text: string, max: number): string => safeText(truncateCodePoints(text, max));

/** At most `max` code points; a lone surrogate counts as one. */
export function truncateCodePoints(text: string, max: number): string {
  if (text.length <= max) return text;
  let end = 0;
  for (let count = 0; count < max && end < text.length; count++) {
    end += isHighSurrogate(text.charCodeAt(end)) && isLowSurrogate(text.charCodeAt(end + 1)) ? 2 : 1;
  }
  return text.slice(0, end);
}

const isLowSurrogate = (code: number) => code >= 0xdc00 && code <= 0xdfff;
const isHighSurrogate = (code: number) => code >= 0xd800 && code <= 0xdbff;

/**
 * Makes a stream of deltas safe text. A surrogate pair split over two deltas is kept whole: a
 * high surrogate ending a delta waits for the next one.
 */
export class SafeTextStream {
  private held = '';

  push(delta: string): string {
    let text = this.held + delta;
    this.held = '';
    if (isHighSurrogate(text.charCodeAt(text.length - 1))) {
      this.held = text.slice(-1);
      text = text.slice(0, -1);
    }
    return safeText(text);
  }

  /** What is still held at the end of the stream, made safe. */
  end(): string {
    const rest = this.held;
    this.held = '';
    return safeText(rest);
  }
}
