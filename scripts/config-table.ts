// README.md's configuration table, made from the schema (src/config/schema.ts): one row per setting with its
// key, type, default and the text its .describe() gives. `npm run docs:config` writes it between the
// markers; test/config.test.ts fails when README.md and the schema differ.

import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { configSchema } from '../src/config/schema.ts';

export const BEGIN =
  '<!-- config-table: made by `npm run docs:config` from src/config/schema.ts; edit the schema, not this -->';
export const END = '<!-- /config-table -->';
export const README = fileURLToPath(new URL('../README.md', import.meta.url));

type Schema = z.core.$ZodType;
const def = (s: Schema) => s._zod.def as z.core.$ZodTypeDef & Record<string, unknown>;
const title = (s: Schema) => z.globalRegistry.get(s)?.title;

/** The schema a wrapper (default, optional, a pipe's input, a check) holds; the schema itself if none. */
function inner(s: Schema): Schema | undefined {
  const d = def(s);
  if (d.type === 'default' || d.type === 'prefault' || d.type === 'optional') return d.innerType as Schema;
  if (d.type === 'pipe') return d.in as Schema;
  return undefined;
}

/** The kind of value, in the table's words: a title from .meta() first, else the schema's type. */
function typeText(s: Schema): string {
  for (let at: Schema | undefined = s; at; at = inner(at)) {
    const named = title(at);
    if (named) return named;
    const d = def(at);
    switch (d.type) {
      case 'enum':
        return Object.values(d.entries as Record<string, string>)
          .map((v) => `"${v}"`)
          .join(' | ');
      case 'literal':
        return (d.values as unknown[]).map((v) => JSON.stringify(v)).join(' | ');
      case 'union':
        return (d.options as Schema[]).map(typeText).join(' | ');
      case 'array':
        return `${typeText(d.element as Schema)}[]`;
      case 'record':
        return `{${typeText(d.keyType as Schema)}: ${typeText(d.valueType as Schema)}}`;
      case 'object':
        return `{${Object.keys(d.shape as object).join(', ')}}`;
      case 'number':
        return (at as z.ZodNumber).isInt ? 'integer' : 'number';
      case 'string':
        return (at as z.ZodString).format === 'url' ? 'URL' : 'string';
      case 'boolean':
        return 'boolean';
    }
  }
  throw new Error(`the configuration table has no words for ${def(s).type}`);
}

/** A duration as the file would say it: 8s, 5m, 1h (500ms when nothing shorter is whole). */
function durationText(ms: number): string {
  for (const [unit, size] of [
    ['h', 3_600_000],
    ['m', 60_000],
    ['s', 1000],
  ] as const)
    if (ms >= size && ms % size === 0) return `${ms / size}${unit}`;
  return `${ms}ms`;
}

function defaultText(value: unknown, kind: string): string {
  if (value === undefined) return '–';
  if (kind === 'duration') return `\`${durationText(value as number)}\``;
  if (kind === 'bytes' && (value as number) % 1048576 === 0) return `${(value as number) / 1048576} MiB`;
  if (Array.isArray(value) && value.length) return value.map((v) => `\`${v}\``).join(', ');
  return `\`${typeof value === 'string' ? value : JSON.stringify(value)}\``;
}

/** Whether a key is a group of settings (a row each) rather than one setting with an object value. */
function group(s: Schema): z.core.$ZodShape | undefined {
  if (z.globalRegistry.get(s)?.description) return undefined;
  for (let at: Schema | undefined = s; at; at = inner(at)) {
    const d = def(at);
    if (d.type === 'object') return d.shape as z.core.$ZodShape;
  }
  return undefined;
}

/** A code span in a table cell: its pipes escaped, as GitHub's tables want them. */
const code = (text: string) => `\`${text.replaceAll('|', '\\|')}\``;

export function configTable(): string {
  const defaults = configSchema.parse({}) as Record<string, unknown>;
  const rows: string[] = ['| key | type | default | meaning |', '|---|---|---|---|'];
  const walk = (shape: z.core.$ZodShape, path: string[], values: Record<string, unknown> | undefined) => {
    for (const [key, schema] of Object.entries(shape)) {
      const at = [...path, key];
      const value = values?.[key];
      const fields = group(schema);
      if (fields) {
        walk(fields, at, value as Record<string, unknown> | undefined);
        continue;
      }
      const meaning = z.globalRegistry.get(schema)?.description;
      if (!meaning) throw new Error(`${at.join('.')} has no .describe() in src/config/schema.ts: say what it means`);
      const kind = typeText(schema);
      rows.push(
        `| \`${at.join('.')}\` | ${code(kind)} | ${defaultText(value, kind)} | ${meaning.replaceAll('|', '\\|')} |`,
      );
    }
  };
  walk(configSchema.shape, [], defaults);
  return rows.join('\n');
}

/** README.md's text with the table between the markers replaced by `table`. */
export function withTable(readme: string, table: string): string {
  const from = readme.indexOf(BEGIN);
  const to = readme.indexOf(END);
  if (from < 0 || to < from) throw new Error(`README.md has no ${BEGIN} … ${END} markers`);
  return `${readme.slice(0, from + BEGIN.length)}\n${table}\n${readme.slice(to)}`;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const readme = readFileSync(README, 'utf8');
  const updated = withTable(readme, configTable());
  if (updated !== readme) writeFileSync(README, updated);
  console.log(updated === readme ? 'README.md: the configuration table is current' : 'README.md: table rewritten');
}
