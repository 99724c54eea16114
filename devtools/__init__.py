"""Developer tools that never ship in a Lambda asset: the CLI (``python -m devtools``), model export,
the sample model, the local gateway (``make run``), the demo and the synthetic data generator."""
