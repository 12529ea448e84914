import type { Progress } from "../api/client";

const LEVEL_NAMES: Record<string, string> = {
  not_started: "not started",
  attempted: "attempted",
  familiar: "familiar",
  proficient: "proficient",
  mastered: "mastered",
};

export function levelName(level: string | undefined): string {
  return LEVEL_NAMES[level ?? "not_started"] ?? level ?? "not started";
}

export function LevelBadge({ level }: { level: string | undefined }) {
  const name = levelName(level);
  return <span className={`badge level-${(level ?? "not_started").replace("_", "-")}`}>{name}</span>;
}

export function MasteryPanel({ progress, components }: { progress: Progress | null; components: string[] }) {
  return (
    <section className="mastery card" aria-labelledby="mastery-title">
      <h2 id="mastery-title">Mastery</h2>
      {progress?.stale && <p className="banner warn">Showing the last saved values; live data is catching up.</p>}
      {progress && (
        <p className="model-version" data-testid="model-version">
          Estimated by model version {progress.model_version}; a component not started shows the model's starting
          estimate.
        </p>
      )}
      <ul>
        {components.map((name) => {
          const item = progress?.components[name];
          const p = item?.p_mastered ?? 0;
          return (
            <li key={name} data-component={name}>
              <span className="component">{name}</span>
              <LevelBadge level={item?.level} />
              <div
                className="bar"
                role="progressbar"
                aria-label={`P(mastered) for ${name}`}
                aria-valuemin={0}
                aria-valuemax={100}
                aria-valuenow={Math.round(p * 100)}
              >
                <div className="fill" style={{ width: `${(p * 100).toFixed(1)}%` }} />
              </div>
              <span className="p" data-testid={`p-${name}`}>
                {(p * 100).toFixed(1)}%
              </span>
            </li>
          );
        })}
      </ul>
    </section>
  );
}
