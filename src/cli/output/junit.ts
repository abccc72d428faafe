// JUnit XML for CI test-report views: one test suite per manifest file, one test case per image
// use. A failing image is a <failure>; one that could not be verified an <error> (a <skipped> with
// --allow-unverified); a risk a <skipped>, visible in the report without failing it.

import type { Finding } from '../../findings.ts';
import { oneLine } from '../../text.ts';
import type { Report } from '../report.ts';
import { objectText } from '../report.ts';
import { outcomeOf } from '../../policy/run.ts';
import { withoutOldCommands } from './github.ts';

/** Text for XML 1.0 attributes and content: markup escaped, characters XML cannot carry dropped. */
export function xmlEscape(text: string): string {
  return text
    .replace(/[^\u0009\u000a\u000d\u0020-\ud7ff\ue000-\ufffd\u{10000}-\u{10ffff}]/gu, '')
    .replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&apos;' })[c]!);
}

const attrs = (a: Record<string, string | number | undefined>) =>
  Object.entries(a)
    .filter(([, v]) => v !== undefined)
    .map(([k, v]) => ` ${k}="${xmlEscape(String(v))}"`)
    .join('');

function testcase(f: Finding, suite: string, allowUnverified: boolean): { xml: string; kind: string } {
  const name = `${objectText(f)}: ${oneLine(f.image)}`;
  const head = `    <testcase${attrs({ name, classname: suite, file: f.source?.file, line: f.source?.line })}>`;
  const prop = (n: string, value: string) => `<property${attrs({ name: n, value })}/>`;
  const location = f.source ? prop('location', `${f.source.file}:${f.source.line}:${f.source.column}`) : '';
  const props = `      <properties>${prop('reason', f.reason)}${prop('verdict', f.verdict)}${location}</properties>`;
  const text = xmlEscape(`${oneLine(f.message)}${f.hint ? `\nfix: ${oneLine(f.hint)}` : ''}`);
  const message = xmlEscape(`${f.reason}: ${oneLine(f.message)}`);
  const outcome = outcomeOf(f);
  let kind = 'passed';
  let inner = '';
  if (outcome === 'failed') {
    kind = 'failure';
    inner = `      <failure message="${message}" type="${f.reason}">${text}</failure>`;
  } else if (outcome === 'unverified' && !allowUnverified) {
    kind = 'error';
    inner = `      <error message="${message}" type="${f.reason}">${text}</error>`;
  } else if (outcome !== 'verified') {
    kind = 'skipped';
    inner = `      <skipped message="${message}"/>`;
  }
  return { xml: [head, props, ...(inner ? [inner] : []), '    </testcase>'].join('\n'), kind };
}

export function renderJunit(report: Report): string {
  const suites = new Map<string, Finding[]>();
  for (const f of report.findings) {
    const suite = f.source ? (f.source.file === '-' ? 'stdin' : f.source.file) : 'command line';
    const list = suites.get(suite);
    if (list) list.push(f);
    else suites.set(suite, [f]);
  }
  const count = (cases: { kind: string }[], kind: string) => cases.filter((c) => c.kind === kind).length;
  let all: { kind: string }[] = [];
  const body = [...suites].map(([suite, findings]) => {
    const cases = findings.map((f) => testcase(f, suite, report.policy.allowUnverified));
    all = all.concat(cases);
    const head = `  <testsuite${attrs({ name: suite, tests: cases.length, failures: count(cases, 'failure'), errors: count(cases, 'error'), skipped: count(cases, 'skipped') })}>`;
    return [head, ...cases.map((c) => c.xml), '  </testsuite>'].join('\n');
  });
  const head = `<testsuites${attrs({ name: 'pullguard', tests: all.length, failures: count(all, 'failure'), errors: count(all, 'error'), skipped: count(all, 'skipped') })}>`;
  const xml = ['<?xml version="1.0" encoding="UTF-8"?>', head, ...body, '</testsuites>', ''].join('\n');
  // On stdout in GitHub Actions, "##[" in an image would be a workflow command: &#35; is "#".
  return withoutOldCommands(xml, '&#35;');
}
