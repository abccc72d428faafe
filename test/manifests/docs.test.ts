// The install steps operators follow are the ones these tests exercise: every `kubectl apply -k`
// in the operator documentation names an overlay kustomize.test.ts renders, and the plain overlay
// is applied only after certs/gen.sh. (README.md once the operator docs are folded into it.)
import t from 'tap';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot } from './lib.ts';

const RENDERED = new Set([
  'manifests/',
  'manifests',
  'manifests/overlays/cert-manager',
  'manifests/overlays/plain',
  'manifests/overlays/watch',
]);
const docs = ['README.md', 'docs/operating.md'].filter((f) => existsSync(join(repoRoot, f)));

/** Shell lines from ```sh blocks, joined where they continue with a backslash. */
function shellLines(markdown: string): string[] {
  const out: string[] = [];
  for (const block of markdown.matchAll(/```(?:sh|bash|shell)\n([\s\S]*?)```/g)) {
    out.push(
      ...block[1]!
        .replace(/\\\n\s*/g, ' ')
        .split('\n')
        .map((l) => l.replace(/\s+#.*$/, '').trim())
        .filter(Boolean),
    );
  }
  return out;
}

t.test('documented install commands are the tested ones', async (t) => {
  t.ok(docs.length > 0, 'operator documentation exists');
  let applies = 0;
  for (const doc of docs) {
    const lines = shellLines(readFileSync(join(repoRoot, doc), 'utf8'));
    let generated = false;
    for (const line of lines) {
      if (/^certs\/gen\.sh\b/.test(line)) generated = true;
      const m = /^kubectl apply -k (\S+)/.exec(line);
      if (!m) continue;
      applies++;
      t.ok(RENDERED.has(m[1]!), `${doc}: \`${line}\` applies an overlay the tests render`);
      if (m[1]!.endsWith('/plain')) t.ok(generated, `${doc}: certs/gen.sh comes before \`${line}\``);
    }
  }
  if (docs.length) t.ok(applies > 0, 'the docs say how to apply the manifests');
});
