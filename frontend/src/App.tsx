import { useCallback, useEffect, useState } from "react";
import { api, ApiError, authHeaders, explain, type ExerciseSummary, type Progress } from "./api/client";
import { session } from "./storage";
import { Login } from "./components/Login";
import { ExerciseList } from "./components/ExerciseList";
import { ExercisePage } from "./components/ExercisePage";

export interface Session {
  token: string;
  student: string;
}

export function App() {
  const [current, setCurrent] = useState<Session | null>(() => session.load());
  const [exercises, setExercises] = useState<ExerciseSummary[]>([]);
  const [progress, setProgress] = useState<Progress | null>(null);
  const [open, setOpen] = useState<string | null>(() => location.hash.slice(1) || null);
  const [error, setError] = useState<string | null>(null);

  const logOut = useCallback((reason?: string) => {
    session.clear();
    setCurrent(null);
    setProgress(null);
    setError(reason ?? null);
  }, []);

  const refreshProgress = useCallback(
    async (minOffset?: number): Promise<Progress | null> => {
      if (!current) return null;
      const { data, error: failure, response } = await api.GET("/api/v1/progress", {
        params: { query: minOffset === undefined ? {} : { min_offset: minOffset } },
        headers: authHeaders(current.token),
      });
      if (!data) {
        const problem = explain(response, failure);
        if (problem.status === 401) logOut(problem.message);
        else setError(problem.message);
        return null;
      }
      setProgress(data);
      return data;
    },
    [current, logOut],
  );

  useEffect(() => {
    void (async () => {
      const { data, error: failure, response } = await api.GET("/api/v1/exercises");
      if (data) setExercises(data.exercises);
      else setError(explain(response, failure).message);
    })();
  }, []);

  useEffect(() => {
    if (current) void refreshProgress();
  }, [current, refreshProgress]);

  useEffect(() => {
    const follow = () => setOpen(location.hash.slice(1) || null);
    addEventListener("hashchange", follow);
    return () => removeEventListener("hashchange", follow);
  }, []);

  if (!current) {
    return (
      <main className="shell">
        <Header />
        <Login
          notice={error}
          onLoggedIn={(token, student) => {
            session.save(token, student);
            setError(null);
            setCurrent({ token, student });
          }}
        />
      </main>
    );
  }

  const exercise = open ? exercises.find((e) => e.id === open) : undefined;
  return (
    <main className="shell">
      <Header student={current.student} onLogOut={() => logOut()} />
      {error && (
        <p role="alert" className="banner error">
          {error}
        </p>
      )}
      {exercise ? (
        <ExercisePage
          key={exercise.id}
          summary={exercise}
          session={current}
          progress={progress}
          onProgress={refreshProgress}
          onUnauthorized={(message) => logOut(message)}
        />
      ) : (
        <ExerciseList exercises={exercises} progress={progress} />
      )}
    </main>
  );
}

function Header({ student, onLogOut }: { student?: string; onLogOut?: () => void }) {
  return (
    <header className="top">
      <a href="#" className="brand">
        LearnFlow
      </a>
      {student && (
        <span className="who">
          <span aria-label="logged in as">{student}</span>
          <button type="button" onClick={onLogOut}>
            Log out
          </button>
        </span>
      )}
    </header>
  );
}

export { ApiError };
