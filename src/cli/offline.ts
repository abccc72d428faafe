// `pullguard check --offline`: every check that needs no registry (the reference's syntax,
// imagePullPolicy Never, localhost images), and for the rest the honest `not-checked`.

import type { Finding, ImageUse } from '../findings.ts';
import { format as formatPlatform, type Platform } from '../platform/index.ts';
import { explain } from '../preflight/messages.ts';
import { parseImage } from '../reference/index.ts';

export function offlineFindings(uses: readonly ImageUse[], platforms: readonly Platform[]): Finding[] {
  const wanted = platforms.map(formatPlatform).join(', ');
  return uses.map((u): Finding => {
    const parsed = parseImage(u.image);
    if (!parsed.ok) {
      const text = explain({ reason: 'invalid-reference', image: u.image, error: parsed.error });
      return { ...u, reference: '', verdict: 'fail', reason: 'invalid-reference', ...text, evidence: [parsed.error] };
    }
    const ref = parsed.ref;
    const unverifiable = (why: 'never-unknown' | 'localhost'): Finding => ({
      ...u,
      reference: ref.pullRef,
      verdict: 'risk',
      reason: 'unverifiable',
      ...explain({ image: u.image, ref, reason: 'unverifiable', why }),
      evidence: [],
    });
    if (u.pullPolicy === 'Never') return unverifiable('never-unknown');
    if (ref.domain === 'localhost') return unverifiable('localhost');
    const pinned = ref.digest ? ' (the digest pins the image, not its platforms)' : '';
    const note = wanted ? `whether it has a build for ${wanted} is not known either${pinned}` : undefined;
    return {
      ...u,
      reference: ref.pullRef,
      verdict: 'risk',
      reason: 'not-checked',
      ...explain({ image: u.image, ref, reason: 'not-checked', note }),
      evidence: [],
    };
  });
}
