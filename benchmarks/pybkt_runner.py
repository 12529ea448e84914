"""Fits and evaluates pyBKT on CSV files; runs inside the benchmark's own pyBKT virtualenv.

Usage: python pybkt_runner.py TRAIN.csv TEST.csv OUT.json SEED
Writes the fit wall time, fitted parameters per skill and P(correct) per test row (by order_id).
"""

import json
import sys
import time

import numpy as np
import pandas as pd
from pyBKT.models import Model


def main() -> None:
    train_path, test_path, out_path, seed = sys.argv[1:5]
    train = pd.read_csv(train_path)
    test = pd.read_csv(test_path)
    model = Model(seed=int(seed), num_fits=5)
    began = time.perf_counter()
    model.fit(data=train)
    fit_seconds = time.perf_counter() - began
    predicted = model.predict(data=test).sort_values("order_id")
    params = model.params().reset_index()
    fitted: dict[str, dict[str, float]] = {}
    for row in params.itertuples(index=False):
        fitted.setdefault(str(row.skill), {})[str(row.param)] = float(row.value)
    with open(out_path, "w") as handle:
        json.dump(
            {
                "fit_seconds": fit_seconds,
                "params": fitted,
                "order_id": predicted["order_id"].to_numpy(dtype=np.int64).tolist(),
                "p_correct": predicted["correct_predictions"].to_numpy(dtype=float).tolist(),
            },
            handle,
        )


if __name__ == "__main__":
    main()
