// The Deployment and what runs around it: availability, the restricted security profile, probes,
// resources, and the files the configuration points at.
import t from 'tap';
import { join } from 'node:path';
import { loadConfig } from '../../src/config/schema.ts';
import { baseDir, baseObjects, labelsMatch, only, resolvePort, type Obj } from './lib.ts';

const objects = baseObjects();
const dep = only(objects, 'Deployment');
const pod = dep.spec.template.spec as Obj;
const podLabels = dep.spec.template.metadata.labels as Record<string, string>;
const container = pod.containers[0] as Obj;
const configFile = join(baseDir, 'config.yaml');
const config = loadConfig({ file: configFile, env: {} });

t.test('one container, no init containers', async (t) => {
  t.equal(pod.containers.length, 1);
  t.equal(pod.initContainers, undefined);
});

t.test('two replicas on different nodes, one always up', async (t) => {
  t.equal(dep.spec.replicas, 2);
  const spread = (pod.topologySpreadConstraints as Obj[] | undefined)?.find(
    (c) => c.topologyKey === 'kubernetes.io/hostname',
  );
  t.ok(spread, 'spread over nodes');
  t.equal(spread?.maxSkew, 1);
  t.ok(
    labelsMatch(spread?.labelSelector?.matchLabels ?? { none: 'none' }, podLabels),
    "the spread counts pullguard's pods",
  );
  t.equal(dep.spec.strategy?.rollingUpdate?.maxUnavailable, 0, 'a rollout never takes a replica away first');
  const pdb = only(objects, 'PodDisruptionBudget');
  t.ok(labelsMatch(pdb.spec.selector.matchLabels, podLabels), 'the PodDisruptionBudget selects the pods');
  t.ok(
    pdb.spec.minAvailable >= 1 && pdb.spec.minAvailable < dep.spec.replicas,
    'minAvailable keeps one up and still allows drains',
  );
  const svc = only(objects, 'Service');
  t.ok(labelsMatch(svc.spec.selector, podLabels), 'the Service selects the pods');
});

t.test('restricted security context (Pod Security Standards "restricted")', async (t) => {
  const psc = pod.securityContext as Obj;
  const csc = container.securityContext as Obj;
  t.equal(psc.runAsNonRoot, true, 'pod runAsNonRoot');
  t.ok(Number.isInteger(psc.runAsUser) && psc.runAsUser > 0, 'pod runAsUser is a non-root uid');
  t.equal(psc.seccompProfile?.type, 'RuntimeDefault', 'pod seccomp RuntimeDefault');
  t.equal(csc.allowPrivilegeEscalation, false, 'no privilege escalation');
  t.equal(csc.readOnlyRootFilesystem, true, 'read-only root filesystem');
  t.same(csc.capabilities?.drop, ['ALL'], 'all capabilities dropped');
  t.equal(csc.capabilities?.add, undefined, 'none added');
  t.not(csc.privileged, true, 'not privileged');
  t.not(csc.runAsUser, 0, 'container does not override to root');
  t.notOk(pod.hostNetwork || pod.hostPID || pod.hostIPC, 'no host namespaces');
  t.notOk(
    (pod.volumes as Obj[]).some((v) => v.hostPath),
    'no hostPath volumes',
  );
  const ns = only(objects, 'Namespace');
  t.equal(
    ns.metadata.labels?.['pod-security.kubernetes.io/enforce'],
    'restricted',
    'the namespace enforces the restricted profile',
  );
});

t.test('probes hit /healthz and /readyz on the HTTPS port', async (t) => {
  for (const [probe, path] of [
    ['livenessProbe', '/healthz'],
    ['readinessProbe', '/readyz'],
  ] as const) {
    const get = container[probe]?.httpGet as Obj | undefined;
    t.equal(get?.path, path, `${probe} path`);
    t.equal(get?.scheme, 'HTTPS', `${probe} over HTTPS`);
    t.equal(resolvePort(container, get?.port), 8443, `${probe} port resolves to 8443`);
    t.ok(
      (container[probe].timeoutSeconds ?? 1) < (container[probe].periodSeconds ?? 10),
      `${probe} times out before the next one starts`,
    );
  }
  t.equal(config.server.port, 8443, 'the configuration serves on 8443');
  t.equal(resolvePort(container, 'https'), config.server.port, 'the container port is the configured one');
});

t.test('the metrics port: the configured server.metricsPort, named metrics, in the Service', async (t) => {
  t.equal(config.server.metricsPort, 9090, 'the configuration serves /metrics on 9090');
  t.not(config.server.metricsPort, config.server.port, 'apart from the webhook port');
  t.equal(resolvePort(container, 'metrics'), config.server.metricsPort, 'the container port "metrics" is it');
  const svc = only(objects, 'Service');
  const port = (svc.spec.ports as Obj[]).find((p) => p.name === 'metrics');
  t.equal(port?.targetPort, 'metrics', 'the Service forwards its metrics port to it');
});

t.test('resource requests and limits', async (t) => {
  for (const kind of ['requests', 'limits']) {
    t.ok(container.resources?.[kind]?.cpu, `cpu ${kind}`);
    t.ok(container.resources?.[kind]?.memory, `memory ${kind}`);
  }
});

t.test('the command line, the configuration file and the mounted files agree', async (t) => {
  t.equal(container.command, undefined, 'the image entrypoint (the pullguard command) is kept');
  const args = container.args as string[];
  t.equal(args[0], 'serve', 'the arguments start with the serve command');
  const configPath = args[args.indexOf('--config') + 1];
  t.equal(configPath, '/etc/pullguard/config.yaml', 'serve --config /etc/pullguard/config.yaml');

  // Map every file the process reads to the volume item that provides it.
  const provided = new Map<string, string>();
  for (const m of container.volumeMounts as Obj[]) {
    const vol = (pod.volumes as Obj[]).find((v) => v.name === m.name);
    t.ok(vol, `volume ${m.name} exists`);
    for (const src of vol?.projected?.sources ?? []) {
      const ref = src.configMap ?? src.secret;
      for (const item of ref?.items ?? [])
        provided.set(
          `${m.mountPath}/${item.path}`,
          `${src.configMap ? 'ConfigMap' : 'Secret'} ${ref.name} key ${item.key}`,
        );
    }
  }
  t.equal(
    provided.get(configPath ?? ''),
    'ConfigMap pullguard-config key config.yaml',
    'config.yaml comes from the ConfigMap',
  );
  t.equal(
    provided.get(config.server.tlsCert ?? ''),
    'Secret pullguard-tls key tls.crt',
    'server.tlsCert comes from the TLS Secret',
  );
  t.equal(
    provided.get(config.server.tlsKey ?? ''),
    'Secret pullguard-tls key tls.key',
    'server.tlsKey comes from the TLS Secret',
  );
  for (const m of container.volumeMounts as Obj[]) {
    const vol = (pod.volumes as Obj[]).find((v) => v.name === m.name);
    if (vol?.projected || vol?.secret || vol?.configMap) t.equal(m.readOnly, true, `${m.mountPath} mounted read-only`);
    t.equal(m.subPath, undefined, `${m.mountPath}: no subPath (it would hide renewed certificates)`);
  }
  const tmp = (container.volumeMounts as Obj[]).find((m) => m.mountPath === '/tmp');
  t.ok(
    tmp && (pod.volumes as Obj[]).find((v) => v.name === tmp.name)?.emptyDir,
    'a writable emptyDir at /tmp beside the read-only root',
  );
});

t.test('the shipped configuration starts in warn mode', async (t) => {
  t.equal(config.mode, 'warn', 'operators start by observing');
});
