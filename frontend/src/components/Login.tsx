import { useState, type FormEvent } from "react";
import { api, explain } from "../api/client";

interface Props {
  notice: string | null;
  onLoggedIn: (token: string, student: string) => void;
}

export function Login({ notice, onLoggedIn }: Props) {
  const [student, setStudent] = useState("");
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  async function submit(event: FormEvent) {
    event.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const { data, error: failure, response } = await api.POST("/api/v1/dev/token", {
        body: { student_id: student.trim() },
      });
      if (data) onLoggedIn(data.token, data.student_id);
      else if (response.status === 404)
        setError("This server has no development login: it is not running in dev mode.");
      else setError(explain(response, failure).message);
    } catch {
      setError("The server cannot be reached.");
    } finally {
      setBusy(false);
    }
  }

  return (
    <form className="login card" onSubmit={submit} aria-labelledby="login-title">
      <h1 id="login-title">Development login</h1>
      <p className="banner warn" role="note">
        This is a development login: it asks for no password and lets anyone act as any student
        id. The server offers it only when it runs with <code>LEARNFLOW_ENVIRONMENT=dev</code>.
      </p>
      {notice && <p className="banner warn">{notice}</p>}
      <label htmlFor="student-id">Student id</label>
      <input
        id="student-id"
        name="student"
        autoComplete="username"
        required
        pattern="[A-Za-z0-9][A-Za-z0-9_.:@\-]*"
        title="ASCII letters, digits and _ . : @ -, starting with a letter or digit"
        maxLength={64}
        value={student}
        onChange={(e) => setStudent(e.target.value)}
      />
      <button type="submit" disabled={busy || !student.trim()}>
        {busy ? "Logging in…" : "Log in"}
      </button>
      {error && (
        <p role="alert" className="banner error">
          {error}
        </p>
      )}
    </form>
  );
}
