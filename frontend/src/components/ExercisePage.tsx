import { useCallback, useEffect, useRef, useState } from "react";
import {
  api,
  authHeaders,
  explain,
  type AttemptResponse,
  type AttemptSummary,
  type Exercise,
  type ExerciseSummary,
  type Progress,
} from "../api/client";
import { CodeEditor, type DiagnosticsEvent } from "../editor/CodeEditor";
import { drafts } from "../storage";
import { MasteryPanel } from "./Mastery";
import type { Session } from "../App";

interface Props {
  summary: ExerciseSummary;
  session: Session;
  progress: Progress | null;
  onProgress: (minOffset?: number) => Promise<Progress | null>;
  onUnauthorized: (message: string) => void;
}

declare global {
  interface Window {
    learnflowTimings?: { diagnostics: DiagnosticsEvent[]; submits: { ms: number; offset: number }[] };
  }
}

export function ExercisePage({ summary, session, progress, onProgress, onUnauthorized }: Props) {
  const [exercise, setExercise] = useState<Exercise | null>(null);
  const [code, setCode] = useState<string | null>(null);
  const [result, setResult] = useState<AttemptResponse | null>(null);
  const [history, setHistory] = useState<AttemptSummary[]>([]);
  const [grading, setGrading] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [problems, setProblems] = useState(0);
  const codeRef = useRef<string>("");
  const gradingRef = useRef(false);

  const loadHistory = useCallback(async () => {
    const { data } = await api.GET("/api/v1/attempts", {
      params: { query: { exercise_id: summary.id } },
      headers: authHeaders(session.token),
    });
    if (data) setHistory(data.attempts);
  }, [summary.id, session.token]);

  useEffect(() => {
    void (async () => {
      const { data, error: failure, response } = await api.GET("/api/v1/exercises/{exercise_id}", {
        params: { path: { exercise_id: summary.id } },
      });
      if (!data) {
        setError(explain(response, failure).message);
        return;
      }
      setExercise(data);
      const saved = drafts.load(session.student, summary.id) ?? data.starter;
      codeRef.current = saved;
      setCode(saved);
    })();
    void loadHistory();
  }, [summary.id, session.student, loadHistory]);

  const submit = useCallback(async () => {
    if (gradingRef.current) return;
    gradingRef.current = true;
    setGrading(true);
    setError(null);
    const began = performance.now();
    try {
      const { data, error: failure, response } = await api.POST("/api/v1/attempts", {
        params: { header: { "idempotency-key": crypto.randomUUID() } },
        body: { exercise_id: summary.id, code: codeRef.current },
        headers: authHeaders(session.token),
      });
      if (!data) {
        const problem = explain(response, failure);
        if (problem.status === 401) onUnauthorized(problem.message);
        setError(problem.message);
        return;
      }
      setResult(data);
      await onProgress(data.event.offset);
      const timings = (window.learnflowTimings ??= { diagnostics: [], submits: [] });
      timings.submits.push({ ms: performance.now() - began, offset: data.event.offset });
      void loadHistory();
    } catch {
      setError("The server cannot be reached; your code is kept, try again.");
    } finally {
      gradingRef.current = false;
      setGrading(false);
    }
  }, [summary.id, session.token, onProgress, onUnauthorized, loadHistory]);

  if (!exercise || code === null) {
    return <p>{error ?? "Loading…"}</p>;
  }

  return (
    <div className="exercise">
      <section className="statement card" aria-labelledby="exercise-title">
        <p>
          <a href="#">← All exercises</a>
        </p>
        <h1 id="exercise-title">{exercise.title}</h1>
        <p className="muted">{exercise.components.join(" · ")}</p>
        <pre className="prose">{exercise.statement}</pre>
      </section>
      <section className="work card" aria-label="Your solution">
        <CodeEditor
          value={code}
          onChange={(text) => {
            codeRef.current = text;
            drafts.save(session.student, summary.id, text);
          }}
          onSubmit={() => void submit()}
          onDiagnostics={(event) => {
            setProblems(event.markers.filter((m) => m.severity === 8).length);
            (window.learnflowTimings ??= { diagnostics: [], submits: [] }).diagnostics.push({
              ...event,
              at: performance.now(),
            } as DiagnosticsEvent & { at: number });
          }}
        />
        <div className="actions">
          <button type="button" onClick={() => void submit()} disabled={grading} aria-keyshortcuts="Control+Enter">
            {grading ? "Grading…" : "Submit"}
          </button>
          <span className="muted" aria-live="polite">
            {problems > 0 ? `${problems} error${problems > 1 ? "s" : ""} in the code` : "Ctrl+Enter submits"}
          </span>
        </div>
        {error && (
          <p role="alert" className="banner error">
            {error}
          </p>
        )}
        {result && <Results result={result} />}
      </section>
      <aside className="side">
        <MasteryPanel progress={progress} components={exercise.components} />
        <History attempts={history} />
      </aside>
    </div>
  );
}

function Results({ result }: { result: AttemptResponse }) {
  const limit = result.status.includes("limit exceeded");
  return (
    <section className="results" aria-labelledby="results-title" data-status={result.status}>
      <h2 id="results-title" className={result.passed ? "ok" : "bad"}>
        {result.passed ? "All tests passed" : limit ? capitalize(result.status) : `${result.tests_passed} of ${result.tests_total} tests passed`}
      </h2>
      {!result.passed && result.status !== "failed" && result.message && (
        <p className="banner warn">{result.message}</p>
      )}
      <ul className="tests">
        {result.tests.map((test) => (
          <li key={test.name} className={test.passed ? "ok" : "bad"} data-passed={test.passed}>
            <span aria-hidden="true">{test.passed ? "✓" : "✗"}</span> <strong>{test.name}</strong>
            {!test.passed && <span className="message"> — {test.message}</span>}
          </li>
        ))}
      </ul>
      {result.stdout && (
        <details>
          <summary>Output</summary>
          <pre className="stdout">{result.stdout}</pre>
        </details>
      )}
    </section>
  );
}

function History({ attempts }: { attempts: AttemptSummary[] }) {
  return (
    <section className="history card" aria-labelledby="history-title">
      <h2 id="history-title">Your attempts</h2>
      {attempts.length === 0 ? (
        <p className="muted">None yet.</p>
      ) : (
        <ol>
          {attempts.map((a) => (
            <li key={a.event_id} className={a.passed ? "ok" : "bad"}>
              {new Date(a.submitted_at).toLocaleString()} — {a.tests_passed}/{a.tests_total}
            </li>
          ))}
        </ol>
      )}
    </section>
  );
}

function capitalize(text: string): string {
  return text.charAt(0).toUpperCase() + text.slice(1);
}
