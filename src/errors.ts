// The errors a person must act on (bad flags, unreadable files, a configuration mistake), as one
// vocabulary: each has a stable `code` for logs and tests, and the exit status the CLI gives it.
// Anything else that reaches the top is a bug and is reported as one.

export abstract class PullguardError extends Error {
  /** stable, machine-readable; never changes once released */
  abstract readonly code: string;
  /** the process exit status this error ends `pullguard check` or `serve` with */
  readonly exitStatus: number = 2;

  constructor(message?: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** A flag or argument that cannot be used as given (the CLI adds where to find the usage). */
export class UsageError extends PullguardError {
  readonly code = 'usage';
}

/** Something the configuration names cannot be used: a certificate or CA file, a port. */
export class SetupError extends PullguardError {
  readonly code = 'setup';
}
