// The nodes' TOML files (containerd's hosts.toml, containers-registries.conf) read for people: a file
// that does not parse or holds a value of the wrong type stops start-up with the file, the line and
// the key; a key the runtime does not know is a warning (the runtime ignores it, so may we), never
// silence. Parsing is smol-toml's; only the checks of the shapes are here.

import { readFileSync } from 'node:fs';
import { parse, TomlError } from 'smol-toml';
import { SetupError } from '../errors.ts';
import { systemErrorText } from '../system-errors.ts';

export type TomlTable = Record<string, unknown>;

/** One TOML file: its parsed tables, and helpers that name the file, line and key in every complaint. */
export class TomlFile {
  readonly file: string;
  readonly data: TomlTable;
  readonly warnings: string[];
  readonly #lines: string[];

  constructor(file: string, text: string, warnings: string[]) {
    this.file = file;
    this.warnings = warnings;
    this.#lines = text.split('\n');
    try {
      this.data = parse(text) as TomlTable;
    } catch (err) {
      if (err instanceof TomlError) {
        const what = err.message.split('\n')[0]!.replace(/^Invalid TOML document: /, '');
        throw new SetupError(`${file}:${err.line}: ${what}${keyBefore(this.#lines, err.line)}`);
      }
      throw err;
    }
  }

  static read(file: string, warnings: string[]): TomlFile {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      throw new SetupError(`${file}: ${systemErrorText(err, 'read')}`);
    }
    return new TomlFile(file, text, warnings);
  }

  /** The first line that mentions `key` (as a key or a table header), for messages; 0 when not found. */
  lineOf(key: string): number {
    const bare = key.split('.').at(-1)!.replace(/^"|"$/g, '');
    const i = this.#lines.findIndex((l) => {
      const t = l.trim();
      return (
        t.startsWith(`${bare} `) || t.startsWith(`${bare}=`) || t.startsWith(`"${bare}"`) || t.includes(`"${bare}"]`)
      );
    });
    return i + 1;
  }

  /** `file:line: key "k": why`, as a start-up error. */
  error(key: string, why: string): SetupError {
    return new SetupError(`${this.where(key)}: ${why}`);
  }

  where(key: string): string {
    const line = this.lineOf(key);
    return `${this.file}${line ? `:${line}` : ''}: key ${key}`;
  }

  /** Warns once for each key of `table` the runtime does not read. */
  unknownKeys(table: TomlTable, known: readonly string[], prefix: string, runtime: string): void {
    for (const k of Object.keys(table))
      if (!known.includes(k)) this.warnings.push(`${this.where(prefix + k)}: not a ${runtime} setting; ignored`);
  }

  string(table: TomlTable, key: string, prefix = ''): string | undefined {
    const v = table[key];
    if (v === undefined) return undefined;
    if (typeof v !== 'string') throw this.error(prefix + key, `must be a string, not ${typeName(v)}`);
    return v;
  }

  bool(table: TomlTable, key: string, prefix = ''): boolean | undefined {
    const v = table[key];
    if (v === undefined) return undefined;
    if (typeof v !== 'boolean') throw this.error(prefix + key, `must be true or false, not ${typeName(v)}`);
    return v;
  }

  strings(table: TomlTable, key: string, prefix = ''): string[] | undefined {
    const v = table[key];
    if (v === undefined) return undefined;
    if (!Array.isArray(v) || !v.every((s) => typeof s === 'string'))
      throw this.error(prefix + key, `must be a list of strings, not ${typeName(v)}`);
    return v as string[];
  }

  table(table: TomlTable, key: string, prefix = ''): TomlTable | undefined {
    const v = table[key];
    if (v === undefined) return undefined;
    if (!isTable(v)) throw this.error(prefix + key, `must be a table, not ${typeName(v)}`);
    return v;
  }

  tables(table: TomlTable, key: string, prefix = ''): TomlTable[] {
    const v = table[key];
    if (v === undefined) return [];
    if (!Array.isArray(v) || !v.every(isTable))
      throw this.error(prefix + key, `must be an array of tables ([[${prefix + key}]]), not ${typeName(v)}`);
    return v as TomlTable[];
  }
}

export function isTable(v: unknown): v is TomlTable {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Date);
}

function typeName(v: unknown): string {
  if (Array.isArray(v)) return 'a list';
  if (isTable(v)) return 'a table';
  return `${typeof v} ${JSON.stringify(v)}`;
}

/** ` (key k)`: the key whose value failed, the nearest one at or before the line (an unclosed list ends at the file's end). */
function keyBefore(lines: string[], line: number): string {
  for (let i = Math.min(line, lines.length) - 1; i >= 0; i--) {
    const m = /^\s*("[^"]*"|[A-Za-z0-9_.-]+)\s*=/.exec(lines[i]!);
    if (m) return ` (key ${m[1]!.replace(/^"|"$/g, '')}, line ${i + 1})`;
    if (/^\s*\[/.test(lines[i]!)) return '';
  }
  return '';
}
