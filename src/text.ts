// Text from anywhere (images, registry bodies, Events, error messages) made safe for the one line a
// person reads, a log field or JSON: controls and bidi characters escaped, credentials redacted,
// lengths capped. Every message, log line and output format goes through these.

/**
 * Characters no message may carry raw: C0 and C1 controls, the line and paragraph separators, and
 * the Unicode bidirectional controls (U+061C, U+200E/F, U+202A–202E, U+2066–2069), which reorder
 * what a terminal or a browser shows ("Trojan Source").
 */
const UNSAFE_CHARS = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]/g;
// What JSON.stringify leaves raw among them (it escapes C0 itself; its layout's newlines must stay).
const UNSAFE_IN_JSON = /[\u007f-\u009f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]/g;
const CONTROL_RUN = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]+/g;
const BIDI = /[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;

/** A character as a \uXXXX escape (what JSON and JavaScript read back as the same character). */
const escapeChar = (c: string): string => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`;

/** Text with every control and bidi character escaped as \uXXXX. */
export function escapeUnsafe(text: string): string {
  return text.replace(UNSAFE_CHARS, escapeChar);
}

/** JSON text whose strings carry no raw C1, separator or bidi character: the same values, escaped. */
export function escapeJson(json: string): string {
  return json.replace(UNSAFE_IN_JSON, escapeChar);
}

/** Quotes text for a message: control and bidi characters escaped (the API server drops warnings with controls), length capped. */
export function quote(text: string, max = 200): string {
  const cut = text.length > max ? `${text.slice(0, max)}…` : text;
  return `"${cut.replace(/["\\]/g, (c) => `\\${c}`).replace(UNSAFE_CHARS, escapeChar)}"`;
}

/**
 * Text for a log field: control characters (C0, C1, U+2028/2029) and bidi controls escaped as
 * \uXXXX, as in warnings (a log pipeline may split lines on them), and cut to `max` characters.
 */
export function logText(text: string, max = 256): string {
  return cut(text, max).replace(UNSAFE_CHARS, escapeChar);
}

/**
 * Text from elsewhere (a registry's error body) made safe to show: whatever looks like a credential
 * — an Authorization value, a JWT, a password=… or token: … pair — and the given secrets (the
 * passwords and tokens actually sent, in plain, form-encoded and base64 form) become [redacted], wherever
 * they appear.
 */
export function redact(text: string, secrets: readonly string[] = []): string {
  let out = text;
  // Longest first: a password inside a longer secret (its Basic pair) must not break that one's match.
  for (const s of [...secrets].sort((x, y) => y.length - x.length))
    if (s.length >= 4) out = out.split(s).join('[redacted]');
  return out
    .replace(/\b(basic|bearer|token)(\s+)[A-Za-z0-9+/=._~-]{8,}/gi, '$1$2[redacted]')
    .replace(/\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*/g, '[redacted]')
    .replace(
      /\b(password|passwd|pwd|secret|token|access_token|refresh_token|api[_-]?key|auth)("?\s*[=:]\s*"?)[^\s"&,;}]+/gi,
      '$1$2[redacted]',
    );
}

/** Text meant for one line: control characters become a space, bidi controls a \uXXXX escape. */
export function oneLine(text: string): string {
  return text.replace(CONTROL_RUN, ' ').replace(BIDI, escapeChar).trim();
}

/** Cuts text to `max` characters (code points), marking the cut with an ellipsis. */
export function cut(text: string, max: number): string {
  const chars = [...text];
  return chars.length <= max ? text : `${chars.slice(0, Math.max(0, max - 1)).join('')}…`;
}
