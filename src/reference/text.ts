// Go string behaviour that error messages and case checks depend on.

const nonPrintable = /[\p{C}\p{Z}]/u;

function escapeRune(cp: number): string {
  switch (cp) {
    case 0x07:
      return '\\a';
    case 0x08:
      return '\\b';
    case 0x0c:
      return '\\f';
    case 0x0a:
      return '\\n';
    case 0x0d:
      return '\\r';
    case 0x09:
      return '\\t';
    case 0x0b:
      return '\\v';
  }
  if (cp < 0x80) return `\\x${cp.toString(16).padStart(2, '0')}`;
  if (cp <= 0xffff) return `\\u${cp.toString(16).padStart(4, '0')}`;
  return `\\U${cp.toString(16).padStart(8, '0')}`;
}

function isPrintable(ch: string): boolean {
  // Go's unicode.IsPrint: letters, marks, numbers, punctuation, symbols and the ASCII space.
  return ch === ' ' || !nonPrintable.test(ch);
}

/** Escapes what Go's %q would escape, without quoting: no control characters survive. */
export function escapeNonPrintable(s: string): string {
  let out = '';
  for (const ch of s) out += isPrintable(ch) ? ch : escapeRune(ch.codePointAt(0) ?? 0);
  return out;
}

/** Go's strconv.Quote (what %q prints), so messages echo input the way the kubelet does. */
export function goQuote(s: string): string {
  let out = '"';
  for (const ch of s) {
    if (ch === '"' || ch === '\\') out += `\\${ch}`;
    else out += isPrintable(ch) ? ch : escapeRune(ch.codePointAt(0) ?? 0);
  }
  return `${out}"`;
}

/**
 * Go's strings.ToLower maps each rune by the simple case mapping; JavaScript applies the full
 * mapping, which differs for U+0130 (İ lowers to "i" in Go, to "i̇" in JavaScript). It matters
 * because Parse retries the grammar on the lowercased input to choose its error.
 */
export function goToLower(s: string): string {
  if (/^[\x00-\x7f]*$/.test(s)) return s.toLowerCase();
  let out = '';
  for (const ch of s) out += ch === '\u0130' ? 'i' : ch.toLowerCase();
  return out;
}
