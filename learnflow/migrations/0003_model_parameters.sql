-- Fitted Bayesian Knowledge Tracing parameters, one row per component per fitted version.
CREATE TABLE model_parameters (
    version     integer NOT NULL,
    component   text    NOT NULL,
    p_init      double precision NOT NULL CHECK (p_init > 0 AND p_init < 1),
    p_learn     double precision NOT NULL CHECK (p_learn >= 0 AND p_learn < 1),
    p_guess     double precision NOT NULL CHECK (p_guess > 0 AND p_guess < 0.5),
    p_slip      double precision NOT NULL CHECK (p_slip > 0 AND p_slip < 0.5),
    p_forget    double precision NOT NULL DEFAULT 0 CHECK (p_forget >= 0 AND p_forget < 1),
    fitted_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (version, component)
);
