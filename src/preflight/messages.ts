// Words for people: per reason, what will happen (message) and what to do about it (hint).
// Every message names the image; the caller adds the container. One line, no control characters.

import { quote } from '../text.ts';
import { diagnoseReference } from '../reference/diagnose.ts';
import type { ImageRef } from '../reference/index.ts';
import type { Outcome } from '../registry/client.ts';
import { isDockerHub, registryHost } from '../registry/hosts.ts';
import type { RateLimit } from '../registry/ratelimit.ts';
import type { CredentialContext } from '../credentials/context.ts';
import type { TlsProblem } from '../system-errors.ts';
import { highestFirst } from './suggest.ts';

export interface Explained {
  message: string;
  hint: string;
}

/**
 * Whose settings a fix names: `pullguard check` and `diagnose` are run with flags
 * (--registry-ca), the webhook from its configuration (registry.caFiles).
 */
export type Face = 'cli' | 'server';

/** What every explanation knows: the image as written and, once it parsed, the reference. */
interface About {
  image: string;
  ref?: ImageRef;
  /** default 'server' */
  face?: Face | undefined;
}

/** For a refusal: the credentials there were, which were tried and which refused. */
interface CredentialsUsed {
  credentials?: CredentialContext;
  /** sources of the credentials tried, 'anonymous' for none */
  tried?: string[];
  /** sources whose credentials the registry or its token server refused */
  rejected?: string[];
}

/** Why an image cannot be checked from here. */
export type Unverifiable =
  | 'localhost'
  | 'provider'
  | 'provider-after-secrets'
  | 'unread-secrets'
  | 'credential-failure'
  | 'never-unknown'
  | 'never-absent';

/** The input of explain(): one shape per reason, with only what that reason's words use. */
export type ExplainInput =
  | (About & { reason: 'available'; note?: string })
  | (About & { reason: 'invalid-reference'; error: string })
  | (About & { reason: 'repository-not-found'; suggestions?: string[] })
  | (About & {
      reason: 'tag-not-found';
      suggestions?: string[];
      tagCount?: number | undefined;
      /** the repository's tags as read (for a missing tag with no near match) */
      tags?: string[] | undefined;
      /** more tags exist than were read */
      tagsCapped?: boolean;
    })
  | (About & { reason: 'digest-not-found' })
  | (About & { reason: 'blocked'; why?: string })
  | (About &
      CredentialsUsed & {
        reason: 'access-denied';
        /** the pod's imagePullSecrets that do not parse: the kubelet fails every pull, whatever the registry says */
        brokenSecrets?: readonly string[];
        outcome?: Outcome;
        suggestions?: string[];
      })
  | (About & {
      reason: 'platform-not-found';
      missing: string[];
      offered: string[];
      /** the missing platforms without their node counts */
      missingPlain?: string[];
      /** the node selector that keeps the pod on what the image offers */
      pin?: string | undefined;
      /** some of the nodes' platforms are offered */
      partial?: boolean;
      /** a single-platform manifest rather than an index */
      single: boolean;
    })
  | (About & {
      reason: 'manifest-missing';
      /** the digest not served */
      digest?: string | undefined;
      /** the platforms whose own manifest (from the index) is missing; none: the manifest the reference names */
      platforms?: string[];
      /** other platforms the pods may land on are fine */
      partial?: boolean;
    })
  | (About & {
      reason: 'blob-missing';
      what?: 'config' | 'layer';
      digest?: string | undefined;
      /** further missing blobs */
      more?: number;
      /** the platforms whose blobs are missing; none: the image's single manifest */
      platforms?: string[];
      partial?: boolean;
    })
  | (About & {
      reason: 'rate-limited';
      /** the registry's announced limit, when it sent one */
      rateLimit?: RateLimit;
      credentialSource?: string | undefined;
      outcome?: Outcome;
    })
  | (About & {
      reason: 'registry-unreachable';
      detail?: string | undefined;
      /** a TLS failure: what went wrong, for its fix */
      tls?: TlsProblem | undefined;
    })
  | (About & { reason: 'registry-error'; outcome?: Outcome; detail?: string | undefined })
  /** `within`: the deadline in words ("2000 ms"); absent: "the deadline" */
  | (About & { reason: 'timeout'; within?: string | undefined })
  | (About & { reason: 'not-checked'; note?: string | undefined })
  | (About & { reason: 'unverifiable'; why: Exclude<Unverifiable, 'unread-secrets' | 'credential-failure'> })
  | (About & { reason: 'unverifiable'; why: 'unread-secrets'; unreadSecrets: readonly string[] })
  /** `failures`: the credential helpers or provider plugins that failed, one line each */
  | (About & { reason: 'unverifiable'; why: 'credential-failure'; failures: readonly string[] });

function didYouMean(suggestions: string[] | undefined): string {
  return suggestions?.length ? ` Did you mean ${suggestions.map((s) => quote(s)).join(' or ')}?` : '';
}

function registryName(ref: ImageRef | undefined): string {
  if (!ref) return 'the registry';
  return isDockerHub(ref.domain) ? 'Docker Hub' : ref.domain;
}

function hours(seconds: number | undefined): string {
  if (!seconds) return '';
  return seconds % 3600 === 0 ? ` per ${seconds / 3600} h` : ` per ${seconds} s`;
}

/** What the credentials situation was, for access problems: the part people most often need. */
function credentialStory(i: About & CredentialsUsed): { said: string; fix: string } {
  const ref = i.ref;
  const reg = ref ? ref.domain : 'the registry';
  const scope = i.credentials?.scope ? ` in ${i.credentials.scope}` : '';
  const problems = i.credentials?.problems ?? [];
  const problemText = problems.length ? `; ${problems.join('; ')}` : '';
  const rejected = (i.rejected ?? []).filter(Boolean);
  const tried = (i.tried ?? []).filter((t) => t !== 'anonymous');
  if (rejected.length) {
    return {
      said: `the credentials from ${rejected.join(', ')} were refused${problemText}`,
      fix: `renew the credentials in ${rejected.join(', ')}`,
    };
  }
  if (tried.length) {
    return {
      said: `the credentials from ${tried.join(', ')} do not grant pull access${problemText}`,
      fix: 'use credentials allowed to pull this repository',
    };
  }
  if (i.credentials?.standIn) {
    // `pullguard check` without a cluster: the files given or the person's stores, not the pod's secrets.
    return {
      said: `no credentials for ${reg}${scope}${problemText}`,
      fix:
        `log in to ${reg} (docker login) or give --docker-config FILE with credentials for it; ` +
        "or give --kubeconfig to check with the pod's own imagePullSecrets",
    };
  }
  if (problems.length) {
    return {
      said: `no usable imagePullSecret${scope} matches ${reg}${problemText}`,
      fix: `create the pull secret with credentials for ${reg}`,
    };
  }
  return {
    said: `no imagePullSecret${scope} matches ${reg}`,
    fix: `add an imagePullSecret for ${reg} to the pod or its ServiceAccount`,
  };
}

export function explain(i: ExplainInput): Explained {
  const img = `image ${quote(i.image)}`;
  const ref = i.ref;
  const name = ref?.name ?? '';
  switch (i.reason) {
    case 'available':
      return { message: `${img} can be pulled${i.note ? ` (${i.note})` : ''}`, hint: '' };
    case 'invalid-reference': {
      const why = unsaid(diagnoseReference(i.image), i.error);
      return {
        message: `${img} is invalid, the kubelet reports InvalidImageName: ${i.error}${why ? `; ${why}` : ''}`,
        hint: 'write it as [registry/]repository[:tag][@digest], lowercase, without spaces',
      };
    }
    case 'repository-not-found':
      return {
        message: `${img}: repository ${name} does not exist on ${registryName(ref)}.${didYouMean(i.suggestions)}`,
        hint: 'correct the repository name, or push the image first',
      };
    case 'tag-not-found': {
      const tag = ref?.tag ?? 'latest';
      const others = i.suggestions?.length
        ? `use an existing tag, or push ${quote(tag)}`
        : `push tag ${quote(tag)}, or use a tag that exists${i.tagCount === 0 ? ' (the repository has none)' : ''}`;
      // No near match: say what does exist, so there is something to go on.
      const tags = !i.suggestions?.length && i.tags?.length ? highestFirst(i.tags) : [];
      const count = `${i.tagsCapped ? 'at least ' : ''}${tags.length} tag${tags.length === 1 ? '' : 's'}`;
      const listed = tags.length
        ? ` It has ${count}${tags.length > 5 ? ', the highest versions' : ''}: ${tags
            .slice(0, 5)
            .map((t) => quote(t))
            .join(', ')}${tags.length > 5 ? ', …' : ''}.`
        : '';
      return {
        message: `${img}: tag ${quote(tag)} does not exist in ${name}.${didYouMean(i.suggestions)}${listed}`,
        hint: others,
      };
    }
    case 'digest-not-found':
      return {
        message: `${img}: manifest ${ref?.digest ?? ''} does not exist in ${name}`,
        hint: 'pin a digest that exists in this repository',
      };
    case 'blocked':
      return {
        message: `${img} will not be pulled: ${i.why ?? "the nodes' runtime configuration refuses it"}`,
        hint: "name the image by a registry the nodes' registries.conf allows, fully qualified (registry/repository:tag), or change that file",
      };
    case 'access-denied': {
      if (i.brokenSecrets) {
        const broken = i.brokenSecrets.map((n) => quote(n)).join(', ');
        return {
          message:
            `${img}: imagePullSecret ${broken} does not parse, ` +
            'and the kubelet then fails every image pull of the pod',
          hint: 'recreate the secret with kubectl create secret docker-registry, or remove it from imagePullSecrets',
        };
      }
      const story = credentialStory(i);
      const hub = ref && isDockerHub(ref.domain);
      const status = i.outcome?.kind === 'denied' ? 'HTTP 403' : 'HTTP 401';
      const asks = i.outcome?.kind === 'unauthorized' && i.outcome.noCredentials;
      const why = `${status}${asks ? ', it asks for a username and password' : ''}`;
      const what = hub
        ? `repository ${name} does not exist or needs credentials (Docker Hub answers both the same way, ${status})`
        : `${registryName(ref)} refused to let us pull ${name} (${why})`;
      return {
        message: `${img}: ${what}; ${story.said}.${didYouMean(i.suggestions)}`,
        hint: hub ? `fix a typo in the name, or ${story.fix}` : story.fix,
      };
    }
    case 'platform-not-found': {
      // Short: a warning is cut at 256 characters, and the counts and the fix must fit.
      // diagnose knows no platforms when only the kubelet's text tells of the mismatch.
      const missing = i.missing.join(', ') || "the nodes' platform";
      const offered = i.offered.join(', ') || 'no platform it declares';
      const build = `build the image for ${i.missingPlain?.join(', ') || missing} too`;
      const hint = i.pin ? `add ${i.pin}, or ${build}` : build;
      if (i.single) {
        return {
          message: `${img} is built for ${offered} only; on ${missing} it pulls, then fails with "exec format error"`,
          hint,
        };
      }
      return {
        message: i.partial
          ? `${img} has no build for ${missing}, where the pod may land (it offers ${offered}); ` +
            'pulls there fail: "no match for platform in manifest"'
          : `${img} has no build for ${missing}, the nodes the pod may land on (it offers ${offered}); ` +
            'the pull fails: "no match for platform in manifest"',
        hint,
      };
    }
    case 'manifest-missing': {
      const fix = 're-push the image, or resync the registry cache or mirror it is pulled from';
      const digest = i.digest ?? 'its digest';
      if (i.platforms?.length) {
        const on = i.platforms.join(', ');
        return {
          message:
            `${img}: the ${on} manifest ${digest} of its index is not served by ${registryName(ref)} ` +
            `(a stale or partly synced cache?); ${i.partial ? 'pods placed on' : 'the pull on'} ${on} nodes will fail with "not found"`,
          hint: fix,
        };
      }
      const points = ref?.digest ? `it names ${digest}` : `the tag ${quote(ref?.tag ?? 'latest')} points to ${digest}`;
      return {
        message:
          `${img}: ${points}, which the registry no longer serves (a stale or partly synced cache?); ` +
          'the kubelet will fail with "not found"',
        hint: fix,
      };
    }
    case 'blob-missing': {
      const what = i.what === 'config' ? 'config blob' : 'layer';
      const more = i.more ? ` and ${i.more} more blob${i.more === 1 ? '' : 's'}` : '';
      const on = i.platforms?.length ? ` of its ${i.platforms.join(', ')} build` : '';
      const who = i.platforms?.length
        ? `${i.partial ? 'pods placed on' : 'the pull on'} ${i.platforms.join(', ')} nodes`
        : 'the pull';
      return {
        message:
          `${img}: its ${what} ${i.digest ?? ''}${on}${more} is missing from ${name || 'the repository'} ` +
          `(a stale or partly synced cache?); ${who} will fail with "not found"`,
        hint: 're-push the image, or resync the registry cache or mirror it is pulled from',
      };
    }
    case 'rate-limited': {
      const rl = i.rateLimit;
      const reg = registryName(ref);
      const source = i.credentialSource;
      const who = source ? `the credentials from ${source}` : 'anonymous pulls from this address';
      const retryAfter = i.outcome?.kind === 'rate-limited' ? i.outcome.retryAfter : undefined;
      const retry = retryAfter !== undefined ? `, retry after ${retryAfter} s` : '';
      const message = rl
        ? `${img}: ${reg} allows only ${rl.remaining} more pulls${hours(rl.window)} for ${who} (limit ${rl.limit}); ` +
          'pulls beyond it fail with "toomanyrequests"'
        : `${img}: ${reg} is refusing requests with HTTP 429 (rate limit reached${retry}); ` +
          'the pull may fail with "toomanyrequests"';
      return { message, hint: 'pull with an account that has a higher limit, or mirror the image' };
    }
    case 'registry-unreachable':
      return {
        message: `${img}: ${unreachableCause(ref, i.detail)}`,
        hint: unreachableFix(ref?.domain ?? 'the registry', i.tls ?? tlsProblemIn(i.detail), i.face ?? 'server'),
      };
    case 'registry-error': {
      const host = ref ? registryHost(ref.domain) : 'the registry';
      const status = i.outcome?.kind === 'error' && i.outcome.status ? ` (HTTP ${i.outcome.status})` : '';
      return {
        message: `${img}: ${host} answered with an error${status}${i.detail ? `: ${i.detail}` : ''}`,
        hint: 'retry later, or check the registry',
      };
    }
    case 'timeout':
      return {
        message: `${img}: the registry did not answer within ${i.within ?? 'the deadline'}; the pull may still work`,
        hint: "check the registry's latency from the cluster",
      };
    case 'not-checked':
      return {
        message:
          `${img} was not checked: the reference is valid, and with --offline the registry was not asked ` +
          `whether it exists${i.note ? `; ${i.note}` : ''}`,
        hint: 'run without --offline to ask the registry',
      };
    case 'unverifiable':
      return unverifiable(img, i);
  }
}

/**
 * A TLS problem told by a detail alone (a caller without the transport's kind): an answer that is
 * not TLS at all is most often a plain-HTTP registry.
 */
function tlsProblemIn(detail: string | undefined): TlsProblem | undefined {
  return /plain HTTP, not TLS|wrong version number|packet length too long/i.test(detail ?? '')
    ? 'plain-http'
    : undefined;
}

/**
 * Why the registry is unreachable. A TLS failure with the image's own registry is said without
 * its host again ("TLS with HOST failed: …"), so that the words fit a warning; a mirror's is named.
 */
function unreachableCause(ref: ImageRef | undefined, detail: string | undefined): string {
  const tls = /^TLS with (\S+) failed: (.+)$/s.exec(detail ?? '');
  if (tls && ref && tls[1] === registryHost(ref.domain)) return `the registry is unreachable over TLS: ${tls[2]}`;
  return `the registry is unreachable: ${detail ?? 'connection failed'}`;
}

/** The fix for an unreachable registry: per TLS problem, naming the CLI's flags or the configuration's keys. */
function unreachableFix(host: string, tls: TlsProblem | undefined, face: Face): string {
  switch (tls) {
    case 'plain-http':
      return face === 'cli'
        ? `if ${host} serves plain HTTP, pass --insecure-registry ${host} (the nodes' runtime must allow it too)`
        : `if ${host} serves plain HTTP, list it under registry.insecure (the nodes' runtime must allow it too)`;
    case 'untrusted':
      return face === 'cli'
        ? `if you trust ${host}, pass its CA certificate with --registry-ca FILE (the nodes must trust it too)`
        : `if you trust ${host}, add its CA certificate to registry.caFiles (the nodes must trust it too)`;
    case 'name-mismatch':
      return `use the host name ${host}'s certificate is issued for, or reissue the certificate for ${host}`;
    case 'expired':
      return `renew ${host}'s certificate: the nodes refuse it too`;
    case 'not-yet-valid':
      return "check the clocks of this machine and the registry, and the certificate's start date";
    case 'protocol':
      return `let ${host} offer TLS 1.2 or 1.3`;
    case 'client-certificate':
      return 'pullguard sends no client certificate: check the image from a node, or let the registry serve pulls without one';
    default:
      return 'check the registry host name, and that the nodes can reach it and trust its certificate';
  }
}

/**
 * The reference diagnosis, without what the upstream error already said: "repository name (x) must
 * be lowercase" need not be followed by "repository name must be lowercase: …".
 */
function unsaid(why: string | undefined, error: string): string | undefined {
  const lowercase = 'repository name must be lowercase: ';
  if (why?.startsWith(lowercase) && /must be lowercase/.test(error))
    return `the first uppercase letter is ${why.slice(lowercase.length)}`;
  return why;
}

/** Why an image cannot be checked from here, and what to do instead. */
function unverifiable(img: string, i: Extract<ExplainInput, { reason: 'unverifiable' }>): Explained {
  switch (i.why) {
    case 'localhost':
      return {
        message: `${img} names "localhost", which means each node's own registry; pullguard cannot see it`,
        hint: 'make sure every node that may run the pod has the image, or push it to a shared registry',
      };
    case 'provider':
      return {
        message:
          `${img}: credentials for ${i.ref?.domain ?? 'this registry'} come from the nodes' kubelet credential ` +
          'provider, which pullguard cannot use',
        hint: "check that the nodes' credential provider (or an imagePullSecret) grants pull access to this repository",
      };
    case 'provider-after-secrets':
      return {
        message:
          `${img}: the pod's pull secrets do not open ${i.ref?.name ?? ''}; ` +
          "the nodes' kubelet credential provider may still do so",
        hint: "check that the nodes' credential provider grants pull access to this repository",
      };
    // Reached by the webhook when RBAC or the API server kept a secret from it, and by
    // `pullguard check` without a cluster: the hint covers both.
    case 'unread-secrets':
      return {
        message:
          `${img}: the pod's imagePullSecrets (${i.unreadSecrets.join(', ')}) could not be read, ` +
          'and the credentials pullguard has were refused',
        hint: 'let pullguard read them (RBAC get on secrets; for pullguard check, --kubeconfig or --docker-config)',
      };
    case 'credential-failure':
      // The failing helper or plugin first: warnings are cut, and its name is what people need.
      return {
        message: `${img}: ${i.failures.join('; ')}; without those credentials pullguard cannot check it`,
        hint: 'make that credential helper or plugin work where pullguard runs, or check the image from a node',
      };
    case 'never-unknown':
      return {
        message:
          `${img} has imagePullPolicy Never, so it must already be on the node; ` +
          "pullguard cannot see the nodes' images",
        hint: 'pre-load the image on every node, or use imagePullPolicy IfNotPresent',
      };
    case 'never-absent':
      return {
        message:
          `${img} has imagePullPolicy Never and no node reports having it; ` +
          'the kubelet would fail with ErrImageNeverPull',
        hint:
          'pre-load the image on the nodes, or use imagePullPolicy IfNotPresent ' +
          '(node image lists are capped, so it may still be there)',
      };
  }
}
