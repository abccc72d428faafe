// pino with the places a secret could hide redacted: headers, docker config fields, tokens.

import { pino, type Logger, type DestinationStream } from 'pino';

export const REDACT_PATHS = [
  'req.headers.authorization',
  'headers.authorization',
  '*.headers.authorization',
  'authorization',
  '*.authorization',
  'password',
  '*.password',
  'auth',
  '*.auth',
  'token',
  '*.token',
  'access_token',
  '*.access_token',
  '*.dockerconfigjson',
  '*[".dockerconfigjson"]',
  '*[".dockercfg"]',
];

export function createLogger(level: string, destination?: DestinationStream): Logger {
  const options = { level, base: { service: 'pullguard' }, redact: { paths: REDACT_PATHS, censor: '[redacted]' } };
  return destination ? pino(options, destination) : pino(options);
}
