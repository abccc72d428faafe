// "Did you mean": the nearest names by edit distance, for a mistyped tag or official image.

/** Optimal string alignment distance: a swap of two neighbours ("ngnix") counts as one edit. */
export function editDistance(a: string, b: string): number {
  const rows = a.length + 1;
  const cols = b.length + 1;
  const d: number[][] = Array.from({ length: rows }, (_, i) =>
    Array.from({ length: cols }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)),
  );
  for (let i = 1; i < rows; i++) {
    for (let j = 1; j < cols; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let v = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) v = Math.min(v, d[i - 2]![j - 2]! + 1);
      d[i]![j] = v;
    }
  }
  return d[a.length]![b.length]!;
}

/** Tags that look like versions first, highest first (natural order: 1.10 above 1.9); the rest by name. */
export function highestFirst(tags: Iterable<string>): string[] {
  const version = (t: string) => /^v?\d/.test(t);
  const chunks = (t: string) => t.replace(/^v/, '').match(/\d+|\D+/g) ?? [];
  const natural = (a: string, b: string) => {
    const x = chunks(a);
    const y = chunks(b);
    for (let i = 0; i < Math.min(x.length, y.length); i++) {
      const [p, q] = [x[i]!, y[i]!];
      const byNumber = /^\d/.test(p) && /^\d/.test(q) ? Number(p) - Number(q) : 0;
      if (byNumber) return byNumber;
      if (p !== q) return p < q ? -1 : 1;
    }
    return x.length - y.length;
  };
  const all = [...new Set(tags)];
  return [
    ...all.filter(version).sort((a, b) => natural(b, a)),
    ...all.filter((t) => !version(t)).sort((a, b) => a.localeCompare(b)),
  ];
}

/**
 * Up to `max` candidates close to `word`: within a third of its length in edits (at least 2), nearest
 * first; candidates that extend the word ("1.2" -> "1.25") rank right after exact-distance ties.
 */
export function nearest(word: string, candidates: Iterable<string>, max = 3): string[] {
  const limit = Math.max(2, Math.floor(word.length / 3));
  const scored: { c: string; score: number }[] = [];
  for (const c of new Set(candidates)) {
    if (c === word) continue;
    const distance = editDistance(word.toLowerCase(), c.toLowerCase());
    const prefix = c.startsWith(word) || word.startsWith(c);
    if (distance <= limit || (prefix && word.length >= 2)) scored.push({ c, score: distance - (prefix ? 0.5 : 0) });
  }
  scored.sort((x, y) => x.score - y.score || x.c.localeCompare(y.c));
  return scored.slice(0, max).map((s) => s.c);
}
