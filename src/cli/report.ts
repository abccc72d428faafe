// The one findings model every output format reads: the findings with their places, identical ones
// grouped, the counts, and the exit status they add up to (by the run's policy, policy/run.ts).

import type { Finding, Reason } from '../findings.ts';
import { oneLine } from '../text.ts';
import { type ExitCode, exitCodeFor, outcomeOf, type RunOutcome, type RunPolicy, underPolicy } from '../policy/run.ts';

export interface Summary {
  /** image uses checked (an image in three pods is three uses) */
  uses: number;
  verified: number;
  failed: number;
  risky: number;
  unverified: number;
}

/** Findings with the same image, verdict, reason and message: one row, several places. */
export interface FindingGroup {
  finding: Finding;
  outcome: RunOutcome;
  places: Finding[];
}

export interface Report {
  findings: Finding[];
  groups: FindingGroup[];
  summary: Summary;
  /** 0 all verified (or risks accepted), 1 some image would fail, 3 some could not be verified */
  exitCode: ExitCode;
  policy: RunPolicy;
}

export function buildReport(input: readonly Finding[], policy: RunPolicy): Report {
  const findings = input.map((f) => underPolicy(f, policy));
  const summary: Summary = { uses: findings.length, verified: 0, failed: 0, risky: 0, unverified: 0 };
  const groups = new Map<string, FindingGroup>();
  for (const f of findings) {
    const outcome = outcomeOf(f);
    summary[outcome]++;
    const key = JSON.stringify([f.image, f.verdict, f.reason, f.message]);
    const group = groups.get(key);
    if (group) group.places.push(f);
    else groups.set(key, { finding: f, outcome, places: [f] });
  }
  return { findings, groups: [...groups.values()], summary, exitCode: exitCodeFor(summary, policy), policy };
}

/** "12 image uses: 8 verified, 1 failed, 2 risky, 1 unverified" */
export function summaryLine(s: Summary): string {
  return `${s.uses} image use${s.uses === 1 ? '' : 's'}: ${s.verified} verified, ${s.failed} failed, ${s.risky} risky, ${s.unverified} unverified`;
}

/** The object and container of a finding, e.g. `Deployment shop/web, container "web"`. */
export function objectText(f: Pick<Finding, 'object' | 'container' | 'field'>): string {
  const o = f.object;
  const name = [o.namespace, o.name].filter(Boolean).join('/');
  const holder = f.field.includes('.volumes[') ? f.container : `container "${f.container}"`;
  // Names come from the manifest: a control character in one must not reach the terminal.
  return oneLine(`${o.kind}${name ? ` ${name}` : ''}${f.container ? `, ${holder}` : ''}`);
}

/** `file:line:column`, or nothing for images named on the command line. */
export function placeText(f: Finding): string {
  return f.source ? oneLine(`${f.source.file}:${f.source.line}:${f.source.column}`) : '';
}

/** What each reason means and its usual fix, for formats that describe reasons once (SARIF rules). */
export const REASON_HELP: Record<Reason, { title: string; fix: string }> = {
  'invalid-reference': {
    title: 'The image reference does not parse (InvalidImageName)',
    fix: 'Write the image as [registry/]repository[:tag][@sha256:digest], lowercase, without spaces.',
  },
  blocked: {
    title:
      "The nodes' runtime refuses to pull it (registries.conf blocks the registry, or a short name it will not resolve)",
    fix: 'Name the image fully qualified, by a registry the nodes allow, or change their registries.conf.',
  },
  'repository-not-found': {
    title: 'The repository does not exist on the registry',
    fix: 'Correct the repository name, or push the image first.',
  },
  'tag-not-found': {
    title: 'The tag does not exist in the repository',
    fix: 'Use a tag that exists (pullguard lists the nearest), or push the tag.',
  },
  'digest-not-found': {
    title: 'The pinned digest does not exist in the repository',
    fix: 'Pin a digest that exists in this repository.',
  },
  'access-denied': {
    title: 'The registry refuses the pull with the credentials the kubelet would use',
    fix: 'Create an imagePullSecret for the registry and reference it from the pod or its ServiceAccount; renew expired credentials.',
  },
  'platform-not-found': {
    title: "The image has no build for the nodes' platform",
    fix: 'Push a multi-platform image, or pin the pod to nodes of a platform the image offers.',
  },
  'manifest-missing': {
    title: 'The tag names a manifest (or a platform manifest) the registry no longer serves',
    fix: 'Re-push the image, or resync the registry cache or mirror it is pulled from.',
  },
  'blob-missing': {
    title: 'A config or layer blob of the image is missing from the repository',
    fix: 'Re-push the image, or resync the registry cache or mirror it is pulled from.',
  },
  'rate-limited': {
    title: "The registry's pull quota is (nearly) spent",
    fix: "Pull with an account's credentials that have a higher limit, or mirror the image.",
  },
  'registry-unreachable': {
    title: 'The registry could not be reached',
    fix: 'Check the registry host name and the network path; a registry with a private CA needs --registry-ca, a plain-HTTP one --insecure-registry.',
  },
  'registry-error': {
    title: 'The registry answered with an error',
    fix: 'Retry later, or check the registry.',
  },
  timeout: {
    title: 'The registry did not answer by the deadline',
    fix: "Check the registry's latency, or give the check a longer --timeout.",
  },
  unverifiable: {
    title: 'pullguard cannot see what the kubelet would pull from (node-local images, node credential providers)',
    fix: 'Make sure the nodes can pull the image.',
  },
  'not-checked': {
    title: 'Not checked: --offline, the registry was not asked',
    fix: 'Run the check without --offline.',
  },
  available: { title: 'The image can be pulled', fix: 'Nothing to do.' },
};
