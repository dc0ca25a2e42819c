import { encode } from 'gpt-tokenizer';

// Chat formats wrap every message in a few tokens of role markup.
const PER_MESSAGE_OVERHEAD = 4;

export function countTokens(text: string): number {
  return encode(text).length;
}

export function countMessageTokens(message: { content: string; tokenCount?: number | null }): number {
  return (message.tokenCount ?? countTokens(message.content)) + PER_MESSAGE_OVERHEAD;
}
