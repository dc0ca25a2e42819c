// The model's output as untrusted input, unit by unit: token counts in bounded time, stream
// chunks checked field by field, text made storable, and events of bounded size.
import { encode } from 'gpt-tokenizer';
import { describe, expect, it } from 'vitest';
import { clamp, clampCodePoints, MalformedChunk, parseChunk, SafeTextStream, safeText, truncate, truncateCodePoints } from '../src/llm/model-output.ts';
import { SseDataReader, SseLineTooLong } from '../src/llm/sse-reader.ts';
import { countTokens } from '../src/llm/tokens.ts';

const exact = (text: string) => encode(text, { disallowedSpecial: new Set() }).length;

describe('countTokens', () => {
  const samples = {
    prose: 'The quick brown fox jumps over the lazy dog; 12345 times!\n'.repeat(80),
    code: 'function f(x) {\n  return x.map((y) => y * 2).filter(Boolean);\n}\n'.repeat(60),
    cjk: '今天天气很好，我们去公园散步吧。'.repeat(200),
    emoji: '😀👍🏽 family: 👨‍👩‍👧‍👦 '.repeat(150),
    run: 'x'.repeat(3000),
  };
  for (const [name, text] of Object.entries(samples)) {
    it(`counts ${name} exactly as the tokenizer does on the whole text`, () => {
      expect(countTokens(text)).toBe(exact(text));
    });
  }

  it('counts a long run of whitespace within 1 %', () => {
    const text = ' \t\n  '.repeat(500);
    expect(Math.abs(countTokens(text) - exact(text))).toBeLessThanOrEqual(exact(text) / 100);
  });

  it('counts special-token markup as text instead of throwing', () => {
    expect(() => encode('<|endoftext|>')).toThrow();
    expect(countTokens('hi <|endoftext|> there')).toBe(exact('hi <|endoftext|> there'));
    expect(countTokens('')).toBe(0);
  });

  it('never cuts a surrogate pair between two pieces', () => {
    // 255 × "a" then an emoji: a cut at 256 units would split it into two lone halves.
    const text = `${'a'.repeat(255)}😀${' b'.repeat(150)}`;
    expect(countTokens(text)).toBe(exact(text));
  });

  it('extrapolates past its exact prefix, in proportion to the length', () => {
    expect(countTokens('中'.repeat(3_000_000))).toBe(3_000_000);
    const big = countTokens('x'.repeat(8_000_000));
    expect(big).toBe(1_000_000);
  });

  it('stays bounded on text that is slow to encode, where it used to take minutes', () => {
    let seed = 7;
    const random = () => (seed = (seed * 48271) % 2147483647) / 2147483647;
    const text = Array.from({ length: 2_000_000 }, () => String.fromCharCode(0x100 + Math.floor(random() * 0x2f00))).join('');
    const started = performance.now();
    const tokens = countTokens(text);
    expect(performance.now() - started).toBeLessThan(1000);
    // Random symbols are one to three tokens each.
    expect(tokens).toBeGreaterThan(1_000_000);
    expect(tokens).toBeLessThan(7_000_000);
  });
});

describe('parseChunk', () => {
  const chunk = (fields: Record<string, unknown>) => JSON.stringify(fields);

  it('reads a well-formed chunk', () => {
    expect(parseChunk(chunk({ model: 'm', choices: [{ delta: { content: 'hi' }, finish_reason: 'stop' }], usage: { prompt_tokens: 3, completion_tokens: 1 } }))).toEqual({
      model: 'm',
      delta: 'hi',
      finishReason: 'stop',
      usage: { promptTokens: 3, completionTokens: 1 },
    });
  });

  it('clamps text fields to their columns in code points, as the columns and the input checks count, and drops usage out of range', () => {
    const parsed = parseChunk(chunk({ model: `${'m'.repeat(254)}😀x`, choices: [{ finish_reason: `${'😀'.repeat(63)}ff` }], usage: { prompt_tokens: 2 ** 31, completion_tokens: 1 } }));
    expect(parsed).toEqual({ model: `${'m'.repeat(254)}😀`, finishReason: `${'😀'.repeat(63)}f` });
    // A model name a user may set (255 code points, 510 UTF-16 units) comes back whole.
    const longest = '𝔘'.repeat(255);
    expect(parseChunk(chunk({ model: longest })).model).toBe(longest);
    for (const usage of [{ prompt_tokens: 1.5, completion_tokens: 1 }, { prompt_tokens: -1, completion_tokens: 1 }, { prompt_tokens: '1', completion_tokens: 1 }, 'lots', [1, 2]]) {
      expect(parseChunk(chunk({ usage })), JSON.stringify(usage)).toEqual({});
    }
  });

  it('ignores fields of the wrong type, and refuses deltas and events that are not what they must be', () => {
    expect(parseChunk(chunk({ model: 42, choices: [{ finish_reason: {} }] }))).toEqual({});
    expect(parseChunk(chunk({ choices: 'nope' }))).toEqual({});
    expect(parseChunk(chunk({ choices: [{ delta: { content: null } }] }))).toEqual({});
    for (const [data, message] of [
      ['{oops', 'the model sent an event that is not JSON'],
      ['[1]', 'the model sent an event that is not a JSON object'],
      ['"text"', 'the model sent an event that is not a JSON object'],
      [chunk({ choices: [{ delta: 'text' }] }), 'the model sent a delta that is not an object'],
      [chunk({ choices: [{ delta: { content: 7 } }] }), 'the model sent delta content that is not text'],
      [chunk({ choices: [{ delta: { content: { text: 'x' } } }] }), 'the model sent delta content that is not text'],
    ]) {
      expect(() => parseChunk(data!), data).toThrow(new MalformedChunk(message));
    }
  });

  it('reads an error of any shape as safe text', () => {
    expect(parseChunk(chunk({ error: { message: 'bad\u0000thing' } }))).toEqual({ error: 'bad\uFFFDthing' });
    expect(parseChunk(chunk({ error: 'plain' }))).toEqual({ error: 'plain' });
    expect(parseChunk(chunk({ error: { code: 5 } }))).toEqual({ error: '{"code":5}' });
  });
});

describe('safe text', () => {
  it('replaces NUL and unpaired surrogates, keeps pairs', () => {
    expect(safeText('a\u0000b\ud800c\udc00d😀')).toBe('a\uFFFDb\uFFFDc\uFFFDd😀');
  });

  it('truncate and clamp never split a pair', () => {
    expect(truncate('ab😀', 3)).toBe('ab');
    expect(truncate('ab😀', 4)).toBe('ab😀');
    expect(truncate('abc', 0)).toBe('');
    expect(clamp('a\u0000😀', 3)).toBe('a\uFFFD');
    expect(truncateCodePoints('a😀b', 2)).toBe('a😀');
    expect(truncateCodePoints('a😀b', 1)).toBe('a');
    expect(truncateCodePoints('😀😀', 0)).toBe('');
    // A lone surrogate counts as one code point and becomes U+FFFD.
    expect(truncateCodePoints('\ud800\ud800\ud800', 2)).toBe('\ud800\ud800');
    expect(clampCodePoints('\udc00😀😀', 2)).toBe('\uFFFD😀');
  });

  it('a stream keeps a pair split over deltas whole, and ends a dangling half as U+FFFD', () => {
    const stream = new SafeTextStream();
    const out = ['a\ud83d', '\ude00b', '\ud83d', '\ud83d', '\ude00', '\u0000x\ud800'].map((d) => stream.push(d));
    expect(out).toEqual(['a', '😀b', '', '\uFFFD', '😀', '\uFFFDx']);
    expect(stream.end()).toBe('\uFFFD');
    expect(stream.end()).toBe('');
  });
});

describe('SseDataReader limits', () => {
  const bytes = (text: string) => new TextEncoder().encode(text);

  it('refuses a line past its limit while it is still arriving, and an event of many lines past it', () => {
    const reader = new SseDataReader(1000);
    expect(reader.push(bytes(`data: ${'x'.repeat(600)}`))).toEqual([]);
    expect(() => reader.push(bytes('y'.repeat(600)))).toThrow(SseLineTooLong);
    const lines = new SseDataReader(1000);
    expect(() => lines.push(bytes(`data: ${'x'.repeat(600)}\ndata: ${'y'.repeat(600)}\n`))).toThrow(SseLineTooLong);
    expect(new SseDataReader(1000).push(bytes(`data: ${'x'.repeat(990)}\n\n`))).toEqual(['x'.repeat(990)]);
  });

  it('reads a 20 MB line in 64 KiB chunks in linear time', () => {
    const reader = new SseDataReader();
    const chunk = bytes('z'.repeat(65_536));
    const started = performance.now();
    reader.push(bytes('data: '));
    for (let i = 0; i < 320; i++) expect(reader.push(chunk)).toEqual([]);
    const [event] = reader.push(bytes('\n\n'));
    // Quadratic rescanning took seconds here.
    expect(performance.now() - started).toBeLessThan(1000);
    expect(event).toHaveLength(320 * 65_536);
  });
});
