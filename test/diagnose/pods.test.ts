// `diagnose -A` over a cluster larger than a page: the pods are read 500 a page and only the stuck
// ones of each page are kept (src/diagnose/pods.ts, src/cluster/pods.ts), against the lab's real
// kube-apiserver filled with pods shaped like a real cluster's, 1 in 20 stuck.
import t from 'tap';
import { buildPodCheck } from '../../src/app/build.ts';
import type { WatchedPod } from '../../src/cluster/projections.ts';
import type { Projection } from '../../src/cluster/page-split.ts';
import { PodReader } from '../../src/cluster/pods.ts';
import { validateConfig } from '../../src/config/schema.ts';
import type { ContainerDiagnosis } from '../../src/diagnose/diagnose.ts';
import { diagnoseEach } from '../../src/diagnose/pods.ts';
import { fillLab } from '../helpers/cluster-fill.ts';
import { labThroughProxy, startKubeLab, type KubeLab } from '../helpers/kube-lab.ts';
import { freePort } from '../helpers/registry.ts';

/** A PodReader that remembers how many pods each page kept (what diagnose holds at most, with a page in flight). */
class CountingReader extends PodReader {
  kept: number[] = [];
  /** diagnoses the sink had been given when each page was handed on */
  givenAtPage: number[] = [];
  given = 0;
  override async *pages(
    namespace: string | undefined,
    labelSelector?: string,
    which?: Projection<WatchedPod>,
  ): AsyncGenerator<WatchedPod[]> {
    for await (const page of super.pages(namespace, labelSelector, which)) {
      this.kept.push(page.length);
      this.givenAtPage.push(this.given);
      yield page;
    }
  }
}

let lab: KubeLab;
t.before(async () => {
  lab = await startKubeLab();
});
t.teardown(() => lab?.stop());

t.test('diagnose -A of 1,040 pods in pages keeps the 52 stuck ones and diagnoses each', async (t) => {
  // the stuck images are on a closed loopback port: each check ends at once, unreachable
  const closed = await freePort();
  const filled = await fillLab(lab, {
    nodes: 4,
    pods: 1_040,
    namespaces: 3,
    stuckImage: (i) => `127.0.0.1:${closed}/team/app:${i % 3}`,
  });
  t.equal(filled.stuck, 52);
  const { proxy, kc } = await labThroughProxy(lab);
  t.teardown(() => proxy.stop());
  const config = validateConfig({ cluster: { watchNodes: false }, deadline: '5s' });
  const built = await buildPodCheck(config, { env: { KUBECONFIG: lab.kubeconfig }, dockerConfigs: [], face: 'cli' });
  t.teardown(() => built.podCheck.close());
  const reader = new CountingReader(kc, 10_000);

  const result: { diagnoses: ContainerDiagnosis[]; errors: string[] } = { diagnoses: [], errors: [] };
  await diagnoseEach(
    { reader, podCheck: built.podCheck, deadlineMs: 5_000 },
    { pods: [] },
    {
      diagnoses: (list) => {
        reader.given += list.length;
        result.diagnoses.push(...list);
      },
      error: (line) => result.errors.push(line),
    },
  );
  const pages = proxy
    .requests({ method: 'GET', path: /^\/api\/v1\/pods\?/ })
    .map((r) => new URL(r.url, 'https://x.test').searchParams);
  t.ok(pages.length >= 3, `${pages.length} pages`);
  t.same(
    pages.map((q) => q.has('continue')),
    pages.map((_, i) => i > 0),
    'one list: each page after the first continues it',
  );
  t.ok(
    pages.every((q) => Number(q.get('limit')) > 0 && Number(q.get('limit')) <= 500),
    `limits ${pages.map((q) => q.get('limit')).join(', ')}: at most 500`,
  );
  t.equal(reader.kept.length, pages.length, 'one batch a page');
  t.equal(
    reader.kept.reduce((a, b) => a + b, 0),
    52,
    `only the stuck pods of each page were kept (${reader.kept.join(', ')})`,
  );
  t.ok(
    reader.givenAtPage.at(-1)! > 0,
    `diagnoses were written before the last page was read (${reader.givenAtPage.join(', ')}): none waits for the list's end`,
  );
  t.same(result.errors, []);
  t.equal(result.diagnoses.length, 52, 'one diagnosis per stuck container');
  t.ok(
    result.diagnoses.every((d) => d.stuck && d.container === 'app' && d.kubelet.reason === 'ImagePullBackOff'),
    'each the stuck app container, the kubelet quoted',
  );
  const names = result.diagnoses.map((d) => `${d.pod.namespace}/${d.pod.name}`);
  t.same(names, [...names].sort(), "in the API server's order: namespace, then name");
  t.equal(new Set(names).size, 52);
});
