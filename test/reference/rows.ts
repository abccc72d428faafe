// Shared shapes and checks for the reference*.json vector rows (see test/fixtures/vectors/README.md).

import { ImageReferenceError } from '../../src/reference/index.ts';

export interface ReferenceRow {
  id: string;
  source: { test: string; function: string };
  input: string;
  valid: boolean;
  string?: string;
  name?: string;
  domain?: string;
  path?: string;
  tag?: string | null;
  digest?: string | null;
  normalized?: string;
  familiar?: string;
  familiarString?: string;
  dockerRef?: string;
  resultKind?: 'named' | 'digestOnly';
  parseImageName?: { repo: string; tag: string | null; digest: string | null };
  errorKind?: string;
  errorMessage?: string;
  errorMessageContains?: string;
}

export interface ErrorOutcome {
  error: true;
  kind?: string;
  message?: string;
}

/** Runs fn; a ImageReferenceError becomes an outcome to compare, anything else propagates. */
export function attempt<T>(fn: () => T): T | ErrorOutcome {
  try {
    return fn();
  } catch (err) {
    if (err instanceof ImageReferenceError) return { error: true, kind: err.kind, message: err.message };
    throw err;
  }
}

export function isError(x: unknown): x is ErrorOutcome {
  return typeof x === 'object' && x !== null && (x as { error?: unknown }).error === true;
}

/** The error fields a row asserts. go-digest sentinels are "digest.ErrX" in the vectors, ErrX here. */
export function expectedError(row: ReferenceRow): ErrorOutcome {
  const out: ErrorOutcome = { error: true };
  if (row.errorKind !== undefined) out.kind = row.errorKind.replace(/^digest\./, '');
  if (row.errorMessage !== undefined) out.message = row.errorMessage;
  return out;
}

/** The actual error projected onto the fields the row asserts. */
export function actualError(row: ReferenceRow, got: unknown): unknown {
  if (!isError(got)) return got;
  const out: ErrorOutcome = { error: true };
  if (row.errorKind !== undefined) out.kind = got.kind;
  if (row.errorMessage !== undefined) out.message = got.message;
  return out;
}

/** Copies the listed fields that the row states (absent means not asserted upstream). */
export function pick(row: ReferenceRow, fields: Array<keyof ReferenceRow>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const f of fields) if (row[f] !== undefined) out[f] = row[f];
  return out;
}

/** The part of a tap Test the row checkers use. */
export interface Asserts {
  same(found: unknown, wanted: unknown, message: string): boolean;
  equal(found: unknown, wanted: unknown, message: string): boolean;
  match(found: unknown, wanted: unknown, message: string): boolean;
}

/** A short, printable form of an input for assertion names. */
export function show(input: string): string {
  return JSON.stringify(input.length > 60 ? `${input.slice(0, 60)}…(${input.length})` : input);
}
