// WWW-Authenticate parsing (RFC 9110 §11.6.1). Registries send one challenge per header line in
// practice, but the grammar allows a comma-separated list, so one line may hold several
// (`Bearer realm="…", service="…", Basic realm="…"`, as regclient reads it).
//
// Choices where the upstream parsers disagree (test/fixtures/vectors/README.md, challenge.json):
// - every challenge of every line is returned, in order (regclient); pickChallenge then ranks them;
// - an empty quoted value (`empty=""`) is kept and parsing goes on (containerd; distribution stops);
// - unquoted values may be any run of characters up to whitespace or a comma (`realm=/`);
// - a quoted scheme or key is accepted (`"Basic" "realm"=/`, regclient);
// - a malformed line (missing comma between params, unterminated quote, trailing escape) is an
//   error for the whole line (regclient): parseChallengeHeader throws, parseChallenges drops that
//   line, and the registry client treats a response without a usable challenge as having none;
// - a token68 credential after the scheme (`Negotiate abc==`) is accepted and ignored: no
//   registry auth flow uses one and Challenge has no place for it;
// - a repeated parameter keeps its first value.

import { PullguardError } from '../errors.ts';

export interface Challenge {
  /** lower-cased */
  scheme: string;
  /** keys lower-cased */
  params: Record<string, string>;
}

export class ChallengeParseError extends PullguardError {
  readonly code = 'challenge';
}

/** Every challenge in every header line, in order; lines that do not parse contribute nothing. */
export function parseChallenges(header: string | string[]): Challenge[] {
  const lines = typeof header === 'string' ? [header] : header;
  const out: Challenge[] = [];
  for (const line of lines) {
    try {
      out.push(...parseChallengeHeader(line));
    } catch (err) {
      if (!(err instanceof ChallengeParseError)) throw err;
    }
  }
  return out;
}

/** The challenge to answer: bearer, else basic (what registry clients implement, containerd's order); else the first, so that the caller can name the unsupported scheme; undefined for none. */
export function pickChallenge(challenges: Challenge[]): Challenge | undefined {
  return challenges.find((c) => c.scheme === 'bearer') ?? challenges.find((c) => c.scheme === 'basic') ?? challenges[0];
}

const TCHAR = /[!#$%&'*+\-.^_`|~0-9A-Za-z]/;
const TOKEN68 = /^[A-Za-z0-9\-._~+/]+=*/;
const WS = /[ \t]/;

/** One header line. Throws ChallengeParseError when the line is malformed. */
export function parseChallengeHeader(line: string): Challenge[] {
  const out: Challenge[] = [];
  let current: Challenge | undefined;
  // true right after "scheme SP": the next element must be this challenge's param or token68
  let needParam = false;
  let p = 0;
  const skipWS = (from: number): number => {
    let i = from;
    while (i < line.length && WS.test(line[i] as string)) i++;
    return i;
  };
  const fail = (what: string): never => {
    throw new ChallengeParseError(`WWW-Authenticate: ${what} at offset ${p}`);
  };

  // A token or a quoted string; returns its value and moves p past it.
  const readWord = (): string => {
    if (line[p] === '"') return readQuoted();
    const start = p;
    while (p < line.length && TCHAR.test(line[p] as string)) p++;
    if (p === start) fail('expected a token');
    return line.slice(start, p);
  };
  const readQuoted = (): string => {
    let v = '';
    p++; // opening quote
    for (;;) {
      if (p >= line.length) fail('unterminated quoted string');
      const c = line[p] as string;
      if (c === '"') {
        p++;
        return v;
      }
      if (c === '\\') {
        p++;
        if (p >= line.length) fail('escape at end of quoted string');
      }
      v += line[p];
      p++;
    }
  };
  // After a param value: optional whitespace, then a comma or the end.
  const endOfElement = (): void => {
    p = skipWS(p);
    if (p < line.length && line[p] !== ',') fail('expected a comma');
  };

  for (;;) {
    p = skipWS(p);
    if (p >= line.length) break;
    if (line[p] === ',') {
      if (needParam) needParam = false; // "Basic ," – a scheme with no params after all
      p++;
      continue;
    }
    if (needParam && line[p] !== '"') {
      // Either token68 (ends the element) or the first auth-param of the challenge.
      const t68 = TOKEN68.exec(line.slice(p));
      if (t68) {
        const after = skipWS(p + t68[0].length);
        if (after >= line.length || line[after] === ',') {
          p = after;
          needParam = false;
          continue;
        }
      }
    }
    const word = readWord();
    const afterWord = p;
    p = skipWS(p);
    if (line[p] === '=') {
      if (current === undefined) fail('parameter before any scheme');
      p = skipWS(p + 1);
      let value: string;
      if (line[p] === '"') {
        value = readQuoted();
      } else {
        const start = p;
        while (p < line.length && !WS.test(line[p] as string) && line[p] !== ',' && line[p] !== '"') p++;
        value = line.slice(start, p);
      }
      const key = word.toLowerCase();
      const params = (current as Challenge).params;
      if (!Object.hasOwn(params, key)) params[key] = value;
      needParam = false;
      endOfElement();
      continue;
    }
    if (needParam) fail('expected a parameter');
    current = { scheme: word.toLowerCase(), params: Object.create(null) as Record<string, string> };
    out.push(current);
    if (p >= line.length || line[p] === ',') continue;
    if (p === afterWord) fail('expected a space after the scheme');
    needParam = true;
  }
  return out;
}
