import type { ExerciseSummary, Progress } from "../api/client";
import { LevelBadge } from "./Mastery";

interface Props {
  exercises: ExerciseSummary[];
  progress: Progress | null;
}

/** Exercises grouped by component, each group with the student's level in it. */
export function ExerciseList({ exercises, progress }: Props) {
  const groups = new Map<string, ExerciseSummary[]>();
  for (const exercise of exercises) {
    for (const component of exercise.components) {
      groups.set(component, [...(groups.get(component) ?? []), exercise]);
    }
  }
  return (
    <section aria-labelledby="exercises-title">
      <h1 id="exercises-title">Exercises</h1>
      <div className="groups">
        {[...groups.entries()].map(([component, items]) => (
          <section key={component} className="group card" aria-label={`${component} exercises`}>
            <h2>
              {component} <LevelBadge level={progress?.components[component]?.level} />
            </h2>
            <ul>
              {items.map((exercise) => (
                <li key={exercise.id}>
                  <a href={`#${exercise.id}`}>{exercise.title}</a>
                  <span className="muted"> · {exercise.tests} tests</span>
                </li>
              ))}
            </ul>
          </section>
        ))}
      </div>
    </section>
  );
}
