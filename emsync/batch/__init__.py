"""Many inputs scored on Ray (the `batch` extra): `emsync batch INPUTS... --out DIR`.

inputs.py finds the items (files, folders, manifests) and names their outputs; worker.py
scores one item in a Ray worker through the scoring service (emsync.service.score_file),
its generator loaded once per worker; runner.py starts or joins Ray, keeps the workers fed
and records every finished item in report.py's report; progress.py shows it; command.py is
the command line."""
