import { describe, expect, it } from "vitest";
import { Severity, toMarkers, type RuffDiagnostic } from "../src/diagnostics/markers";

function diagnostic(code: string | null, row: number, column: number, endRow = row, endColumn = column + 3): RuffDiagnostic {
  return {
    code,
    message: "message",
    start_location: { row, column },
    end_location: { row: endRow, column: endColumn },
  };
}

describe("toMarkers", () => {
  it("makes syntax errors and undefined names errors", () => {
    const [syntax, undefinedName, legacy] = toMarkers(
      [diagnostic("invalid-syntax", 1, 5), diagnostic("F821", 2, 1), diagnostic(null, 1, 1)],
      3,
    );
    expect(syntax.severity).toBe(Severity.Error);
    expect(syntax.message).toBe("SyntaxError: message");
    expect(syntax.code).toBeUndefined();
    expect(legacy.severity).toBe(Severity.Error);
    expect(undefinedName.severity).toBe(Severity.Error);
    expect(undefinedName.message).toBe("F821: message");
    expect(undefinedName.code).toBe("F821");
  });

  it("makes other lint warnings", () => {
    const [unused, style] = toMarkers([diagnostic("F401", 1, 1), diagnostic("E701", 1, 1)], 1);
    expect(unused.severity).toBe(Severity.Warning);
    expect(style.severity).toBe(Severity.Warning);
  });

  it("keeps Ruff's 1-based positions", () => {
    const [marker] = toMarkers([diagnostic("F821", 3, 7, 3, 12)], 5);
    expect(marker).toMatchObject({ startLineNumber: 3, startColumn: 7, endLineNumber: 3, endColumn: 12 });
  });

  it("widens an empty range so the squiggle shows", () => {
    const [marker] = toMarkers([diagnostic(null, 2, 4, 2, 4)], 2);
    expect(marker.endColumn).toBe(5);
  });

  it("clamps rows past the end of the text (an error at end of file)", () => {
    const [marker] = toMarkers([diagnostic(null, 9, 1, 9, 1)], 4);
    expect(marker.startLineNumber).toBe(4);
    expect(marker.endLineNumber).toBe(4);
  });
});
