"""Serve a checkpoint over HTTP and attack it there: `modelinv serve`, API keys, rate limits and budgets,
input validation, and a query monitor with inversion detectors.

- `db`: the SQLite file shared by the key store, the query log and the monitor.
- `keys`: API keys, stored salted and hashed, never in clear.
- `limits`: per-key request rate (token bucket); the total query budget is charged by `querylog`.
- `exposure`: what the server releases, as an in-process oracle (the same defense code as every experiment).
- `decode`: request bodies (JSON or base64 .npy, modelinv.oracle.wire) to validated float32 batches, and responses back.
- `ood`: how far a query lies from the training data (feature Mahalanobis distance, PCA residual).
- `querylog`: every answered input committed with its summary statistics, and the key's budget charged,
  before its answer is sent.
- `detectors`: rules that flag inversion-like traffic in the log.
- `app`: the FastAPI application; `launch`: build it from a checkpoint directory; `background`: run it
  in a thread on loopback.

The HTTP oracle a black-box attack queries a served model with is `modelinv.oracle.RemoteOracle`.
"""
