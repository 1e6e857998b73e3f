"""What made a figure: records, code digests, the audit, rebuilds and crates."""
