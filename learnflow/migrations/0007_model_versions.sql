-- Versioned BKT parameter sets and which one the shards use. A version's header says when and
-- from what it was fitted and how it scored on held-out students; model_parameters holds its
-- per-component rows. model_publications is append-only: its newest row is the live version,
-- and rolling back is publishing an older version again. Version 0 is the built-in default.
CREATE TABLE model_versions (
    version     integer PRIMARY KEY CHECK (version >= 0),
    fitted_at   timestamptz NOT NULL,
    source      text NOT NULL,
    data_from   timestamptz,
    data_to     timestamptz,
    p_init      double precision NOT NULL CHECK (p_init >= 0 AND p_init <= 1),
    p_learn     double precision NOT NULL CHECK (p_learn >= 0 AND p_learn <= 1),
    p_guess     double precision NOT NULL CHECK (p_guess >= 0 AND p_guess < 0.5),
    p_slip      double precision NOT NULL CHECK (p_slip >= 0 AND p_slip < 0.5),
    p_forget    double precision NOT NULL DEFAULT 0 CHECK (p_forget >= 0 AND p_forget <= 1),
    metrics     jsonb NOT NULL DEFAULT '{}',
    stored_at   timestamptz NOT NULL DEFAULT now()
);

INSERT INTO model_versions (version, fitted_at, source, p_init, p_learn, p_guess, p_slip)
VALUES (0, now(), 'built-in defaults', 0.2, 0.15, 0.2, 0.1);

ALTER TABLE model_parameters
    DROP CONSTRAINT model_parameters_p_init_check,
    DROP CONSTRAINT model_parameters_p_learn_check,
    DROP CONSTRAINT model_parameters_p_guess_check,
    DROP CONSTRAINT model_parameters_p_slip_check,
    DROP CONSTRAINT model_parameters_p_forget_check,
    ADD CHECK (p_init >= 0 AND p_init <= 1),
    ADD CHECK (p_learn >= 0 AND p_learn <= 1),
    ADD CHECK (p_guess >= 0 AND p_guess < 0.5),
    ADD CHECK (p_slip >= 0 AND p_slip < 0.5),
    ADD CHECK (p_forget >= 0 AND p_forget <= 1),
    ADD COLUMN n_students integer NOT NULL DEFAULT 0,
    ADD COLUMN n_attempts integer NOT NULL DEFAULT 0,
    ADD COLUMN log_likelihood double precision,
    ADD COLUMN fallback boolean NOT NULL DEFAULT false,
    ADD COLUMN note text NOT NULL DEFAULT '',
    ADD COLUMN metrics jsonb NOT NULL DEFAULT '{}',
    ADD FOREIGN KEY (version) REFERENCES model_versions (version) ON DELETE CASCADE;

-- The version each attempt was applied with: a switch shows as one offset per partition.
ALTER TABLE attempts ADD COLUMN model_version integer NOT NULL DEFAULT 0;

CREATE TABLE model_publications (
    id           bigserial PRIMARY KEY,
    version      integer NOT NULL REFERENCES model_versions (version),
    published_at timestamptz NOT NULL DEFAULT now()
);
