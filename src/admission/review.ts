// AdmissionReview admission.k8s.io/v1 in and out. Input is validated with zod; the answer keeps the
// request's uid, says why in one line per image, and stays inside the API server's warning limits.

import { z } from 'zod';
import { describe, type Finding, type ImageUse } from '../findings.ts';
import { cut, oneLine, quote } from '../text.ts';
import type { Decision } from '../policy/policy.ts';
import { imageUsesOf, podSpecSite, type PodSpecSite } from '../workload/images.ts';
import { POD_SPEC_KINDS } from '../workload/kinds.ts';
import { isDnsLabel } from '../workload/names.ts';
import { PullguardError } from '../errors.ts';

const groupVersionKind = z.looseObject({ group: z.string(), version: z.string(), kind: z.string() });

export const admissionReviewSchema = z.looseObject({
  apiVersion: z.literal('admission.k8s.io/v1', { error: 'apiVersion must be admission.k8s.io/v1' }),
  kind: z.literal('AdmissionReview', { error: 'kind must be AdmissionReview' }),
  request: z.looseObject(
    {
      uid: z.string({ error: 'request.uid is required' }).min(1, 'request.uid is required'),
      kind: groupVersionKind,
      resource: z.looseObject({ group: z.string(), version: z.string(), resource: z.string() }).optional(),
      subResource: z.string().optional(),
      name: z.string().optional(),
      namespace: z.string().optional(),
      operation: z.enum(['CREATE', 'UPDATE', 'DELETE', 'CONNECT']),
      object: z.record(z.string(), z.unknown()).nullable().optional(),
      oldObject: z.record(z.string(), z.unknown()).nullable().optional(),
      dryRun: z.boolean().optional(),
    },
    { error: 'request is required' },
  ),
});

export type AdmissionReview = z.infer<typeof admissionReviewSchema>;
export type AdmissionRequest = AdmissionReview['request'];

/** A request body that is not an AdmissionReview: the server answers 400 with the message. */
export class BadReview extends PullguardError {
  readonly code = 'bad-review';
}

type Plain = Record<string, unknown>;

/** A plain JSON object (what JSON.parse makes), not an array, not a class instance. */
function plain(v: unknown): v is Plain {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return false;
  const proto = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}

const optionalString = (v: unknown) => v === undefined || typeof v === 'string';
const optionalObject = (v: unknown) => v === undefined || v === null || plain(v);
const OPERATIONS = new Set(['CREATE', 'UPDATE', 'DELETE', 'CONNECT']);

/**
 * The request of a well-formed review, field by field as admissionReviewSchema checks it, without
 * zod's copying (a third of a cached review's own CPU time); undefined for anything unusual, which
 * then goes through the schema for its error. It accepts only what the schema accepts.
 */
function wellFormedRequest(body: unknown): AdmissionRequest | undefined {
  if (!plain(body) || body.apiVersion !== 'admission.k8s.io/v1' || body.kind !== 'AdmissionReview') return undefined;
  const r = body.request;
  if (!plain(r) || typeof r.uid !== 'string' || r.uid === '' || !OPERATIONS.has(r.operation as string))
    return undefined;
  const k = r.kind;
  if (!plain(k) || typeof k.group !== 'string' || typeof k.version !== 'string' || typeof k.kind !== 'string')
    return undefined;
  const res = r.resource;
  if (
    res !== undefined &&
    !(
      plain(res) &&
      typeof res.group === 'string' &&
      typeof res.version === 'string' &&
      typeof res.resource === 'string'
    )
  )
    return undefined;
  if (!optionalString(r.subResource) || !optionalString(r.name) || !optionalString(r.namespace)) return undefined;
  if (!optionalObject(r.object) || !optionalObject(r.oldObject)) return undefined;
  if (r.dryRun !== undefined && typeof r.dryRun !== 'boolean') return undefined;
  return r as AdmissionRequest;
}

export function parseReview(body: unknown): AdmissionRequest {
  const fast = wellFormedRequest(body);
  if (fast) return fast;
  const result = admissionReviewSchema.safeParse(body);
  if (!result.success) {
    const issue = result.error.issues[0]!;
    const where = issue.path.length ? `${issue.path.join('.')}: ` : '';
    throw new BadReview(`not an AdmissionReview admission.k8s.io/v1: ${where}${issue.message}`);
  }
  return result.data.request;
}

/** What the start of a review says: request.uid and the fields the API server writes before the object. */
export interface ReviewHead {
  uid: string;
  kind: { group: string; version: string; kind: string };
  operation: AdmissionRequest['operation'];
  subResource?: string;
  name?: string;
  namespace?: string;
}

/** the text ended: what was read so far is all there is */
const ENDED = Symbol('ended');
type Wanted = { [key: string]: Wanted | true };
/** The fields reviewHead keeps; all others are skipped over, not built. */
const HEAD_FIELDS: Wanted = {
  apiVersion: true,
  kind: true,
  request: { uid: true, kind: true, operation: true, subResource: true, name: true, namespace: true },
};

/**
 * The start of a JSON text read as far as it goes (it may stop anywhere): the values HEAD_FIELDS
 * names, in objects without a prototype. Other values are skipped by their brackets and strings,
 * not parsed; a kept value is parsed whole by JSON.parse. Throws SyntaxError for text that is not JSON.
 */
function readHead(text: string): Record<string, unknown> {
  let i = 0;
  const n = text.length;
  const space = () => {
    while (i < n && (text[i] === ' ' || text[i] === '\n' || text[i] === '\r' || text[i] === '\t')) i++;
    if (i >= n) throw ENDED;
  };
  /** past the string that opens at i */
  const skipString = () => {
    for (i++; ; i++) {
      if (i >= n) throw ENDED;
      if (text[i] === '\\') i++;
      else if (text[i] === '"') return i++;
    }
  };
  /** past the value that starts at i (after white space) */
  const skipValue = () => {
    space();
    const c = text[i];
    if (c === '"') return skipString();
    if (c === '{' || c === '[') {
      let depth = 0;
      for (;;) {
        if (i >= n) throw ENDED;
        const d = text[i];
        if (d === '"') {
          skipString();
          continue;
        }
        if (d === '{' || d === '[') depth++;
        else if ((d === '}' || d === ']') && --depth === 0) return i++;
        i++;
      }
    }
    const literal = /[-+.0-9a-zA-Z]+/y;
    literal.lastIndex = i;
    if (!literal.exec(text)) throw new SyntaxError(`unexpected ${JSON.stringify(c)}`);
    i = literal.lastIndex;
    if (i >= n) throw ENDED; // a number may go on
  };
  const object = (wanted: Wanted, into: Record<string, unknown>) => {
    space();
    if (text[i] !== '{') throw new SyntaxError('not an object');
    i++;
    space();
    if (text[i] === '}') return;
    for (;;) {
      space();
      if (text[i] !== '"') throw new SyntaxError('expected a key');
      const at = i;
      skipString();
      const key = JSON.parse(text.slice(at, i)) as string;
      space();
      if (text[i] !== ':') throw new SyntaxError('expected a colon');
      i++;
      const want = Object.hasOwn(wanted, key) ? wanted[key] : undefined;
      if (want === true) {
        space();
        const start = i;
        skipValue();
        into[key] = JSON.parse(text.slice(start, i));
      } else if (want) {
        space();
        if (text[i] === '{') {
          const inner: Record<string, unknown> = Object.create(null);
          into[key] = inner;
          object(want, inner);
        } else skipValue();
      } else skipValue();
      space();
      if (text[i] === '}') return void i++;
      if (text[i] !== ',') throw new SyntaxError('expected a comma');
      i++;
    }
  };
  const root: Record<string, unknown> = Object.create(null);
  try {
    object(HEAD_FIELDS, root);
  } catch (err) {
    if (err !== ENDED) throw err;
  }
  return root;
}

/**
 * The review a body's start holds (a body too large to parse: body.ts), or why it holds none. The
 * API server writes apiVersion, kind and request.uid first, and every field of ReviewHead before
 * the object. Checked as parseReview checks them.
 */
export function reviewHead(text: string): ReviewHead | string {
  const none = 'its start holds no AdmissionReview admission.k8s.io/v1 with a request.uid to answer';
  if (!/^\s*\{/.test(text)) return none;
  let head: Record<string, unknown>;
  try {
    head = readHead(text);
  } catch (err) {
    return `it is not valid JSON: ${(err as Error).message}`;
  }
  const r = head.request as Record<string, unknown> | undefined;
  if (head.apiVersion !== 'admission.k8s.io/v1' || head.kind !== 'AdmissionReview' || !r) return none;
  if (typeof r.uid !== 'string' || r.uid === '') return none;
  const k = r.kind as Record<string, unknown> | undefined;
  if (!OPERATIONS.has(r.operation as string) || !plain(k)) return none;
  if (typeof k.group !== 'string' || typeof k.version !== 'string' || typeof k.kind !== 'string') return none;
  if (!optionalString(r.subResource) || !optionalString(r.name) || !optionalString(r.namespace)) return none;
  return {
    uid: r.uid,
    kind: { group: k.group, version: k.version, kind: k.kind },
    operation: r.operation as ReviewHead['operation'],
    ...(r.subResource !== undefined ? { subResource: r.subResource as string } : {}),
    ...(r.name !== undefined ? { name: r.name as string } : {}),
    ...(r.namespace !== undefined ? { namespace: r.namespace as string } : {}),
  };
}

/** The pod spec under review and the images to check: on UPDATE only those not already in oldObject. */
export function imagesToCheck(req: AdmissionRequest): { site?: PodSpecSite; uses: ImageUse[]; unchanged: number } {
  if (req.operation !== 'CREATE' && req.operation !== 'UPDATE') return { uses: [], unchanged: 0 };
  const site = podSpecSite(req.object);
  if (!site) return { uses: [], unchanged: 0 };
  // The namespace is the request's: the API server sets it for every namespaced object, while the
  // object's is whatever a client wrote (another namespace's would make its pull secrets answer).
  const namespace = req.namespace;
  if (!namespace) throw new BadReview(`request.namespace is missing; the API server sets it for every ${site.kind}`);
  if (!isDnsLabel(namespace)) throw new BadReview(`request.namespace ${quote(namespace, 63)} is not a namespace name`);
  if (site.namespace && site.namespace !== namespace)
    throw new BadReview(
      `the object names namespace ${quote(site.namespace, 63)} but the request is for namespace ${quote(namespace, 63)}`,
    );
  const named: PodSpecSite = {
    ...site,
    namespace,
    ...(site.name ? {} : req.name ? { name: req.name } : {}),
  };
  let uses = imageUsesOf(named);
  let unchanged = 0;
  if (req.operation === 'UPDATE' && req.oldObject) {
    const oldSite = podSpecSite(req.oldObject);
    // A scale, a label change or a server-side apply that leaves images alone must never be blocked,
    // even when an old image has since gone from its registry.
    const before = new Set(oldSite ? imageUsesOf(oldSite).map((u) => u.image) : []);
    const fresh = uses.filter((u) => !before.has(u.image));
    unchanged = uses.length - fresh.length;
    uses = fresh;
  }
  return { site: named, uses, unchanged };
}

export interface Decided {
  finding: Finding;
  action: Decision;
}

const WARNING_MAX = 256;
const WARNINGS_TOTAL_MAX = 4096;

/** Warnings as the API server keeps them: no control characters, each ≤ 256, all ≤ 4096, the rest summarised. */
export function warningsFor(decided: Decided[]): string[] {
  const prefix = 'pullguard: ';
  const lines = decided
    .filter((d) => d.action === 'warn')
    .map((d) => `${prefix}${describe(d.finding, WARNING_MAX - prefix.length)}`);
  const out: string[] = [];
  let total = 0;
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    const rest = lines.length - i - 1;
    const summary = `pullguard: ${lines.length - i} more image warnings; run pullguard check on the manifest for all of them`;
    if (total + [...line].length + (rest ? summary.length : 0) > WARNINGS_TOTAL_MAX) {
      out.push(summary);
      break;
    }
    out.push(line);
    total += [...line].length;
  }
  return [...new Set(out)];
}

/** status.message at most (code points): a pod with 10,000 bad images made a 2.8 MB message. */
export const DENIAL_MAX = 4096;
/** the findings audit annotation at most (characters of JSON) */
export const AUDIT_FINDINGS_MAX = 4096;

export function denialMessage(decided: Decided[]): string {
  const denied = decided.filter((d) => d.action === 'deny');
  const head = denied.length === 1 ? 'an image cannot be pulled' : `${denied.length} images cannot be pulled`;
  let text = `pullguard: ${head}: `;
  for (let i = 0; i < denied.length; i++) {
    const one = `${i ? ' | ' : ''}${describe(denied[i]!.finding, 1024)}`;
    const rest = denied.length - i;
    const more = ` | and ${rest} more; run pullguard check on the manifest for all of them`;
    if ([...text].length + [...one].length + (rest > 1 ? more.length : 0) > DENIAL_MAX) {
      text += more;
      break;
    }
    text += one;
  }
  return oneLine(text);
}

/**
 * What is worth recording of a review (audit annotations, the log line): the findings that are not
 * ok, images cut to 256 characters, as many as fit AUDIT_FINDINGS_MAX; `omitted` counts the rest.
 */
export function notableFindings(decided: Decided[]): {
  findings: { container: string; image: string; reason: string; action: Decision }[];
  omitted: number;
} {
  const notable = decided.filter((d) => d.finding.verdict !== 'ok');
  const findings: { container: string; image: string; reason: string; action: Decision }[] = [];
  let size = 2;
  for (const d of notable) {
    const f = {
      container: cut(d.finding.container, 63),
      image: cut(d.finding.image, 256),
      reason: d.finding.reason,
      action: d.action,
    };
    size += JSON.stringify(f).length + 1;
    if (size > AUDIT_FINDINGS_MAX) break;
    findings.push(f);
  }
  return { findings, omitted: notable.length - findings.length };
}

export interface ReviewResponse {
  apiVersion: 'admission.k8s.io/v1';
  kind: 'AdmissionReview';
  response: {
    uid: string;
    allowed: boolean;
    status?: { code: number; reason: string; message: string };
    warnings?: string[];
    auditAnnotations?: Record<string, string>;
  };
}

export function respond(uid: string, decided: Decided[]): ReviewResponse {
  // The common answer, nothing found: no warnings or annotations to build.
  if (decided.every((d) => d.finding.verdict === 'ok' && d.action !== 'deny' && d.action !== 'warn'))
    return { apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', response: { uid, allowed: true } };
  const deny = decided.some((d) => d.action === 'deny');
  const response: ReviewResponse['response'] = { uid, allowed: !deny };
  if (deny) response.status = { code: 403, reason: 'Forbidden', message: denialMessage(decided) };
  const warnings = warningsFor(decided);
  if (warnings.length) response.warnings = warnings;
  const { findings: notable, omitted } = notableFindings(decided);
  if (notable.length || omitted) {
    // Keys become "<webhook name>/<key>" in the audit log; values are strings.
    response.auditAnnotations = {
      verdict: decided.some((d) => d.finding.verdict === 'fail') ? 'fail' : 'risk',
      // JSON.stringify leaves C1 controls (U+0080–U+009F) and U+2028/9 raw; an image name may carry them.
      findings: JSON.stringify(notable).replace(
        /[\u007f-\u009f\u2028\u2029]/g,
        (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`,
      ),
      ...(omitted ? { 'findings-omitted': String(omitted) } : {}),
    };
  }
  return { apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', response };
}

const POD_SPEC_KIND_NAMES = new Set(POD_SPEC_KINDS.map((k) => k.kind));

/** Whether a review of this head would have had images to check: a CREATE or UPDATE of a kind with a pod spec. */
export function wouldCheck(head: ReviewHead): boolean {
  return (head.operation === 'CREATE' || head.operation === 'UPDATE') && POD_SPEC_KIND_NAMES.has(head.kind.kind);
}

/**
 * The answer to a review that was not checked (its body passed pullguard's own limits): allowed,
 * as a check that cannot run must not block; a warning (unless `warn` is false: audit mode) and
 * an audit annotation say so and why. `why` follows "its review body".
 */
export function uncheckedResponse(head: ReviewHead, why: string, warn: boolean): ReviewResponse {
  const response: ReviewResponse['response'] = { uid: head.uid, allowed: true };
  if (wouldCheck(head)) {
    const name = head.name ? (head.namespace ? `${head.namespace}/${head.name}` : head.name) : '';
    const where = name ? ` ${quote(name, 60)}` : head.namespace ? ` in ${quote(head.namespace, 63)}` : '';
    const start = `pullguard: the images of ${cut(oneLine(head.kind.kind), 30)}${where} were not checked: `;
    const fix = '; run pullguard check on its manifest';
    const reason = oneLine(`its review body ${why}`);
    // The reason is what gives way, never the fix.
    if (warn) response.warnings = [`${start}${cut(reason, WARNING_MAX - [...start].length - fix.length)}${fix}`];
    response.auditAnnotations = { verdict: 'unchecked', unchecked: cut(reason, AUDIT_FINDINGS_MAX) };
  }
  return { apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', response };
}
