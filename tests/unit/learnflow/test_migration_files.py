from __future__ import annotations

from pathlib import Path

import pytest

from learnflow.migrations import MigrationError, discover


def test_shipped_migrations_are_numbered_without_gaps() -> None:
    versions = [migration.version for migration in discover()]

    assert versions == list(range(1, len(versions) + 1))


def test_badly_named_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "init.sql").write_text("SELECT 1;")

    with pytest.raises(MigrationError, match="NNNN_lower_name.sql"):
        discover(tmp_path)


def test_duplicate_numbers_are_refused(tmp_path: Path) -> None:
    (tmp_path / "0001_a.sql").write_text("SELECT 1;")
    (tmp_path / "0001_b.sql").write_text("SELECT 2;")

    with pytest.raises(MigrationError, match="duplicate"):
        discover(tmp_path)
