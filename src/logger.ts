import pino from 'pino';

export type Logger = pino.Logger;

// Secrets can reach a log line through headers, connection params or inputs; pino drops them.
const redact = [
  'req.headers.authorization',
  'req.headers.cookie',
  '*.authorization',
  '*.apiKey',
  '*.apiKeyEncrypted',
  'connectionParams',
];

export function createLogger(level: string, destination?: pino.DestinationStream): Logger {
  return pino({ level, redact: { paths: redact, censor: '[redacted]' }, base: { service: 'parley' } }, destination);
}
