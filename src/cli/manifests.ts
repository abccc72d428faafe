// Reading manifests for `pullguard check`: files, folders and stdin; multi-document YAML or JSON;
// errors name the file and, for YAML, the line. Every object keeps a way back to its text, so
// findings can say file:line:column of the field they are about.

import { readdirSync, statSync } from 'node:fs';
import { extname, join } from 'node:path';
import { InputError, readInput } from './input.ts';
import { LineCounter, parseAllDocuments, type Document } from 'yaml';
import type { SourcePosition } from '../findings.ts';
import { systemErrorText } from '../system-errors.ts';

export interface SourcedObject {
  object: unknown;
  file: string;
  /** where a field of the object (a path such as ['spec', 'containers', 0, 'image']) is written */
  locate: (path: readonly (string | number)[]) => SourcePosition;
}

const MANIFEST_EXTENSIONS = new Set(['.yaml', '.yml', '.json']);

/** YAML aliases expanded at most per document (billion laughs) */
export const MAX_YAML_ALIASES = 100;

/** Files named on the command line, folders expanded (recursively, sorted) to their manifest files. */
export function expandPaths(paths: readonly string[]): string[] {
  const out: string[] = [];
  for (const p of paths) {
    if (p === '-') {
      out.push(p);
      continue;
    }
    let stat;
    try {
      stat = statSync(p);
    } catch (err) {
      throw new InputError(
        `${p}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file or folder' : systemErrorText(err, 'read')}`,
      );
    }
    if (!stat.isDirectory()) {
      out.push(p);
      continue;
    }
    const walk = (dir: string) => {
      for (const entry of readdirSync(dir, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
        const full = join(dir, entry.name);
        if (entry.isDirectory()) walk(full);
        else if (MANIFEST_EXTENSIONS.has(extname(entry.name).toLowerCase())) out.push(full);
      }
    };
    walk(p);
  }
  return out;
}

type Path = (string | number)[];

function isObj(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/** Objects inside `List` kinds (kubectl get -o yaml, helm output), with their path in the document. */
function flatten(value: unknown, path: Path, out: { object: unknown; path: Path }[]): void {
  if (isObj(value) && typeof value.kind === 'string' && value.kind.endsWith('List') && Array.isArray(value.items)) {
    value.items.forEach((item, i) => {
      flatten(item, [...path, 'items', i], out);
    });
  } else out.push({ object: value, path });
}

/** The position of the deepest node of `path` that exists in the document (aliases stop the walk). */
function locator(doc: Document, lines: LineCounter, file: string, prefix: Path) {
  return (path: readonly (string | number)[]): SourcePosition => {
    const full = [...prefix, ...path];
    for (let n = full.length; n >= 0; n--) {
      const node = n === 0 ? doc.contents : doc.getIn(full.slice(0, n), true);
      const range = (node as { range?: [number, number, number] } | undefined)?.range;
      if (range) {
        const pos = lines.linePos(range[0]);
        return { file, line: pos.line, column: pos.col };
      }
    }
    return { file, line: 1, column: 1 };
  };
}

/** Every object in a text of one or more YAML (or JSON) documents; `List` kinds are flattened. */
export function parseManifests(text: string, file: string): SourcedObject[] {
  const lines = new LineCounter();
  const docs = parseAllDocuments(text, { prettyErrors: true, uniqueKeys: false, lineCounter: lines });
  if (!Array.isArray(docs)) {
    // parseAllDocuments returns an EmptyStream for an empty input
    return [];
  }
  const objects: SourcedObject[] = [];
  for (const doc of docs) {
    const error = doc.errors[0];
    if (error) {
      const line = error.linePos?.[0]?.line;
      throw new InputError(`${file}${line ? `:${line}` : ''}: ${error.message.split('\n')[0]}`);
    }
    let value: unknown;
    try {
      value = doc.toJS({ maxAliasCount: MAX_YAML_ALIASES });
    } catch (err) {
      // yaml throws on too many aliases (a "billion laughs" document) and other resolution failures.
      throw new InputError(
        `${file}: ${/alias/i.test((err as Error).message) ? `more than ${MAX_YAML_ALIASES} YAML aliases; pullguard does not expand that many` : (err as Error).message.split('\n')[0]}`,
      );
    }
    if (value === null || value === undefined) continue;
    const flat: { object: unknown; path: Path }[] = [];
    flatten(value, [], flat);
    for (const { object, path } of flat) objects.push({ object, file, locate: locator(doc, lines, file, path) });
  }
  return objects;
}

export function readManifests(paths: readonly string[], stdin: () => string): SourcedObject[] {
  return expandPaths(paths).flatMap((file) => {
    if (file === '-') return parseManifests(stdin(), '-');
    return parseManifests(readInput(file, file), file);
  });
}
export { InputError };
