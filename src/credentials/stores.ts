// The credentials of the person running `pullguard check`, where the tools they use keep them:
// `--docker-config` files when given (they replace everything else), otherwise, in this order,
// REGISTRY_AUTH_FILE, ${XDG_RUNTIME_DIR}/containers/auth.json and
// ${XDG_CONFIG_HOME:-~/.config}/containers/auth.json (podman, skopeo, buildah: containers-auth.json(5)),
// then $DOCKER_CONFIG/config.json or else ~/.docker/config.json (docker's cli/config loading).
// A registry with a credential helper (credHelpers, or credsStore for all) is asked through
// `docker-credential-<name> get`, as docker does, instead of the file's `auths`.

import { accessSync, constants, statSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { cut, oneLine } from '../text.ts';
import { isDockerHub } from '../registry/hosts.ts';
import { runCredentialProgram } from './exec.ts';
import { readDockerConfig } from './files.ts';
import { type Credential, Keyring } from './keyring.ts';

/** One credential store file: its `auths` as a keyring, and the helpers it names. */
export interface StoreFile {
  file: string;
  keyring: Keyring;
  credHelpers: Record<string, string>;
  credsStore?: string;
}

/** The default files, in lookup order; the ones that do not exist are skipped later. */
export function defaultStorePaths(env: NodeJS.ProcessEnv): string[] {
  // Only the environment given: HOME, not the account's home directory (tests and embedders pass
  // their own environment, which must not pick up the machine's credentials).
  const home = env.HOME;
  const paths: string[] = [];
  if (env.REGISTRY_AUTH_FILE) paths.push(env.REGISTRY_AUTH_FILE);
  if (env.XDG_RUNTIME_DIR) paths.push(join(env.XDG_RUNTIME_DIR, 'containers', 'auth.json'));
  const configHome = env.XDG_CONFIG_HOME || (home ? join(home, '.config') : undefined);
  if (configHome) paths.push(join(configHome, 'containers', 'auth.json'));
  if (env.DOCKER_CONFIG) paths.push(join(env.DOCKER_CONFIG, 'config.json'));
  else if (home) paths.push(join(home, '.docker', 'config.json'));
  return [...new Set(paths)];
}

/**
 * Reads store files. `explicit` files must be readable and valid (a mistake there is bad usage);
 * default ones that are missing are skipped, and unreadable or invalid ones are reported in `skipped`.
 */
export function readStoreFiles(
  files: readonly string[],
  explicit: boolean,
): { stores: StoreFile[]; skipped: string[] } {
  const stores: StoreFile[] = [];
  const skipped: string[] = [];
  for (const file of files) {
    const read = readDockerConfig(file);
    if (read.unusable) {
      if (explicit) throw read.unusable.error('--docker-config');
      if (!read.unusable.missing) skipped.push(read.unusable.skipped);
      continue;
    }
    const keyring = new Keyring();
    keyring.addConfig(read.config.entries, `file ${file}`);
    stores.push({ file, keyring, ...read.config.helpers });
  }
  return { stores, skipped };
}

export interface StoreLookup {
  credentials: Credential[];
  /** one line each: a helper that is missing, failed or answered nonsense; never a secret */
  failures: string[];
}

/** The names docker files Docker Hub credentials under, and the server URL its helpers are asked for. */
const HUB_KEYS = ['https://index.docker.io/v1/', 'index.docker.io', 'docker.io', 'registry-1.docker.io'];

export class UserCredentials {
  private readonly stores: StoreFile[];
  private readonly timeoutMs: number;
  private readonly env: NodeJS.ProcessEnv;
  /** per helper and server: one run per check */
  private readonly asked = new Map<string, Promise<{ cred?: Credential; failure?: string }>>();

  constructor(stores: StoreFile[], opts: { timeoutMs: number; env: NodeJS.ProcessEnv }) {
    this.stores = stores;
    this.timeoutMs = opts.timeoutMs;
    this.env = opts.env;
  }

  /** the files credentials come from, in lookup order */
  get files(): string[] {
    return this.stores.map((s) => s.file);
  }

  /** Credentials for an image (the kubelet's repository name) on `domain`, store by store in order. */
  async lookup(name: string, domain: string): Promise<StoreLookup> {
    const credentials: Credential[] = [];
    const failures: string[] = [];
    const hub = isDockerHub(domain);
    const keys = hub ? HUB_KEYS : [domain];
    for (const store of this.stores) {
      const key = keys.find((k) => store.credHelpers[k]);
      const helper = key ? store.credHelpers[key] : store.credsStore;
      if (!helper) {
        credentials.push(...store.keyring.lookup(name));
        continue;
      }
      const server = key ?? (hub ? HUB_KEYS[0]! : domain);
      const answer = await this.ask(helper, server, store.file);
      if (answer.cred) credentials.push(answer.cred);
      if (answer.failure) failures.push(answer.failure);
    }
    return { credentials, failures };
  }

  private ask(helper: string, server: string, file: string) {
    const id = `${helper}\u0000${server}`;
    let p = this.asked.get(id);
    if (!p) this.asked.set(id, (p = this.runHelper(helper, server, file)));
    return p;
  }

  private async runHelper(
    helper: string,
    server: string,
    file: string,
  ): Promise<{ cred?: Credential; failure?: string }> {
    const program = `docker-credential-${helper}`;
    const label = `credential helper ${program} (named in ${file})`;
    if (!/^[A-Za-z0-9._-]+$/.test(helper))
      return { failure: `${label}: "${cut(oneLine(helper), 60)}" is not a helper name` };
    const path = findOnPath(program, this.env);
    if (!path) return { failure: `${label} is not installed (not found on PATH)` };
    const r = await runCredentialProgram(path, ['get'], server, {
      timeoutMs: this.timeoutMs,
      env: this.env,
      name: label,
    });
    if (!r.ok) {
      // The helper protocol: on failure, the error text is on stdout. "credentials not found" is no
      // credential. Its stdout is never shown: a helper that prints its answer and then fails would
      // put the secret in the finding (and in every report made of it). Its stderr, redacted, is.
      if (r.code !== undefined && /credentials not found/i.test(r.stdout.slice(0, 4096))) return {};
      return { failure: r.error! };
    }
    let json: { Username?: unknown; Secret?: unknown };
    try {
      json = JSON.parse(r.stdout) as typeof json;
    } catch {
      return { failure: `${label} answered something that is not JSON` };
    }
    if (typeof json.Username !== 'string' || typeof json.Secret !== 'string' || !json.Secret)
      return { failure: `${label} answered without Username and Secret` };
    return { cred: Object.freeze({ username: json.Username, password: json.Secret, source: program, key: server }) };
  }
}

function findOnPath(program: string, env: NodeJS.ProcessEnv): string | undefined {
  for (const dir of (env.PATH ?? '').split(delimiter)) {
    if (!dir) continue;
    const candidate = join(dir, program);
    try {
      accessSync(candidate, constants.X_OK);
      if (statSync(candidate).isFile()) return candidate;
    } catch {
      // not here
    }
  }
  return undefined;
}
