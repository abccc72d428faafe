// "checked 12/50 images" on stderr while a check runs: only on a terminal, and only once the check
// has taken a second, so quick runs and CI logs stay clean.

export class Progress {
  private done = 0;
  private shown = false;
  private lastDraw = 0;
  private timer: NodeJS.Timeout | undefined;

  private readonly total: number;
  private readonly write: (s: string) => void;
  private readonly now: () => number;

  constructor(total: number, write: (s: string) => void, now: () => number = Date.now) {
    this.total = total;
    this.write = write;
    this.now = now;
  }

  /** Shows the count after `delayMs` unless stopped before. */
  start(delayMs = 1000): void {
    this.timer = setTimeout(() => {
      this.shown = true;
      this.draw();
    }, delayMs);
    this.timer.unref();
  }

  tick(): void {
    this.done++;
    // at most ten redraws a second, and always the last one
    if (this.shown && (this.done === this.total || this.now() - this.lastDraw >= 100)) this.draw();
  }

  stop(): void {
    clearTimeout(this.timer);
    if (this.shown) this.write('\r\u001b[K');
    this.shown = false;
  }

  private draw(): void {
    this.lastDraw = this.now();
    this.write(`\rchecked ${this.done}/${this.total} images`);
  }
}
