// The configured platforms, parsed once for every command; its own module so that `pullguard check
// --offline` can read them without loading the engine.

import { UsageError } from '../errors.ts';
import { parsePlatform, type Platform } from '../platform/index.ts';

export function parsePlatforms(list: readonly string[]): Platform[] {
  return list.map((p) => {
    try {
      return parsePlatform(p);
    } catch (err) {
      throw new UsageError(`platform "${p}": ${(err as Error).message}`);
    }
  });
}
