// The largest real objects an AdmissionReview carries, and the hostile bodies that are not objects
// at all: shared by the body-limit tests and the hostile-load benchmark.

type Obj = Record<string, any>;

/**
 * A Deployment UPDATE as the API server sends it for a big real workload: a pod template with
 * `containers` containers of `envs` env entries each (values, secret and field refs), volume mounts,
 * probes and resources, with the managedFields server-side apply keeps, in object and oldObject.
 */
export function bigDeploymentUpdate(image: string, containers = 40, envs = 250): Obj {
  const container = (c: number) => ({
    name: `worker-${c}`,
    image,
    imagePullPolicy: 'IfNotPresent',
    args: ['--config=/etc/app/config.yaml', `--shard=${c}`],
    env: Array.from({ length: envs }, (_, e) =>
      e % 5 === 0
        ? { name: `SECRET_${c}_${e}`, valueFrom: { secretKeyRef: { name: `app-secrets-${c}`, key: `key-${e}` } } }
        : e % 7 === 0
          ? { name: `POD_FIELD_${e}`, valueFrom: { fieldRef: { apiVersion: 'v1', fieldPath: 'metadata.name' } } }
          : { name: `APP_SETTING_${c}_${e}`, value: `value-${e}-for-worker-${c}` },
    ),
    ports: [{ name: 'http', containerPort: 8080 + c, protocol: 'TCP' }],
    resources: { requests: { cpu: '100m', memory: '128Mi' }, limits: { memory: '256Mi' } },
    volumeMounts: [
      { name: 'config', mountPath: '/etc/app' },
      { name: 'data', mountPath: '/var/lib/app' },
    ],
    readinessProbe: { httpGet: { path: '/ready', port: 8080 + c, scheme: 'HTTP' }, periodSeconds: 10 },
    terminationMessagePath: '/dev/termination-log',
    terminationMessagePolicy: 'File',
  });
  const fieldsFor = (c: number) => ({
    '.': {},
    'f:env': Object.fromEntries(
      Array.from({ length: envs }, (_, e) => [
        `k:{"name":"APP_SETTING_${c}_${e}"}`,
        { '.': {}, 'f:name': {}, 'f:value': {} },
      ]),
    ),
    'f:image': {},
    'f:name': {},
    'f:resources': { 'f:limits': { 'f:memory': {} }, 'f:requests': { 'f:cpu': {}, 'f:memory': {} } },
  });
  const deployment = (generation: number) => ({
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: {
      name: 'big',
      namespace: 'shop',
      uid: '6b0c2c66-3a6f-4d43-9a25-6f0d6b1c3a01',
      generation,
      labels: { app: 'big' },
      managedFields: [
        {
          manager: 'kubectl',
          operation: 'Apply',
          apiVersion: 'apps/v1',
          fieldsType: 'FieldsV1',
          fieldsV1: {
            'f:spec': {
              'f:template': {
                'f:spec': {
                  'f:containers': Object.fromEntries(
                    Array.from({ length: containers }, (_, c) => [`k:{"name":"worker-${c}"}`, fieldsFor(c)]),
                  ),
                },
              },
            },
          },
        },
      ],
    },
    spec: {
      replicas: 3,
      selector: { matchLabels: { app: 'big' } },
      template: {
        metadata: { labels: { app: 'big' } },
        spec: {
          containers: Array.from({ length: containers }, (_, c) => container(c)),
          volumes: [
            { name: 'config', configMap: { name: 'app-config' } },
            { name: 'data', emptyDir: {} },
          ],
        },
      },
    },
  });
  return {
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    request: {
      uid: '0d6f5c1e-7b1a-4b9e-9d59-1c2f3a4b5c6d',
      kind: { group: 'apps', version: 'v1', kind: 'Deployment' },
      resource: { group: 'apps', version: 'v1', resource: 'deployments' },
      requestKind: { group: 'apps', version: 'v1', kind: 'Deployment' },
      name: 'big',
      namespace: 'shop',
      operation: 'UPDATE',
      userInfo: { username: 'kubernetes-admin', groups: ['system:masters', 'system:authenticated'] },
      object: deployment(2),
      oldObject: deployment(1),
      dryRun: false,
      options: { kind: 'UpdateOptions', apiVersion: 'meta.k8s.io/v1', fieldManager: 'kubectl' },
    },
  };
}

/** `[{},{},…]` of about `bytes` bytes: millions of objects in a few MiB. */
export function manyObjects(bytes: number): Buffer {
  const n = Math.max(1, Math.floor((bytes - 2) / 3));
  return Buffer.concat([Buffer.from('['), Buffer.alloc((n - 1) * 3, '{},'), Buffer.from('{}]')]);
}

/** `[[[…]]]`, `depth` deep. */
export function deepArrays(depth: number): Buffer {
  return Buffer.concat([Buffer.alloc(depth, '['), Buffer.alloc(depth, ']')]);
}

/** An AdmissionReview whose object carries `[{},{},…]` of about `bytes` bytes. */
export function reviewWithManyObjects(bytes: number): Buffer {
  return Buffer.concat([
    Buffer.from(
      '{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"x","kind":{"group":"","version":"v1","kind":"Pod"},"operation":"CREATE","object":{"spec":{"containers":',
    ),
    manyObjects(bytes),
    Buffer.from('}}}}'),
  ]);
}
