"""Session-wide synthetic datasets (train, holdout) for the model-gate tests."""

from __future__ import annotations

import pandas as pd
import pytest

from tests.unit.model_gates.synthetic import make_data


@pytest.fixture(scope="session")
def fair_data() -> tuple[pd.DataFrame, pd.DataFrame]:
    return make_data(3000, 1), make_data(3000, 2)


@pytest.fixture(scope="session")
def biased_data() -> tuple[pd.DataFrame, pd.DataFrame]:
    return make_data(3000, 3, sensitive_drives_label=True), make_data(
        3000, 4, sensitive_drives_label=True
    )
