"""Run by the mlfinpy venv's Python (not tickstream's): mlfinpy's standard bars of each case.

Reads a JSON list of cases from stdin, each ``{"kind", "threshold", "ticks": [[ts_ms, price,
volume], ...]}`` with the ticks in order; writes a JSON list of each case's bars, each
``[last_ms, open, high, low, close, volume, dollar, ticks]``.
"""

import json
import sys

import pandas as pd
from mlfinpy.data_structure import standard_bars

MAKERS = {
    "tick": standard_bars.get_tick_bars,
    "volume": standard_bars.get_volume_bars,
    "dollar": standard_bars.get_dollar_bars,
}

out = []
for case in json.load(sys.stdin):
    ticks = case["ticks"]
    frame = pd.DataFrame(
        {
            "date_time": pd.to_datetime([t[0] for t in ticks], unit="ms"),
            "price": [float(t[1]) for t in ticks],
            "volume": [float(t[2]) for t in ticks],
        }
    )
    bars = MAKERS[case["kind"]](frame, threshold=case["threshold"], verbose=False)
    out.append(
        [
            [
                int(pd.Timestamp(r.date_time).value // 1_000_000),
                float(r.open),
                float(r.high),
                float(r.low),
                float(r.close),
                float(r.volume),
                float(r.cum_dollar_value),
                int(r.cum_ticks),
            ]
            for r in bars.itertuples()
        ]
    )
json.dump(out, sys.stdout)
