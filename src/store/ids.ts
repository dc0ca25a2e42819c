// Row ids made by the store itself, where Prisma's default cannot make them (raw statements, copies).
import { randomBytes } from 'node:crypto';

/** A version 7 UUID (RFC 9562): millisecond timestamp first, like Prisma's uuid(7) default. */
export function uuid7(): string {
  const bytes = randomBytes(16);
  bytes.writeUIntBE(Date.now(), 0, 6);
  bytes[6] = (bytes[6]! & 0x0f) | 0x70;
  bytes[8] = (bytes[8]! & 0x3f) | 0x80;
  const hex = bytes.toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}
