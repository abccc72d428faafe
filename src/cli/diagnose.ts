// `pullguard diagnose`: for pods already stuck on an image pull, the kubelet's evidence beside
// pullguard's cause, fix and outlook. Exit 0: nothing stuck; 1: something is; 2: usage or cluster errors.

import { parseArgs } from 'node:util';
import { diagnosePods } from '../app/diagnose.ts';
import { loadConfig } from '../config/schema.ts';
import { DiagnosisReport } from '../diagnose/diagnose.ts';
import { UsageError } from '../errors.ts';
import { oneLine } from '../text.ts';
import { exitStatusFor } from './errors.ts';
import { type CliIO, REGISTRY_FLAGS, registryOverrides } from './flags.ts';

export const DIAGNOSE_USAGE = `Usage: pullguard diagnose [POD...] [-n NS | -A] [-l SELECTOR] [options]

Explains pods whose containers wait with ErrImagePull, ImagePullBackOff, InvalidImageName,
ErrImageNeverPull, ImageInspectError, RegistryUnavailable or SignatureValidationFailed (image volumes
too): the kubelet's own message, the cause and fix, and whether the next retry will succeed.

Options:
  -n, --namespace NS            the namespace (default: the kubeconfig context's, else default)
  -A, --all-namespaces          every namespace
  -l, --selector SELECTOR       only pods with these labels, e.g. app=web
      --kubeconfig FILE         cluster access (default: KUBECONFIG, then in-cluster)
      --context NAME            the kubeconfig context to use
      --docker-config FILE      the nodes' docker config (node credentials; repeatable)
      --insecure-registry HOST  registry reached without TLS verification or over plain HTTP (repeatable)
      --hosts-dir DIR           the nodes' containerd hosts directory (certs.d: <host>/hosts.toml mirrors)
      --registries-conf FILE    the nodes' CRI-O registries.conf (mirrors, rewrites, blocked, short names)
      --registries-conf-dir DIR its registries.conf.d drop-ins
      --registry-ca FILE        extra CA certificate (PEM) for registries (repeatable)
      --timeout DURATION        deadline per pod (default from config: 8s)
  -o, --output text|json        output format (default text)
      --config FILE             configuration file (YAML or JSON); flags override it
  -h, --help                    this help

Exit status: 0 nothing is stuck, 1 a container is stuck, 2 bad usage or the cluster could not be read.
`;

export async function runDiagnose(argv: string[], io: CliIO): Promise<number> {
  try {
    return await diagnoseCommand(argv, io);
  } catch (err) {
    return exitStatusFor('diagnose', err, io);
  }
}

async function diagnoseCommand(argv: string[], io: CliIO): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        ...REGISTRY_FLAGS,
        namespace: { type: 'string', short: 'n' },
        'all-namespaces': { type: 'boolean', short: 'A' },
        selector: { type: 'string', short: 'l' },
        kubeconfig: { type: 'string' },
        context: { type: 'string' },
        output: { type: 'string', short: 'o' },
        help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const v = parsed.values;
  if (v.help) {
    io.stdout(DIAGNOSE_USAGE);
    return 0;
  }
  const output = v.output ?? 'text';
  if (output !== 'text' && output !== 'json') throw new UsageError(`--output must be text or json, not "${output}"`);
  if (v['all-namespaces'] && v.namespace) throw new UsageError('use either --namespace or --all-namespaces');
  if (v['all-namespaces'] && parsed.positionals.length)
    throw new UsageError('name pods with --namespace, not --all-namespaces');
  if (v.platform?.length)
    throw new UsageError("--platform is not an option of diagnose: a pod's platform is its node's");

  // The same credentials (pull secrets, node files, credential provider plugins), proxies and
  // CAs as the webhook's pod check; a pod's platform is its node's, so no node list is kept.
  const flags = registryOverrides(v);
  flags.cluster = { watchNodes: false, ...(v.kubeconfig ? { kubeconfig: v.kubeconfig } : {}) };
  if (v['docker-config']?.length)
    flags.credentials = { ...(flags.credentials as object | undefined), nodeDockerConfigs: v['docker-config'] };
  const config = loadConfig({ ...(v.config ? { file: v.config } : {}), env: io.env, flags });
  // Each pod's diagnoses are written as they are made, in the order the pods were listed.
  const report = new DiagnosisReport(output, (text) => io.stdout(text));
  let errors = 0;
  const listed = diagnosePods(
    config,
    { env: io.env, ...(v.context ? { context: v.context } : {}) },
    {
      ...(v.namespace ? { namespace: v.namespace } : {}),
      allNamespaces: Boolean(v['all-namespaces']),
      pods: parsed.positionals,
      ...(v.selector ? { labelSelector: v.selector } : {}),
    },
    {
      diagnoses: (list) => report.add(list),
      error: (line) => {
        errors++;
        io.stderr(`pullguard diagnose: ${oneLine(line)}\n`);
      },
    },
  );
  try {
    await listed;
  } catch (err) {
    // a list that failed part way: what was written is ended as a whole report (JSON stays one document)
    if (report.counts.diagnoses) report.end();
    throw err;
  }
  report.end();
  if (report.counts.stuck) return 1;
  return errors ? 2 : 0;
}
