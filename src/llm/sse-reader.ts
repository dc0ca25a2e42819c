// The `data` of each server-sent event in a byte stream, events split anywhere across chunks,
// lines ended by LF, CRLF or CR. Comments and other fields are skipped. Each byte is scanned once,
// however long a line is, and a line or an event past `maxChars` is refused.

export class SseLineTooLong extends Error {
  override name = 'SseLineTooLong';
}

const LF = 10;
const CR = 13;

export class SseDataReader {
  private readonly decoder = new TextDecoder();
  /** The unfinished line, in parts: joined once, when it ends. */
  private partial: string[] = [];
  private partialChars = 0;
  /** The previous chunk ended in CR: a LF opening this one belongs to it. */
  private afterCr = false;
  private data: string[] = [];
  private dataChars = 0;

  constructor(private readonly maxChars = Number.MAX_SAFE_INTEGER) {}

  push(bytes: Uint8Array): string[] {
    const text = this.decoder.decode(bytes, { stream: true });
    const events: string[] = [];
    let start = 0;
    if (this.afterCr && text.length > 0) {
      this.afterCr = false;
      if (text.charCodeAt(0) === LF) start = 1;
    }
    // The next LF and CR at or after `start`, each searched for again only once passed.
    let lf = text.indexOf('\n', start);
    let cr = text.indexOf('\r', start);
    while (lf !== -1 || cr !== -1) {
      const end = lf === -1 ? cr : cr === -1 ? lf : Math.min(lf, cr);
      let line = text.slice(start, end);
      if (this.partial.length > 0) {
        line = this.partial.join('') + line;
        this.partial = [];
        this.partialChars = 0;
      }
      if (text.charCodeAt(end) === CR) {
        if (end + 1 === text.length) this.afterCr = true;
        start = end + (text.charCodeAt(end + 1) === LF ? 2 : 1);
      } else start = end + 1;
      if (lf !== -1 && lf < start) lf = text.indexOf('\n', start);
      if (cr !== -1 && cr < start) cr = text.indexOf('\r', start);
      this.line(line, events);
    }
    if (start < text.length) {
      this.partialChars += text.length - start;
      if (this.partialChars > this.maxChars) throw new SseLineTooLong(`the model sent a line of over ${this.maxChars} characters`);
      this.partial.push(text.slice(start));
    }
    return events;
  }

  private line(line: string, events: string[]): void {
    if (line === '') {
      if (this.data.length > 0) events.push(this.data.join('\n'));
      this.data = [];
      this.dataChars = 0;
    } else if (line.startsWith('data:')) {
      const value = line.charCodeAt(5) === 32 ? line.slice(6) : line.slice(5);
      this.dataChars += value.length;
      if (this.dataChars > this.maxChars) throw new SseLineTooLong(`the model sent an event of over ${this.maxChars} characters`);
      this.data.push(value);
    }
  }
}
