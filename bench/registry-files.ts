// What a command needs to reach a private registry over TLS, as files: pullguard's CLI and skopeo
// read the same credentials and CA in the benchmarks that set them side by side.

import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { TestRegistry } from '../test/helpers/registry.ts';

export interface User {
  username: string;
  password: string;
}

/** What a command needs to reach a private registry over TLS, as files. */
export interface RegistryFiles {
  /** a docker config with the user's credentials for the registry */
  dockerConfig: string;
  /** the registry's CA, for --registry-ca */
  caPem: string;
  /** the same CA as skopeo's --cert-dir wants it */
  certDir: string;
}

export function writeRegistryFiles(dir: string, reg: TestRegistry, user: User): RegistryFiles {
  const files = { dockerConfig: join(dir, 'config.json'), caPem: join(dir, 'ca.pem'), certDir: join(dir, 'certs') };
  writeFileSync(
    files.dockerConfig,
    JSON.stringify({
      auths: { [reg.host]: { auth: Buffer.from(`${user.username}:${user.password}`).toString('base64') } },
    }),
  );
  writeFileSync(files.caPem, reg.caPem!);
  mkdirSync(files.certDir);
  copyFileSync(reg.caFile!, join(files.certDir, 'ca.crt'));
  return files;
}

/** `pullguard check` flags for those files, with JSON output. */
export const checkFlags = (f: RegistryFiles): string[] => [
  '--docker-config',
  f.dockerConfig,
  '--registry-ca',
  f.caPem,
  '-o',
  'json',
];

/** skopeo's arguments to read the manifest of `image` with those files and the user's password. */
export const skopeoInspectArgs = (f: RegistryFiles, user: User, image: string): string[] => [
  'inspect',
  '--raw',
  '--cert-dir',
  f.certDir,
  '--creds',
  `${user.username}:${user.password}`,
  `docker://${image}`,
];
