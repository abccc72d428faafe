// Reading manifests for `pullguard check`: files, folders and stdin; multi-document YAML or JSON;
// errors name the file and, for YAML, the line.

import { readdirSync, readFileSync, statSync } from 'node:fs';
import { extname, join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { flattenLists } from '../workload/images.ts';

export class InputError extends Error {}

export interface SourcedObject {
  object: unknown;
  source: string;
}

const MANIFEST_EXTENSIONS = new Set(['.yaml', '.yml', '.json']);

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
        `${p}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file or folder' : (err as Error).message}`,
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

/** Every object in a text of one or more YAML (or JSON) documents; `List` kinds are flattened. */
export function parseManifests(text: string, source: string): SourcedObject[] {
  const docs = parseAllDocuments(text, { prettyErrors: true, uniqueKeys: false });
  if (!Array.isArray(docs)) {
    // parseAllDocuments returns an EmptyStream for an empty input
    return [];
  }
  const objects: SourcedObject[] = [];
  for (const doc of docs) {
    const error = doc.errors[0];
    if (error) {
      const line = error.linePos?.[0]?.line;
      throw new InputError(`${source}${line ? `:${line}` : ''}: ${error.message.split('\n')[0]}`);
    }
    const value: unknown = doc.toJS({ maxAliasCount: 100 });
    if (value === null || value === undefined) continue;
    for (const object of flattenLists(value)) objects.push({ object, source });
  }
  return objects;
}

export function readManifests(paths: readonly string[], stdin: () => string): SourcedObject[] {
  return expandPaths(paths).flatMap((file) => {
    if (file === '-') return parseManifests(stdin(), '<stdin>');
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      throw new InputError(`${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
    return parseManifests(text, file);
  });
}
