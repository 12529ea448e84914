import { describe, expect, it } from "vitest";
import { DiagnosticsScheduler, type Timers } from "../src/diagnostics/scheduler";

class FakeClock implements Timers {
  now = 0;
  private next = 1;
  private pending = new Map<number, { at: number; callback: () => void }>();
  setTimeout(callback: () => void, ms: number): unknown {
    const id = this.next++;
    this.pending.set(id, { at: this.now + ms, callback });
    return id;
  }
  clearTimeout(handle: unknown): void {
    this.pending.delete(handle as number);
  }
  advance(ms: number): void {
    this.now += ms;
    for (const [id, timer] of [...this.pending]) {
      if (timer.at <= this.now) {
        this.pending.delete(id);
        timer.callback();
      }
    }
  }
}

function setup() {
  const clock = new FakeClock();
  const sent: { version: number; text: string }[] = [];
  const delivered: string[] = [];
  const scheduler = new DiagnosticsScheduler<string>(
    (version, text) => sent.push({ version, text }),
    (result) => delivered.push(result),
    150,
    clock,
  );
  return { clock, sent, delivered, scheduler };
}

describe("DiagnosticsScheduler", () => {
  it("sends once, 150 ms after the last edit, with the latest text", () => {
    const { clock, sent, scheduler } = setup();
    scheduler.schedule("a");
    clock.advance(100);
    scheduler.schedule("ab");
    clock.advance(100);
    expect(sent).toEqual([]);
    clock.advance(50);
    expect(sent).toEqual([{ version: 1, text: "ab" }]);
  });

  it("delivers the reply to the newest request", () => {
    const { clock, sent, delivered, scheduler } = setup();
    scheduler.schedule("x");
    clock.advance(150);
    expect(scheduler.receive({ version: sent[0].version, result: "ok" })).toBe(true);
    expect(delivered).toEqual(["ok"]);
  });

  it("drops a reply to an older request", () => {
    const { clock, delivered, scheduler } = setup();
    scheduler.schedule("one");
    clock.advance(150);
    scheduler.schedule("two");
    clock.advance(150);
    expect(scheduler.receive({ version: 1, result: "stale" })).toBe(false);
    expect(scheduler.receive({ version: 2, result: "fresh" })).toBe(true);
    expect(delivered).toEqual(["fresh"]);
  });

  it("drops a reply that arrives after newer edits, before they are sent", () => {
    const { clock, delivered, scheduler } = setup();
    scheduler.schedule("one");
    clock.advance(150);
    scheduler.schedule("one more");
    expect(scheduler.receive({ version: 1, result: "outdated" })).toBe(false);
    expect(delivered).toEqual([]);
  });

  it("flush sends at once and cancels the pending send", () => {
    const { clock, sent, scheduler } = setup();
    scheduler.schedule("draft");
    scheduler.flush("now");
    clock.advance(500);
    expect(sent).toEqual([{ version: 1, text: "now" }]);
  });
});
