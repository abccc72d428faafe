// What re-verification keeps of a workload (cluster/projections.ts WORKLOADS) must check as the
// whole object checks: the same image uses (images, pull policies, fields, image volumes) and the
// same placement (where its pods may land), for each kind, with the rest of the object let go.
import t from 'tap';
import { keptWorkload, watchedPod } from '../../src/cluster/projections.ts';
import { placementOf } from '../../src/placement/placement.ts';
import { imageUsesOf, podSpecSite } from '../../src/workload/images.ts';
import { shapedPod } from '../helpers/cluster-fill.ts';

/** A pod template as teams write them: env, probes, resources, mounts, and the fields the check reads. */
function template(): Record<string, unknown> {
  const pod = shapedPod({ namespace: 'shop', name: 'web-1', node: '', image: 'registry.test/shop/web:1.4' });
  const spec = { ...(pod.spec as Record<string, unknown>) };
  delete spec.nodeName;
  return {
    metadata: { labels: { app: 'web' }, annotations: { 'checksum/config': 'abc' } },
    spec: {
      ...spec,
      serviceAccountName: 'web',
      imagePullSecrets: [{ name: 'regcred' }],
      initContainers: [{ name: 'migrate', image: 'registry.test/shop/migrate:1.4', imagePullPolicy: 'Always' }],
      nodeSelector: { 'kubernetes.io/arch': 'arm64' },
      affinity: {
        nodeAffinity: {
          requiredDuringSchedulingIgnoredDuringExecution: {
            nodeSelectorTerms: [{ matchExpressions: [{ key: 'pool', operator: 'In', values: ['a', 'b'] }] }],
          },
        },
      },
      tolerations: [{ key: 'dedicated', operator: 'Equal', value: 'arm', effect: 'NoSchedule' }],
      volumes: [
        { name: 'config', configMap: { name: 'web-config' } },
        { name: 'models', image: { reference: 'registry.test/shop/models:7', pullPolicy: 'IfNotPresent' } },
      ],
    },
  };
}

const meta = {
  name: 'web',
  namespace: 'shop',
  uid: 'u-1',
  labels: { app: 'web' },
  managedFields: [{ manager: 'kubectl' }],
};
const objects: Record<string, Record<string, unknown>> = {
  Deployment: {
    metadata: meta,
    spec: { replicas: 3, selector: { matchLabels: { app: 'web' } }, template: template() },
  },
  StatefulSet: { metadata: meta, spec: { serviceName: 'web', template: template() } },
  DaemonSet: { metadata: meta, spec: { template: template() } },
  CronJob: { metadata: meta, spec: { schedule: '*/5 * * * *', jobTemplate: { spec: { template: template() } } } },
};

for (const [kind, object] of Object.entries(objects)) {
  t.test(`${kind}: the kept workload checks as the whole one`, async (t) => {
    const kept = keptWorkload(object);
    t.ok(kept, 'kept');
    const whole = podSpecSite({ ...object, kind });
    const small = podSpecSite({ ...kept, kind });
    t.ok(whole && small);
    t.same(imageUsesOf(small!), imageUsesOf(whole!), 'the same image uses');
    t.same(placementOf(small!.spec, kind), placementOf(whole!.spec, kind), 'the same placement');
    t.same(kept!.metadata, { name: 'web', namespace: 'shop', uid: 'u-1' });
    const size = (o: unknown) => JSON.stringify(o).length;
    t.ok(size(kept) * 3 < size(object), `${size(kept)} bytes kept of ${size(object)}`);
  });
}

t.test('a workload without a pod template, or without a name, is not kept', async (t) => {
  t.equal(keptWorkload({ metadata: { name: 'x' }, spec: { replicas: 1 } }), undefined);
  t.equal(keptWorkload({ metadata: {}, spec: { template: template() } }), undefined);
  t.equal(keptWorkload('not an object'), undefined);
});

t.test("a pod's spec is kept the way a template's is", async (t) => {
  const pod = { metadata: { uid: 'p1', name: 'web-1', namespace: 'shop' }, spec: template().spec };
  const kept = keptWorkload({ metadata: pod.metadata, spec: { template: { spec: pod.spec } } });
  t.same(watchedPod(pod)?.spec, kept?.spec.template?.spec);
});
