"""NannyML's default univariate drift verdict over batches of windows (run in NannyML's venv).

Called by ``benchmarks/drift_quality.py`` as ``python nannyml_quality.py spec.json out.json``.
The spec names a reference Parquet file, the numerical and categorical columns, and batches:
``{"id", "path", "chunk_size", "windows"}``, each a Parquet file whose first ``windows`` runs
of ``chunk_size`` rows are the windows. For every chunk size a ``UnivariateDriftCalculator``
with NannyML's defaults (Jensen-Shannon for both kinds, alert above the mean + 3 standard
deviations of the statistic over reference chunks of the same size) is fitted on the
reference once; each batch is then one ``calculate`` call whose chunks are the windows. The
output maps each batch id to the list, per window, of the columns NannyML alerted on.
"""

import json
import sys
import time
from importlib import metadata

import nannyml as nml
import pandas as pd


def main(spec_path: str, out_path: str) -> None:
    with open(spec_path) as handle:
        spec = json.load(handle)
    columns = spec["numerical"] + spec["categorical"]
    reference = pd.read_parquet(spec["reference"], columns=columns)
    calculators = {}
    out: dict = {"batches": {}, "seconds": 0.0}
    started = time.perf_counter()
    for batch in spec["batches"]:
        size = int(batch["chunk_size"])
        if size not in calculators:
            calc = nml.UnivariateDriftCalculator(
                column_names=columns,
                treat_as_categorical=spec["categorical"],
                chunk_size=size,
            )
            calc.fit(reference)
            calculators[size] = calc
        frame = pd.read_parquet(batch["path"], columns=columns)
        frame = frame.iloc[: int(batch["windows"]) * size].reset_index(drop=True)
        result = calculators[size].calculate(frame).filter(period="analysis").to_df()
        flagged = []
        for i in range(len(result)):
            flagged.append(
                [
                    name
                    for name in columns
                    if bool(result[(name, "jensen_shannon", "alert")].iloc[i])
                ]
            )
        out["batches"][batch["id"]] = flagged[: len(frame) // size]
    out["seconds"] = time.perf_counter() - started
    out["versions"] = {name: metadata.version(name) for name in ("nannyml", "pandas", "numpy")}
    with open(out_path, "w") as handle:
        json.dump(out, handle)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
