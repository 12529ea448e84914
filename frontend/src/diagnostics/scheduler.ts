// Debounced diagnostics requests with stale replies dropped. Pure and timer-injectable, so the
// ordering rules are unit-tested without a browser.

export interface Timers {
  setTimeout(callback: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export interface Reply<T> {
  version: number;
  result: T;
}

/**
 * Call `schedule(text)` on every edit; after `delayMs` without edits the latest text is sent
 * with a new version number. A reply is delivered only if it answers the newest request sent:
 * an older answer (the worker finished it late) or one arriving after newer edits is dropped.
 */
export class DiagnosticsScheduler<T> {
  private timer: unknown = null;
  private sent = 0;
  private edits = 0;
  private editsAtSend = 0;

  constructor(
    private readonly send: (version: number, text: string) => void,
    private readonly deliver: (result: T, version: number) => void,
    private readonly delayMs = 150,
    private readonly timers: Timers = globalThis,
  ) {}

  schedule(text: string): void {
    this.edits += 1;
    if (this.timer !== null) this.timers.clearTimeout(this.timer);
    this.timer = this.timers.setTimeout(() => {
      this.timer = null;
      this.sent += 1;
      this.editsAtSend = this.edits;
      this.send(this.sent, text);
    }, this.delayMs);
  }

  /** Send now, skipping the debounce (first load). */
  flush(text: string): void {
    if (this.timer !== null) this.timers.clearTimeout(this.timer);
    this.timer = null;
    this.sent += 1;
    this.editsAtSend = this.edits;
    this.send(this.sent, text);
  }

  receive(reply: Reply<T>): boolean {
    const current = reply.version === this.sent && this.edits === this.editsAtSend;
    if (current) this.deliver(reply.result, reply.version);
    return current;
  }

  dispose(): void {
    if (this.timer !== null) this.timers.clearTimeout(this.timer);
    this.timer = null;
  }
}
