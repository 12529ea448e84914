"""``learnflow fit`` end to end: CSV in, parameter file and table out, clear errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from learnflow import param_file, synthetic
from learnflow.bkt import BKTParams


def run_fit(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ops", "fit", *args],
        capture_output=True,
        text=True,
        check=False,
        env={"COLUMNS": "160", "PATH": "/usr/bin:/bin"},
    )


def test_fit_writes_parameters_and_reports_each_component(tmp_path: Path) -> None:
    seqs = synthetic.generate({"loops": BKTParams(0.3, 0.2, 0.2, 0.1)}, 300, 10, seed=5)
    lines = ["order_id,user_id,skill_name,correct"]
    order = 0
    for i in range(seqs.n_sequences):
        for correct in seqs.obs[seqs.starts[i] : seqs.starts[i + 1]]:
            lines.append(f"{order},{seqs.students[i]},loops,{correct}")
            order += 1
    lines += ["100000,lonely,recursion,1", "100001,lonely,recursion,0"]
    data = tmp_path / "data.csv"
    data.write_text("\n".join(lines) + "\n")
    out = tmp_path / "params.json"

    result = run_fit("--csv", str(data), "--out", str(out), "--forgets", "never")

    assert result.returncode == 0, result.stderr
    document = param_file.read(out)
    assert document.components["loops"].fallback is False
    assert document.components["recursion"].fallback is True
    assert "loops" in result.stdout and "fallback" in result.stdout
    assert "wrote" in result.stdout


def test_malformed_csv_is_one_clear_line_not_a_traceback(tmp_path: Path) -> None:
    data = tmp_path / "bad.csv"
    data.write_text("order_id,user_id,skill_name,correct\n1,u1,loops,2\n")

    result = run_fit("--csv", str(data), "--out", str(tmp_path / "p.json"))

    assert result.returncode == 1
    assert "line 2: correct must be 0 or 1" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "p.json").exists()
