"""Fault campaigns on a compiled design (`hwgen faults OUTDIR`).

- `plan`: the fault kinds and a seeded, reproducible plan (or a JSON file of faults);
- `golden`: the golden model carrying a fault (the judge);
- `classify`: detected / masked / escape per fault, and coverage;
- `rtl`: one fault's regression on the RTL as an independent task (the design unchanged);
- `vectors`: small test-vector sets (repeatability ranking, greedy set cover);
- `monitor`: an online monitor of the keep bits over a window of inputs;
- `campaign`: the command.
"""
