// Docker config files as a keyring: the CLI's --docker-config and the nodes' own config files.

import { readFileSync } from 'node:fs';
import { parseDockerConfigFile } from './dockerconfig.ts';
import { Keyring } from './keyring.ts';
import { PullguardError } from '../errors.ts';
import { systemErrorText } from '../system-errors.ts';

export class CredentialFileError extends PullguardError {
  readonly code = 'credential-file';
}

/** One keyring from the given files, in order; a file that cannot be read or parsed is an error. */
export function keyringFromFiles(files: readonly string[]): Keyring {
  const keyring = new Keyring();
  for (const file of files) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      throw new CredentialFileError(
        `cannot read docker config ${file}: ${systemErrorText(err, 'read')} (check --docker-config or credentials.nodeDockerConfigs)`,
      );
    }
    try {
      keyring.addConfig(parseDockerConfigFile(text), `file ${file}`);
    } catch {
      // The parser's message never holds secret material, but say only what a person needs.
      throw new CredentialFileError(`docker config ${file} is not valid JSON in the config.json or .dockercfg format`);
    }
  }
  return keyring;
}
