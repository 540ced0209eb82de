"""Evidently's default data-drift preset over batches of windows (run in Evidently's venv).

Called by ``benchmarks/drift_quality.py`` as ``python evidently_quality.py spec.json out.json``
with the same spec as ``nannyml_quality.py``. Each window (``chunk_size`` consecutive rows of
a batch) is one ``Report([DataDriftPreset()])`` run against the reference, with the preset's
default per-column methods (for a reference above 1,000 rows: normed Wasserstein for numbers,
Jensen-Shannon for categories, both with threshold 0.1; below: KS and chi-square, p < 0.05).
The output maps each batch id to the list, per window, of the columns Evidently flagged.
"""

import json
import sys
import time
from importlib import metadata

import pandas as pd
from evidently import DataDefinition, Dataset, Report
from evidently.presets import DataDriftPreset


def flagged_columns(snapshot: dict) -> list:
    flagged = []
    for metric in snapshot["metrics"]:
        config = metric.get("config", {})
        if str(config.get("type", "")).endswith("ValueDrift"):
            method, cut, value = config["method"], config["threshold"], metric["value"]
            drifted = value < cut if "p_value" in method else value >= cut
            if drifted:
                flagged.append(config["column"])
    return flagged


def main(spec_path: str, out_path: str) -> None:
    with open(spec_path) as handle:
        spec = json.load(handle)
    columns = spec["numerical"] + spec["categorical"]
    definition = DataDefinition(
        numerical_columns=spec["numerical"], categorical_columns=spec["categorical"]
    )
    reference = Dataset.from_pandas(
        pd.read_parquet(spec["reference"], columns=columns), data_definition=definition
    )
    out: dict = {"batches": {}, "seconds": 0.0}
    started = time.perf_counter()
    for batch in spec["batches"]:
        size = int(batch["chunk_size"])
        frame = pd.read_parquet(batch["path"], columns=columns)
        frame = frame.iloc[: int(batch["windows"]) * size].reset_index(drop=True)
        flagged = []
        for start in range(0, len(frame) - size + 1, size):
            window = frame.iloc[start : start + size].reset_index(drop=True)
            snapshot = Report([DataDriftPreset()]).run(
                Dataset.from_pandas(window, data_definition=definition), reference
            )
            flagged.append(flagged_columns(snapshot.dict()))
        out["batches"][batch["id"]] = flagged
    out["seconds"] = time.perf_counter() - started
    out["versions"] = {name: metadata.version(name) for name in ("evidently", "pandas", "numpy")}
    with open(out_path, "w") as handle:
        json.dump(out, handle)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
