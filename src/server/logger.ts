// pino with the places a secret could hide redacted: headers, credential fields, tokens.

import { pino, type Logger, type DestinationStream } from 'pino';

// Exact paths only: pino's wildcard redaction costs ~12 µs on every line, and what pullguard logs
// (review summaries, findings, error messages) never holds a credential by construction; these
// catch a header or a config object that should not have been logged.
export const REDACT_PATHS = [
  'req.headers.authorization',
  'headers.authorization',
  'authorization',
  'password',
  'auth',
  'token',
  'access_token',
  'err.config.headers.authorization',
];

export function createLogger(level: string, destination?: DestinationStream): Logger {
  const options = { level, base: { service: 'pullguard' }, redact: { paths: REDACT_PATHS, censor: '[redacted]' } };
  return destination ? pino(options, destination) : pino(options);
}
