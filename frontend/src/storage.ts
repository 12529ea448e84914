// What the browser keeps: the token and one draft per exercise.
const TOKEN = "learnflow.token";
const STUDENT = "learnflow.student";

export const session = {
  load(): { token: string; student: string } | null {
    const token = localStorage.getItem(TOKEN);
    const student = localStorage.getItem(STUDENT);
    return token && student ? { token, student } : null;
  },
  save(token: string, student: string): void {
    localStorage.setItem(TOKEN, token);
    localStorage.setItem(STUDENT, student);
  },
  clear(): void {
    localStorage.removeItem(TOKEN);
    localStorage.removeItem(STUDENT);
  },
};

export const drafts = {
  load(student: string, exercise: string): string | null {
    return localStorage.getItem(`learnflow.draft.${student}.${exercise}`);
  },
  save(student: string, exercise: string, code: string): void {
    localStorage.setItem(`learnflow.draft.${student}.${exercise}`, code);
  },
};
