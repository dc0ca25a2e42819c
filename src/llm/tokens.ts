// Token counts for context budgets and usage when the model reports none. The tokenizer's merge
// step is quadratic in a run of text without spaces (60,000 × "中" took 10 s), so text is encoded
// in pieces of bounded length, cut before a space where one is near. Even linear, hostile text
// (random symbols) costs about 5 µs a character, so encoding stops after a prefix bounded in
// characters and in time: past it, the count is extrapolated from the prefix's tokens per character.
import { encode } from 'gpt-tokenizer';

// Chat formats wrap every message in a few tokens of role markup.
const PER_MESSAGE_OVERHEAD = 4;
/** Longest piece handed to the tokenizer. */
const PIECE_CHARS = 256;
/**
 * The prefix encoded exactly: always the first MIN_EXACT_CHARS (so that a count does not depend on
 * the machine's load), then up to EXACT_CHARS while the work stays under EXACT_MS.
 */
const MIN_EXACT_CHARS = 8192;
const EXACT_CHARS = 200_000;
const EXACT_MS = 10;
// Special-token markup in user text or a reply is text, not a control token (and must not throw).
const AS_TEXT = { disallowedSpecial: new Set<string>() };

export function countTokens(text: string): number {
  const exactEnd = Math.min(text.length, EXACT_CHARS);
  let tokens = 0;
  let start = 0;
  const deadline = performance.now() + EXACT_MS;
  while (start < exactEnd) {
    const end = pieceEnd(text, start, exactEnd);
    tokens += encode(text.slice(start, end), AS_TEXT).length;
    start = end;
    if (start >= MIN_EXACT_CHARS && performance.now() > deadline) break;
  }
  if (start >= text.length) return tokens;
  return Math.ceil((tokens / start) * text.length);
}

export function countMessageTokens(message: { content: string; tokenCount?: number | null }): number {
  return (message.tokenCount ?? countTokens(message.content)) + PER_MESSAGE_OVERHEAD;
}

/** Where the piece from `start` ends: before the last word-leading space, else at the limit, never inside a surrogate pair. */
function pieceEnd(text: string, start: number, limit: number): number {
  const end = start + PIECE_CHARS;
  if (end >= limit) return limit;
  for (let k = end; k > start + 1; k--) {
    if (text.charCodeAt(k) === 32 && !isSpace(text.charCodeAt(k - 1))) return k;
  }
  const last = text.charCodeAt(end - 1);
  return last >= 0xd800 && last <= 0xdbff ? end - 1 : end;
}

const isSpace = (code: number) => code === 32 || (code >= 9 && code <= 13);
