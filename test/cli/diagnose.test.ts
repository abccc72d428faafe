// `pullguard diagnose` usage errors: one clear line and exit 2, before any cluster is contacted.
import t from 'tap';
import { main } from '../../src/cli/main.ts';
import { runInProcess } from '../helpers/cli.ts';

const run = (argv: string[], env: NodeJS.ProcessEnv = {}) => runInProcess(main, ['diagnose', ...argv], { env });

t.test('help', async (t) => {
  const r = await run(['--help']);
  t.equal(r.code, 0);
  t.match(r.stdout, 'Usage: pullguard diagnose [POD...] [-n NS | -A] [-l SELECTOR]');
  t.match(r.stdout, 'Exit status: 0 nothing is stuck, 1 a container is stuck, 2');
});

const bad: [string, string[], string][] = [
  ['no cluster', [], 'no cluster: give --kubeconfig or set KUBECONFIG'],
  ['-A with -n', ['-A', '-n', 'shop'], 'use either --namespace or --all-namespaces'],
  ['-A with pod names', ['-A', 'web'], 'name pods with --namespace'],
  ['an unknown output', ['-o', 'yaml'], '--output must be text or json'],
  ['an unknown flag', ['--nope'], "Unknown option '--nope'"],
  ['a kubeconfig that does not exist', ['--kubeconfig', '/nonexistent/kubeconfig'], '/nonexistent/kubeconfig'],
];
for (const [name, argv, text] of bad) {
  t.test(name, async (t) => {
    const r = await run(argv);
    t.equal(r.code, 2);
    t.match(r.stderr, text);
    t.equal(r.stderr.split('\n').filter(Boolean)[0]!.startsWith('pullguard diagnose: '), true, 'one line says why');
    t.notMatch(r.stderr, /\n\s+at /, 'no stack trace');
  });
}
