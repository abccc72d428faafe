// FamiliarMatch: Go's path.Match globbing on the familiar forms of a reference.
// Go reports a malformed pattern (ErrBadPattern) wherever it sits, matched or not, so the
// pattern is parsed completely first and matched afterwards.

import { sentinel } from './errors.ts';
import { type DigestReference, type Reference, isNamed } from './parse.ts';
import { familiarName, familiarString } from './normalize.ts';

type Token =
  | { type: 'star' }
  | { type: 'any' }
  | { type: 'char'; ch: string }
  | { type: 'class'; negated: boolean; ranges: Array<[number, number]> };

function badPattern(): never {
  throw sentinel('ErrBadPattern');
}

/** A character inside a class: not '-' or ']' unless escaped, and the class must go on after it. */
function classChar(p: string[], i: number): [number, number] {
  let c = p[i];
  if (c === undefined || c === '-' || c === ']') badPattern();
  if (c === '\\') {
    i++;
    c = p[i];
    if (c === undefined) badPattern();
  }
  if (i + 1 >= p.length) badPattern();
  return [c.codePointAt(0) ?? 0, i + 1];
}

function tokenize(pattern: string): Token[] {
  const p = Array.from(pattern);
  const tokens: Token[] = [];
  let i = 0;
  while (i < p.length) {
    const c = p[i] as string;
    if (c === '*') {
      tokens.push({ type: 'star' });
      i++;
    } else if (c === '?') {
      tokens.push({ type: 'any' });
      i++;
    } else if (c === '\\') {
      const next = p[i + 1];
      if (next === undefined) badPattern();
      tokens.push({ type: 'char', ch: next });
      i += 2;
    } else if (c === '[') {
      i++;
      const negated = p[i] === '^';
      if (negated) i++;
      const ranges: Array<[number, number]> = [];
      while (!(p[i] === ']' && ranges.length > 0)) {
        const [lo, afterLo] = classChar(p, i);
        let hi = lo;
        i = afterLo;
        if (p[i] === '-') [hi, i] = classChar(p, i + 1);
        ranges.push([lo, hi]);
      }
      i++; // the closing ']'
      tokens.push({ type: 'class', negated, ranges });
    } else {
      tokens.push({ type: 'char', ch: c });
      i++;
    }
  }
  return tokens;
}

/** Matches a star-free run of tokens at name[pos]; returns the position after it, or -1. */
function matchChunk(chunk: Token[], name: string[], pos: number): number {
  for (const token of chunk) {
    const c = name[pos];
    if (c === undefined) return -1;
    switch (token.type) {
      case 'any':
        if (c === '/') return -1;
        break;
      case 'char':
        if (c !== token.ch) return -1;
        break;
      case 'class': {
        // unlike '?' and '*', a class may match '/'
        const cp = c.codePointAt(0) ?? 0;
        const inRange = token.ranges.some(([lo, hi]) => lo <= cp && cp <= hi);
        if (inRange === token.negated) return -1;
        break;
      }
      case 'star':
        return -1; // not reached: chunks hold no stars
    }
    pos++;
  }
  return pos;
}

/**
 * path.Match: '*' is any run of non-'/' characters, '?' one non-'/' character, [...] a class,
 * '\\' escapes. Each chunk after a star is placed at its leftmost fit, as Go does.
 * Throws ImageReferenceError ErrBadPattern on a malformed pattern.
 */
export function pathMatch(pattern: string, subject: string): boolean {
  const tokens = tokenize(pattern);
  const name = Array.from(subject);
  // chunks: [star before it, star-free tokens]; consecutive stars collapse into one
  const chunks: Array<{ star: boolean; tokens: Token[] }> = [];
  for (const token of tokens) {
    const last = chunks[chunks.length - 1];
    if (token.type === 'star') {
      if (last && last.tokens.length === 0) last.star = true;
      else chunks.push({ star: true, tokens: [] });
    } else if (last) {
      last.tokens.push(token);
    } else {
      chunks.push({ star: false, tokens: [token] });
    }
  }
  let pos = 0;
  for (let k = 0; k < chunks.length; k++) {
    const { star, tokens: chunk } = chunks[k] as { star: boolean; tokens: Token[] };
    const isLast = k === chunks.length - 1;
    if (star && chunk.length === 0) return !name.slice(pos).includes('/');
    const end = matchChunk(chunk, name, pos);
    // the last chunk must reach the end of the name
    if (end >= 0 && (!isLast || end === name.length)) {
      pos = end;
      continue;
    }
    if (star) {
      let found = -1;
      for (let i = pos; i < name.length && name[i] !== '/'; i++) {
        const e = matchChunk(chunk, name, i + 1);
        if (e >= 0 && (!isLast || e === name.length)) {
          found = e;
          break;
        }
      }
      if (found >= 0) {
        pos = found;
        continue;
      }
    }
    return false;
  }
  return pos === name.length;
}

/** FamiliarMatch: the pattern against FamiliarString, then (for named references) FamiliarName. */
export function familiarMatch(pattern: string, r: Reference | DigestReference): boolean {
  if (pathMatch(pattern, familiarString(r))) return true;
  return isNamed(r) && pathMatch(pattern, familiarName(r));
}
