// Shared set-up for the engine tests: a config from partial input, and one-image checks.
import { validateConfig, type ConfigInput } from '../../src/config/schema.ts';
import { Keyring } from '../../src/credentials/keyring.ts';
import { parsePlatform } from '../../src/platform/index.ts';
import type { CredentialContext } from '../../src/credentials/context.ts';
import { Preflight, type ImageVerdict } from '../../src/preflight/engine.ts';
import { registryClientFor } from '../../src/app/build.ts';

/**
 * A deadline far longer than any answer takes, even on a busy machine: a test that is not about the
 * deadline must never see a `timeout`. Tests about it pass their own, short one.
 */
export const LONG_DEADLINE = 60_000;

export function engineFor(input: ConfigInput, caPems: string[] = []): Preflight {
  const config = validateConfig({ deadline: LONG_DEADLINE, ...input });
  return new Preflight(config, registryClientFor(config, caPems));
}

export function keyring(
  entries: Record<string, { username: string; password: string }>,
  source = 'secret shop/regcred',
): Keyring {
  const k = new Keyring();
  for (const [key, cred] of Object.entries(entries)) k.add(key, { ...cred, source });
  return k;
}

/** One image through the engine's check, deadline included. */
export async function checkImage(
  engine: Preflight,
  image: string,
  opts: Partial<CredentialContext> & { platforms?: string[]; pullPolicy?: string } = {},
): Promise<ImageVerdict> {
  const { platforms, pullPolicy, ...credentials } = opts;
  const [finding] = await engine.check(
    [
      {
        object: { kind: 'Pod' },
        container: 'app',
        field: 'spec.containers[0].image',
        image,
        ...(pullPolicy ? { pullPolicy } : {}),
      },
    ],
    {
      credentials: { keyrings: [], ...credentials },
      ...(platforms ? { platforms: platforms.map((p) => parsePlatform(p)) } : {}),
    },
  );
  return finding!;
}

/** Every message and hint a person may read: one line, no control characters. */
export function isOneLine(text: string): boolean {
  return !/[\u0000-\u001f\u007f]/.test(text);
}
