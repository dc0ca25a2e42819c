// The reader of the model's event stream: whatever way the bytes are cut into chunks, the same
// events come out, in order.
import { describe, expect, it } from 'vitest';
import { SseDataReader } from '../src/llm/sse-reader.ts';

const encode = (text: string) => new TextEncoder().encode(text);

function readAll(chunks: Uint8Array[]): string[] {
  const reader = new SseDataReader();
  return chunks.flatMap((chunk) => reader.push(chunk));
}

describe('SseDataReader', () => {
  const stream = [
    ': a comment, then an event split over two data lines\n',
    'data: {"a":1,\n',
    'data: "b":"é\u{1F600}"}\n\n',
    'event: ignored-name\r\n',
    'id: 7\r\n',
    'data:no space\r\n\r\n',
    'data: cr only\r\r',
    'data: [DONE]\n\n',
  ].join('');
  const expected = ['{"a":1,\n"b":"é\u{1F600}"}', 'no space', 'cr only', '[DONE]'];

  it('reads events whole from one chunk', () => {
    expect(readAll([encode(stream)])).toEqual(expected);
  });

  it('reads the same events whatever byte the stream is cut at, twice', () => {
    const bytes = encode(stream);
    for (let i = 0; i <= bytes.length; i++) {
      for (const j of [i, Math.min(bytes.length, i + 3)]) {
        expect(readAll([bytes.slice(0, i), bytes.slice(i, j), bytes.slice(j)]), `cut at ${i} and ${j}`).toEqual(expected);
      }
    }
  });

  it('reads the same events a byte at a time, and holds back an unfinished one', () => {
    const bytes = encode(`${stream}data: unfinished`);
    expect(readAll(Array.from(bytes, (b) => Uint8Array.of(b)))).toEqual(expected);
  });
});
