// Ruff diagnostics → Monaco marker data. Pure: no Monaco import, so it runs in the worker and
// in unit tests alike.

/** The fields of a Ruff WASM diagnostic this mapping uses. */
export interface RuffDiagnostic {
  code: string | null;
  message: string;
  start_location: { row: number; column: number };
  end_location: { row: number; column: number };
}

/** Monaco's MarkerSeverity values (monaco.MarkerSeverity.Error === 8, Warning === 4). */
export const Severity = { Error: 8, Warning: 4 } as const;

export interface Marker {
  severity: number;
  message: string;
  code?: string;
  source: string;
  startLineNumber: number;
  startColumn: number;
  endLineNumber: number;
  endColumn: number;
}

/** Codes that mean the program cannot run as written: shown as errors. */
const ERROR_CODES = new Set([
  "F821", // undefined name
  "F822", // undefined name in __all__
  "F823", // local variable referenced before assignment
  "F706", // return outside function
  "F704", // yield outside function
  "F701", // break outside loop
  "F702", // continue not properly in loop
  "E999", // syntax error (older Ruff)
]);

/** Ruff's code for a parse error (older builds report no code at all). */
const SYNTAX = "invalid-syntax";

export function isSyntaxError(diagnostic: RuffDiagnostic): boolean {
  return diagnostic.code === null || diagnostic.code === SYNTAX;
}

export function isError(diagnostic: RuffDiagnostic): boolean {
  return isSyntaxError(diagnostic) || ERROR_CODES.has(diagnostic.code ?? "");
}

function describe(diagnostic: RuffDiagnostic): string {
  if (isSyntaxError(diagnostic)) return `SyntaxError: ${diagnostic.message}`;
  return `${diagnostic.code}: ${diagnostic.message}`;
}

/**
 * One marker per diagnostic. Ruff's rows and columns are 1-based like Monaco's; an empty range
 * (Ruff reports a syntax error at end of file as a point) is widened to one character so the
 * squiggle is visible.
 */
export function toMarkers(diagnostics: readonly RuffDiagnostic[], lineCount: number): Marker[] {
  return diagnostics.map((d) => {
    const startLineNumber = clamp(d.start_location.row, 1, lineCount);
    const endLineNumber = clamp(d.end_location.row, startLineNumber, lineCount);
    const startColumn = Math.max(1, d.start_location.column);
    let endColumn = Math.max(1, d.end_location.column);
    if (endLineNumber === startLineNumber && endColumn <= startColumn) {
      endColumn = startColumn + 1;
    }
    const marker: Marker = {
      severity: isError(d) ? Severity.Error : Severity.Warning,
      message: describe(d),
      source: "ruff",
      startLineNumber,
      startColumn,
      endLineNumber,
      endColumn,
    };
    if (d.code && !isSyntaxError(d)) marker.code = d.code;
    return marker;
  });
}

function clamp(value: number, low: number, high: number): number {
  return Math.min(Math.max(value, low), Math.max(low, high));
}
