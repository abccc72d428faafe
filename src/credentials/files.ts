// Docker config files from disk, each read and parsed once: the CLI's --docker-config, the nodes' own
// config files (one keyring), and the person's credential stores (stores.ts), which also need
// docker's credential-helper settings from the same file.

import { readFileSync } from 'node:fs';
import { type DockerConfigEntry, parseDockerConfigFileJSON } from './dockerconfig.ts';
import { Keyring } from './keyring.ts';
import { PullguardError } from '../errors.ts';
import { systemErrorText } from '../system-errors.ts';

export class CredentialFileError extends PullguardError {
  readonly code = 'credential-file';
}

/** docker's credential helpers: one per registry (credHelpers), or one for all (credsStore). */
interface HelperSettings {
  credHelpers: Record<string, string>;
  credsStore?: string;
}

/** One docker config file, read and parsed. */
interface DockerConfigFile {
  file: string;
  /** `auths`, or the legacy flat map, as the kubelet decodes them */
  entries: Map<string, DockerConfigEntry>;
  helpers: HelperSettings;
}

/** Why a docker config file cannot be used, said for a file given by name or for a default one. */
interface UnusableFile {
  /** nothing there (or a part of the path is a file): a default location that is simply not in use */
  missing: boolean;
  /** for a file given by name; `given` is where it was given (a flag, a setting) */
  error(given: string): CredentialFileError;
  /** for a default file passed over */
  skipped: string;
}

type DockerConfigRead = { config: DockerConfigFile; unusable?: never } | { config?: never; unusable: UnusableFile };

/** Reads and parses one docker config file, once. */
export function readDockerConfig(file: string): DockerConfigRead {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why = systemErrorText(err, 'read');
    return {
      unusable: {
        missing: code === 'ENOENT' || code === 'ENOTDIR',
        error: (given) => new CredentialFileError(`cannot read docker config ${file}: ${why} (check ${given})`),
        skipped: `${file}: cannot read it: ${why}`,
      },
    };
  }
  try {
    const { entries, json } = parseDockerConfigFileJSON(text);
    return { config: { file, entries, helpers: helperSettings(json) } };
  } catch {
    return { unusable: notValid(file) };
  }
}

/** A file whose content is not a docker config. */
function notValid(file: string): UnusableFile {
  // The parser's message never holds secret material, but say only what a person needs.
  const message = `docker config ${file} is not valid JSON in the config.json or .dockercfg format`;
  return { missing: false, error: () => new CredentialFileError(message), skipped: message };
}

function helperSettings(json: unknown): HelperSettings {
  // A file holding only `null` is an empty config to docker's decoder as to the kubelet's.
  if (json === null) return { credHelpers: {} };
  // The parser accepted it: a JSON object. Docker's own keys, matched exactly.
  const { credHelpers: named, credsStore } = json as { credHelpers?: unknown; credsStore?: unknown };
  const credHelpers: Record<string, string> = {};
  if (named && typeof named === 'object')
    for (const [k, v] of Object.entries(named)) if (typeof v === 'string' && v) credHelpers[k] = v;
  return { credHelpers, ...(typeof credsStore === 'string' && credsStore ? { credsStore } : {}) };
}

/** One keyring from the given files, in order; a file that cannot be read or parsed is an error. */
export function keyringFromFiles(files: readonly string[]): Keyring {
  const keyring = new Keyring();
  for (const file of files) {
    const read = readDockerConfig(file);
    if (read.unusable) throw read.unusable.error('--docker-config or credentials.nodeDockerConfigs');
    keyring.addConfig(read.config.entries, `file ${file}`);
  }
  return keyring;
}
