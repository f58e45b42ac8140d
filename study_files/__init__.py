"""A study's files: where they live (a folder or an S3 URI), their names, the tables and their schema.

Torch- and Ray-free, so that ``simclr_sweep`` (which writes them) and ``reports`` (which reads them)
share one home, and a report builds on a laptop with nothing but the files.
"""
